#include "mesh_keys.h"

#include "api.h"
#include "mesh_plan.h"

namespace plfm::cp {
namespace {

Error invalid(std::string_view field, const std::string& why) {
  return Error(apierr::kInvalidField, "field '" + std::string(field) + "' " + why)
      .with("field", std::string(field));
}

Error conflict(const std::string& why) {
  return Error(plfm::errc::kFailedPrecondition, "public_key " + why).with("field", "public_key");
}

const std::string kStateSelect =
    "SELECT node_id, wireguard_public_key, mesh_port, next_wireguard_public_key, "
    "next_mesh_port, mesh_rotation_requested, " +
    ts("mesh_key_since") + ", version FROM nodes_view WHERE removed_at IS NULL";

MeshKeyState stateOf(const pg::ResultSet& rs, int i) {
  MeshKeyState s;
  s.node_id = rs.text(i, 0);
  s.public_key = rs.text(i, 1);
  s.listen_port = rs.int64(i, 2).value_or(0);
  if (!rs.isNull(i, 3)) s.next_public_key = std::string(rs.text(i, 3));
  if (!rs.isNull(i, 4)) s.next_listen_port = rs.int64(i, 4).value_or(0);
  s.rotation_requested = rs.text(i, 5) == "t";
  s.key_since = rs.text(i, 6);
  s.version = static_cast<int>(rs.int64(i, 7).value_or(0));
  return s;
}

}  // namespace

Result<MeshKeyState> lockMeshKey(pg::Transaction& tx, const std::string& node_id) {
  PLFM_TRY(EventStore::lockLog(tx));
  PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec(kStateSelect + " AND node_id = $1", {node_id}));
  if (rs.rows() != 1) {
    return Error(plfm::errc::kNotFound, "node " + node_id + " not found").with("node_id", node_id);
  }
  MeshKeyState s = stateOf(rs, 0);
  PLFM_ASSIGN_OR_RETURN(auto seqs, EventStore::aggregateSeqs(tx, {node_id}));
  if (seqs[node_id] != s.version) {
    return Error(plfm::errc::kUnavailable,
                 "node " + node_id + " has a change not yet applied to its view; retry")
        .with("node_id", node_id);
  }
  return s;
}

Result<MeshKeyCommand> parseMeshKeyCommand(const json::Json& body) {
  MeshKeyCommand c;
  PLFM_ASSIGN_OR_RETURN(auto phase, requireString(body, "phase"));
  if (phase != "next" && phase != "current")
    return invalid("phase", R"(must be "next" or "current")");
  c.commit = phase == "current";
  PLFM_ASSIGN_OR_RETURN(c.public_key, requireString(body, "public_key"));
  if (!meshPublicKey(c.public_key)) return invalid("public_key", std::string(kMeshKeyRule));
  auto port = body.find("listen_port");
  if (c.commit) {
    if (port != body.end()) {
      return invalid("listen_port", "is only for phase \"next\" (the staged port is committed)");
    }
    return c;
  }
  if (port == body.end() || !port->is_number_integer() || port->get<int64_t>() < 1 ||
      port->get<int64_t>() > 65535) {
    return invalid("listen_port", "must be an integer 1..65535");
  }
  c.listen_port = port->get<int64_t>();
  return c;
}

Result<void> refuseAnotherNodesKey(pg::Transaction& tx, const std::string& node_id,
                                   const std::string& key) {
  PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec("SELECT 1 FROM nodes_view WHERE node_id <> $1 AND "
                                         "removed_at IS NULL AND (wireguard_public_key = $2 OR "
                                         "next_wireguard_public_key = $2) LIMIT 1",
                                         {node_id, key}));
  if (rs.rows() > 0) return conflict("is another node's key");
  return ok();
}

Result<std::optional<NewEvent>> decideMeshKey(MeshKeyState& state, const MeshKeyCommand& cmd) {
  const int next = state.version + 1;
  if (!cmd.commit) {
    if (cmd.public_key == state.public_key) {
      return conflict("is the node's current key; stage a new one");
    }
    if (cmd.listen_port == state.listen_port) {
      return invalid("listen_port", "is the node's current mesh port (" +
                                        std::to_string(state.listen_port) +
                                        "); the new key needs the other interface's port");
    }
    if (state.next_public_key == cmd.public_key && state.next_listen_port == cmd.listen_port) {
      return std::optional<NewEvent>();  // already staged: a retry
    }
    state.next_public_key = cmd.public_key;
    state.next_listen_port = cmd.listen_port;
    return std::optional<NewEvent>(events::toNewEvent(
        events::NodeMeshKeyStaged{
            .node_id = state.node_id, .public_key = cmd.public_key, .listen_port = cmd.listen_port},
        next, ""));
  }
  if (!state.next_public_key && cmd.public_key == state.public_key) {
    return std::optional<NewEvent>();  // committed already: a retry after success
  }
  if (state.next_public_key != cmd.public_key) return conflict("is not the staged key");
  events::NodeMeshKeyRotated ev{.node_id = state.node_id,
                                .public_key = cmd.public_key,
                                .listen_port = state.next_listen_port.value_or(0),
                                .previous_public_key = state.public_key};
  state.public_key = ev.public_key;
  state.listen_port = ev.listen_port;
  state.next_public_key.reset();
  state.next_listen_port.reset();
  state.rotation_requested = false;
  return std::optional<NewEvent>(events::toNewEvent(ev, next, ""));
}

std::optional<NewEvent> requestRotation(MeshKeyState& state) {
  if (state.rotation_requested || state.next_public_key) return std::nullopt;
  state.rotation_requested = true;
  return events::toNewEvent(
      events::NodeMeshKeyRotationRequested{.node_id = state.node_id, .reason = "operator"},
      state.version + 1, "");
}

json::Json meshKeyJson(const MeshKeyState& state) {
  json::Json next = nullptr;
  if (state.next_public_key) {
    next = {{"public_key", *state.next_public_key},
            {"listen_port", state.next_listen_port.value_or(0)}};
  }
  return {{"node_id", state.node_id},
          {"public_key", state.public_key},
          {"listen_port", state.listen_port},
          {"next", std::move(next)},
          {"rotation_requested", state.rotation_requested},
          {"key_since", state.key_since}};
}

Result<std::vector<NewEvent>> requestAgedRotations(pg::Transaction& tx, const Clock& clock,
                                                   std::chrono::seconds max_age) {
  std::vector<NewEvent> evs;
  if (max_age.count() <= 0) return evs;
  const std::string now = toRfc3339(clock.now());
  const std::string aged =
      " AND state = 'active' AND NOT mesh_rotation_requested AND next_wireguard_public_key IS "
      "NULL AND mesh_key_since < $1::timestamptz - make_interval(secs => $2)";
  // Cheap without the lock: most sweeps find nothing.
  PLFM_ASSIGN_OR_RETURN(
      auto any, tx.exec("SELECT 1 FROM nodes_view WHERE removed_at IS NULL" + aged + " LIMIT 1",
                        {now, max_age.count()}));
  if (any.rows() == 0) return evs;
  PLFM_ASSIGN_OR_RETURN(auto rs,
                        tx.exec(kStateSelect + aged + " ORDER BY node_id", {now, max_age.count()}));
  // Under the log lock, each row's version against its log: a node whose
  // view lags (or that changed since the read) waits for the next sweep.
  PLFM_ASSIGN_OR_RETURN(auto locked, EventStore::lockedSeqsOf(tx, rs));
  for (int i = 0; i < rs.rows(); ++i) {
    const MeshKeyState s = stateOf(rs, i);
    if (locked.seqs[s.node_id] != s.version) continue;
    evs.push_back(events::toNewEvent(
        events::NodeMeshKeyRotationRequested{.node_id = s.node_id, .reason = "age"}, s.version + 1,
        ""));
  }
  return evs;
}

}  // namespace plfm::cp
