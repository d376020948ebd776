#include "nodes.h"

#include "auth.h"
#include "plfm/core/id.h"
#include "plfm/core/json.h"
#include "plfm/reconcile/ipv6.h"

namespace plfm::cp {
namespace {

Error badEnrollmentToken() {
  return Error(plfm::errc::kUnauthenticated,
               "missing, unknown or expired enrollment token; create a new one with "
               "`vt nodes enroll`");
}

std::string secondsText(std::chrono::seconds s) { return std::to_string(s.count()) + " s"; }

NewEvent stateChanged(const std::string& node, int seq, std::string_view from, std::string_view to,
                      const std::string& reason) {
  return events::toNewEvent(
      events::NodeStateChanged{
          .node_id = node, .from = std::string(from), .to = std::string(to), .reason = reason},
      seq, "");
}

Result<std::pair<std::string, std::string>> issueNodeToken(pg::Transaction& tx,
                                                           const std::string& node,
                                                           const std::string& now) {
  const std::string token = newToken();
  const std::string token_id = TokenId::generate().str();
  PLFM_TRY(tx.exec(
      "INSERT INTO api_tokens (token_id, token_hash, kind, subject_id, description, created_at) "
      "VALUES ($1, $2, 'node', $3, 'node credential', $4)",
      {token_id, hashToken(token), node, now}));
  return std::make_pair(token, token_id);
}

NewEvent tokenCreated(const std::string& token_id, const std::string& node) {
  return events::toNewEvent(
      events::TokenCreated{.token_id = token_id, .kind = "node", .subject_id = node}, 1, "");
}

Result<std::string> allocatePrefix(pg::Transaction& tx, const std::string& node,
                                   const std::string& cluster_prefix) {
  // Serialize allocations: two enrollments must not pick the same /64.
  PLFM_TRY(tx.exec("LOCK TABLE node_prefixes IN EXCLUSIVE MODE"));
  PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec("SELECT prefix FROM node_prefixes"));
  std::vector<std::string> used;
  used.reserve(static_cast<size_t>(rs.rows()));
  for (int i = 0; i < rs.rows(); ++i) used.emplace_back(rs.text(i, 0));
  PLFM_ASSIGN_OR_RETURN(auto prefix, reconcile::allocateNodePrefix(cluster_prefix, used));
  PLFM_TRY(tx.exec("INSERT INTO node_prefixes (prefix, node_id) VALUES ($1, $2)", {prefix, node}));
  return prefix;
}

}  // namespace

Result<std::pair<NewEnrollment, NewEvent>> createEnrollment(pg::Transaction& tx, const Clock& clock,
                                                            const std::string& created_by,
                                                            std::chrono::seconds ttl) {
  NewEnrollment e;
  e.enrollment_id = EnrollmentId::generate().str();
  e.token = newToken();
  const auto now = clock.now();
  e.created_at = toRfc3339(now);
  e.expires_at = toRfc3339(now + ttl);
  PLFM_TRY(
      tx.exec("INSERT INTO node_enrollments (enrollment_id, token_hash, created_by, created_at, "
              "expires_at) VALUES ($1, $2, $3, $4, $5)",
              {e.enrollment_id, hashToken(e.token), created_by, e.created_at, e.expires_at}));
  NewEvent ev = events::toNewEvent(
      events::NodeEnrollmentCreated{.enrollment_id = e.enrollment_id, .expires_at = e.expires_at},
      1, "");
  return std::make_pair(std::move(e), std::move(ev));
}

Result<std::pair<EnrolledNode, std::vector<NewEvent>>> redeemEnrollment(
    pg::Transaction& tx, const Clock& clock, std::string_view token, const NodeFacts& facts,
    const std::string& cluster_prefix, std::chrono::seconds retry_window) {
  const std::string now = toRfc3339(clock.now());
  PLFM_ASSIGN_OR_RETURN(
      auto rs, tx.exec("SELECT enrollment_id, expires_at > $2::timestamptz, node_id, hostname, "
                       "used_at > $2::timestamptz - make_interval(secs => $3) "
                       "FROM node_enrollments WHERE token_hash = $1 FOR UPDATE",
                       {hashToken(token), now, retry_window.count()}));
  if (rs.rows() != 1 || rs.text(0, 1) != "t") return badEnrollmentToken();
  const std::string enrollment(rs.text(0, 0));
  EnrolledNode out;
  out.hostname = facts.hostname;
  std::vector<NewEvent> evs;
  if (!rs.isNull(0, 2)) {
    // A retry of an enrollment that already happened (the agent lost the
    // answer). Only within the retry window, and only while no credential
    // of the node was ever used: otherwise the token is spent, and a replay
    // looks like any bad credential. Locking the node's tokens orders this
    // against their first use (auth.cc).
    if (rs.text(0, 4) != "t") return badEnrollmentToken();
    PLFM_ASSIGN_OR_RETURN(
        auto toks, tx.exec("SELECT count(*) FILTER (WHERE first_used_at IS NOT NULL), "
                           "count(*) FILTER (WHERE revoked_at IS NULL) FROM (SELECT first_used_at, "
                           "revoked_at FROM api_tokens WHERE kind = 'node' AND subject_id = $1 "
                           "FOR UPDATE) t",
                           {std::string(rs.text(0, 2))}));
    if (toks.int64(0, 0).value_or(1) != 0 || toks.int64(0, 1).value_or(0) == 0) {
      return badEnrollmentToken();
    }
    if (rs.text(0, 3) != facts.hostname) {
      return Error(plfm::errc::kFailedPrecondition,
                   "this enrollment token was already used by host '" + std::string(rs.text(0, 3)) +
                       "'; create a new one with `vt nodes enroll`")
          .with("field", "hostname");
    }
    out.node_id = rs.text(0, 2);
    out.reissued = true;
    PLFM_ASSIGN_OR_RETURN(
        auto pfx, tx.exec("SELECT prefix FROM node_prefixes WHERE node_id = $1", {out.node_id}));
    if (pfx.rows() != 1) {
      return Error(plfm::errc::kInternal, "node " + out.node_id + " has no IPv6 prefix");
    }
    out.ipv6_prefix = pfx.text(0, 0);
    PLFM_TRY(
        tx.exec("UPDATE api_tokens SET revoked_at = $2 WHERE kind = 'node' AND subject_id = $1 "
                "AND revoked_at IS NULL",
                {out.node_id, now}));
    PLFM_ASSIGN_OR_RETURN(auto tok, issueNodeToken(tx, out.node_id, now));
    out.token = std::move(tok.first);
    out.token_id = std::move(tok.second);
    evs.push_back(tokenCreated(out.token_id, out.node_id));
    return std::make_pair(std::move(out), std::move(evs));
  }

  out.node_id = NodeId::generate().str();
  PLFM_ASSIGN_OR_RETURN(out.ipv6_prefix, allocatePrefix(tx, out.node_id, cluster_prefix));
  PLFM_TRY(
      tx.exec("INSERT INTO node_liveness (node_id, last_heartbeat_at, state, state_since, "
              "underlay_address) VALUES ($1, $2, 'active', $2, $3)",
              {out.node_id, now, facts.underlay_address}));
  PLFM_TRY(
      tx.exec("UPDATE node_enrollments SET used_at = $2, node_id = $3, hostname = $4 "
              "WHERE enrollment_id = $1",
              {enrollment, now, out.node_id, facts.hostname}));
  PLFM_ASSIGN_OR_RETURN(auto tok, issueNodeToken(tx, out.node_id, now));
  out.token = std::move(tok.first);
  out.token_id = std::move(tok.second);

  auto labels = json::parse(facts.labels_json);
  if (!labels || !labels->is_object()) {
    return Error(plfm::errc::kInternal, "node labels are not a JSON object");
  }
  events::NodeEnrolled enrolled{.node_id = out.node_id,
                                .enrollment_id = enrollment,
                                .hostname = facts.hostname,
                                .cores = facts.cores,
                                .memory_mb = facts.memory_mb,
                                .disk_mb = facts.disk_mb,
                                .labels = {},
                                .wireguard_public_key = facts.wireguard_public_key,
                                .underlay_address = facts.underlay_address,
                                .runtimes = facts.runtimes,
                                .ipv6_prefix = out.ipv6_prefix,
                                .mesh_port = facts.mesh_port,
                                .role = facts.role};
  for (const auto& [key, value] : labels->items()) {
    // String values only: the enrollment request was checked (api_agent.cc).
    if (!value.is_string()) return Error(plfm::errc::kInternal, "node labels are not strings");
    enrolled.labels.emplace(key, value.get_ref<const std::string&>());
  }
  evs.push_back(events::toNewEvent(enrolled, 1, ""));
  evs.push_back(tokenCreated(out.token_id, out.node_id));
  return std::make_pair(std::move(out), std::move(evs));
}

Result<HeartbeatResult> recordHeartbeat(pg::Transaction& tx, const Clock& clock,
                                        const std::string& node_id,
                                        const std::string& agent_version,
                                        const AgentEndpoint& endpoint,
                                        std::optional<int64_t> volume_capacity_bytes,
                                        const std::optional<json::Json>& mesh) {
  const auto now_tp = clock.now();
  const std::string now = toRfc3339(now_tp);
  // One statement in the common case: lock the row, read the old state and
  // the seconds since the last heartbeat, record this one.
  PLFM_ASSIGN_OR_RETURN(
      auto rs,
      tx.exec(
          "WITH old AS (SELECT state, last_heartbeat_at FROM node_liveness WHERE node_id = $1 "
          "FOR UPDATE) UPDATE node_liveness l SET last_heartbeat_at = $2, agent_version = $3, "
          "state = 'active', state_since = CASE WHEN old.state = 'active' THEN l.state_since "
          "ELSE $2::timestamptz END, agent_url = CASE WHEN $4 = '' THEN l.agent_url ELSE $4 "
          "END, agent_cert_sha256 = CASE WHEN $4 = '' THEN l.agent_cert_sha256 ELSE $5 END, "
          "volume_capacity_bytes = coalesce($6::bigint, l.volume_capacity_bytes), mesh = $7::jsonb "
          "FROM old WHERE "
          "l.node_id = $1 RETURNING old.state, "
          "floor(extract(epoch FROM $2::timestamptz - old.last_heartbeat_at))::bigint",
          {node_id, now, agent_version, endpoint.url, endpoint.cert_sha256, volume_capacity_bytes,
           mesh ? std::optional<std::string>(mesh->dump()) : std::nullopt}));
  if (rs.rows() != 1) {
    return Error(plfm::errc::kNotFound, "node " + node_id + " not found").with("node_id", node_id);
  }
  HeartbeatResult out;
  out.state = rs.text(0, 0);
  if (out.state == "active") return out;
  PLFM_TRY(EventStore::lockLog(tx));
  PLFM_ASSIGN_OR_RETURN(auto seqs, EventStore::aggregateSeqs(tx, {node_id}));
  out.transition =
      stateChanged(node_id, seqs[node_id] + 1, out.state, "active",
                   "heartbeat received after " + std::to_string(rs.int64(0, 1).value_or(0)) + " s");
  return out;
}

Result<std::pair<RemovedNode, std::vector<NewEvent>>> removeNode(pg::Transaction& tx,
                                                                 const Clock& clock,
                                                                 const std::string& node_id) {
  const std::string now = toRfc3339(clock.now());
  // Write-side truth, locked: the liveness row, and the enrollment for the hostname.
  PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec("SELECT l.state, e.hostname FROM node_liveness l JOIN "
                                         "node_enrollments e ON e.node_id = l.node_id "
                                         "WHERE l.node_id = $1 FOR UPDATE OF l",
                                         {node_id}));
  if (rs.rows() != 1) {
    return Error(plfm::errc::kNotFound, "node " + node_id + " not found").with("node_id", node_id);
  }
  RemovedNode out;
  out.hostname = rs.text(0, 1);
  const std::string state(rs.text(0, 0));
  PLFM_TRY(EventStore::lockLog(tx));
  PLFM_ASSIGN_OR_RETURN(auto done, tx.exec("SELECT 1 FROM events WHERE aggregate_id = $1 AND "
                                           "event_type = 'node.removed'",
                                           {node_id}));
  std::vector<NewEvent> evs;
  if (done.rows() > 0) return std::make_pair(std::move(out), std::move(evs));
  PLFM_ASSIGN_OR_RETURN(auto revoked,
                        tx.exec("UPDATE api_tokens SET revoked_at = $2 WHERE kind = 'node' AND "
                                "subject_id = $1 AND revoked_at IS NULL RETURNING token_id",
                                {node_id, now}));
  out.revoked_tokens = revoked.rows();
  std::vector<std::string> ids = {node_id};
  for (int i = 0; i < revoked.rows(); ++i) ids.emplace_back(revoked.text(i, 0));
  PLFM_ASSIGN_OR_RETURN(auto seqs, EventStore::aggregateSeqs(tx, ids));
  for (size_t i = 1; i < ids.size(); ++i) {
    evs.push_back(events::toNewEvent(
        events::TokenRevoked{.token_id = ids[i], .kind = "node", .subject_id = node_id},
        seqs[ids[i]] + 1, ""));
  }
  int next = seqs[node_id] + 1;
  if (state != "down") {
    PLFM_TRY(tx.exec("UPDATE node_liveness SET state = 'down', state_since = $2 WHERE node_id = $1",
                     {node_id, now}));
    evs.push_back(stateChanged(node_id, next++, state, "down", "removed by an admin"));
  }
  evs.push_back(events::toNewEvent(
      events::NodeRemoved{
          .node_id = node_id, .hostname = out.hostname, .revoked_tokens = out.revoked_tokens},
      next, ""));
  return std::make_pair(std::move(out), std::move(evs));
}

Result<std::vector<NewEvent>> expireLiveness(pg::Transaction& tx, const Clock& clock,
                                             const LivenessOptions& options) {
  const std::string now = toRfc3339(clock.now());
  PLFM_ASSIGN_OR_RETURN(
      auto rs,
      tx.exec("SELECT node_id, state, floor(extract(epoch FROM $1::timestamptz - "
              "last_heartbeat_at))::bigint, floor(extract(epoch FROM $1::timestamptz - "
              "state_since))::bigint FROM node_liveness WHERE (state = 'active' AND "
              "last_heartbeat_at < $1::timestamptz - make_interval(secs => $2)) OR (state = "
              "'unreachable' AND $3 > 0 AND state_since < $1::timestamptz - "
              "make_interval(secs => $3)) ORDER BY node_id FOR UPDATE SKIP LOCKED",
              {now, options.heartbeat_timeout.count(), options.down_after.count()}));
  std::vector<NewEvent> evs;
  if (rs.rows() == 0) return evs;
  PLFM_ASSIGN_OR_RETURN(auto locked, EventStore::lockedSeqsOf(tx, rs));
  auto& seqs = locked.seqs;
  for (int i = 0; i < rs.rows(); ++i) {
    const std::string& node = locked.ids[static_cast<size_t>(i)];
    const bool active = rs.text(i, 1) == "active";
    const std::string to = active ? "unreachable" : "down";
    std::string reason = active ? "no heartbeat for " + std::to_string(rs.int64(i, 2).value_or(0)) +
                                      " s (timeout " + secondsText(options.heartbeat_timeout) + ")"
                                : "unreachable for " + std::to_string(rs.int64(i, 3).value_or(0)) +
                                      " s (down after " + secondsText(options.down_after) + ")";
    PLFM_TRY(tx.exec("UPDATE node_liveness SET state = $2, state_since = $3 WHERE node_id = $1",
                     {node, to, now}));
    evs.push_back(stateChanged(node, seqs[node] + 1, rs.text(i, 1), to, reason));
  }
  return evs;
}

}  // namespace plfm::cp
