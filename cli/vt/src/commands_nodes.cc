// vt nodes: enroll, list, get, cordon, uncordon, drain, rm, rotate-key (platform admins);
// vt system status (the control-plane leader).
// docs/specs/scheduler/nodes.md describes what they do on the cluster.
#include <algorithm>

#include "commands.h"
#include "invocation.h"

namespace plfm::vt {
namespace {

using nlohmann::json;

std::string scheduling(const json& n) {
  if (n.value("draining", false)) return "draining";
  if (n.value("cordoned", false)) return "cordoned";
  return "schedulable";
}

std::string memoryUse(const json& n) {
  const json& a = n.contains("allocated") ? n["allocated"] : json::object();
  return std::to_string(a.value("memory_mb", int64_t{0})) + "/" +
         std::to_string(n.value("memory_mb", int64_t{0}));
}

// NODE is an id or a hostname.
Result<json> findNode(ApiClient& client, const std::string& selector) {
  if (selector.rfind("node_", 0) == 0) return client.get("/v1/nodes/" + selector);
  auto nodes = client.listAll("/v1/nodes");
  if (!nodes) return unexpected(nodes.error());
  std::vector<json> matches;
  for (auto& n : *nodes) {
    if (n.value("hostname", "") == selector) matches.push_back(std::move(n));
  }
  if (matches.size() == 1) return matches[0];
  if (matches.empty()) {
    return Error(errc::kNotFound, "no node with id or hostname '" + selector + "'")
        .with("hint", "list nodes with `vt nodes list`");
  }
  return Error(errc::kInvalidArgument,
               std::to_string(matches.size()) + " nodes have hostname '" + selector + "'")
      .with("hint", "name the node by its id (vt nodes list)");
}

int nodesEnroll(Invocation& inv) {
  int64_t ttl = 900;
  if (auto v = inv.args.value("ttl")) {
    ttl = parseDuration(*v);
    if (ttl < 60 || ttl > 86'400) {
      return fail(inv, Error("usage", "--ttl must be a duration from 1m to 24h, like 15m or 900s"));
    }
  }
  auto ctx = inv.context();
  if (!ctx) return fail(inv, ctx.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto e = (*client)->mutate("POST", "/v1/nodes/enrollments", {{"ttl_seconds", ttl}});
  if (!e) return fail(inv, e.error());
  const std::string id = (*e)["id"];
  const std::string token = (*e)["token"].is_string() ? (*e)["token"].get<std::string>() : "";
  if (inv.out.quiet() && inv.out.format() != Format::kJson) {
    // For scripts: TOKEN=$(vt nodes enroll -q)
    inv.out.out() << token << "\n";
    return 0;
  }
  std::string urls;  // the agent takes the same list: one URL per replica
  for (const std::string& url : ctx->urls) {
    if (!urls.empty()) urls += ",";
    urls += url;
  }
  Receipt r{.action = "node.enrollment_created",
            .message = "Created enrollment " + id + "; its token enrolls one node until " +
                       shortTime((*e)["expires_at"]) + " UTC",
            .ids = {id},
            .notes = {"token: " + (token.empty() ? "(not shown again)" : token) + " (shown once)"},
            .next = {"plfm-node-agent run --control-plane " + urls + " --enroll-token " +
                         (token.empty() ? "TOKEN" : token),
                     "vt nodes list"}};
  inv.out.receipt(r, *e);
  return 0;
}

// "worker" or "edge" (docs/specs/networking/mesh.md); a control plane from
// before the mesh sends none: every node is a worker.
std::string roleOf(const json& n) {
  auto it = n.find("role");
  return it != n.end() && it->is_string() ? it->get<std::string>() : "worker";
}

// The heartbeat's mesh figures (mesh.md, "Operator view and the bench"):
// "peers_up/peers", or "-" when the node reports none (no mesh interface,
// or an agent or control plane from before).
const json* meshOf(const json& n) {
  auto it = n.find("mesh");
  return it != n.end() && it->is_object() ? &*it : nullptr;
}

std::string meshCell(const json& n) {
  const json* m = meshOf(n);
  if (m == nullptr) return "-";
  return cell(m->value("peers_up", json())) + "/" + cell(m->value("peers", json()));
}

// The node's mesh key (mesh.md, "Contract for key rotation"): since when it
// is in use, and whether a rotation runs; "-" from a control plane without
// rotation.
std::string meshKeyDetails(const json& n) {
  auto it = n.find("mesh_key");
  if (it == n.end() || !it->is_object()) return "-";
  std::string s = "since " + shortTime(it->value("since", json()));
  if (!it->value("rotating", false)) return s;
  const json next = it->value("next_public_key", json());
  return s + (next.is_string() ? ", rotating (new key " + next.get<std::string>() + " staged)"
                               : ", rotating (requested; the node has not staged a key yet)");
}

std::string meshDetails(const json& n) {
  const json* m = meshOf(n);
  if (m == nullptr) return "-";
  const json latest = m->value("latest_handshake_at", json());
  return meshCell(n) + " peers up, latest handshake " +
         (latest.is_string() ? shortTime(latest) : std::string("never")) + ", rx " +
         cell(m->value("rx_bytes", json())) + " B, tx " + cell(m->value("tx_bytes", json())) + " B";
}

int nodesList(Invocation& inv) {
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto items = (*client)->listAll("/v1/nodes");
  if (!items) return fail(inv, items.error());
  std::sort(items->begin(), items->end(), [](const json& a, const json& b) {
    return std::make_pair(a.value("hostname", ""), a.value("id", "")) <
           std::make_pair(b.value("hostname", ""), b.value("id", ""));
  });
  printList(inv, *items,
            {"ID", "HOSTNAME", "ROLE", "STATE", "SCHEDULING", "CORES", "MEMORY_MB", "INSTANCES",
             "IPV6_PREFIX", "MESH", "HEARTBEAT"},
            [](const json& n) {
              const json& a = n.contains("allocated") ? n["allocated"] : json::object();
              return std::vector<std::string>{field(n, "id"),
                                              field(n, "hostname"),
                                              roleOf(n),
                                              field(n, "state"),
                                              scheduling(n),
                                              cell(field(n, "cores")),
                                              memoryUse(n),
                                              std::to_string(a.value("instances", 0)),
                                              cell(field(n, "ipv6_prefix")),
                                              meshCell(n),
                                              shortTime(n.value("last_heartbeat_at", json()))};
            });
  return 0;
}

int nodesGet(Invocation& inv) {
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto n = findNode(**client, inv.args.positionals[0]);
  if (!n) return fail(inv, n.error());
  if (inv.out.format() == Format::kJson) {
    inv.out.json(*n);
    return 0;
  }
  if (inv.out.quiet()) {
    inv.out.out() << (*n)["id"].get<std::string>() << "\n";
    return 0;
  }
  std::string labels;
  for (const auto& [k, v] : (*n)["labels"].items()) {
    labels += (labels.empty() ? "" : ",") + k + "=" + cell(v);
  }
  std::string runtimes;
  for (const auto& r : (*n)["runtimes"]) runtimes += (runtimes.empty() ? "" : ",") + cell(r);
  const json& a = (*n)["allocated"];
  inv.out.fields({{"id", (*n)["id"]},
                  {"hostname", (*n)["hostname"]},
                  {"role", roleOf(*n)},
                  {"state", (*n)["state"].get<std::string>() +
                                ((*n)["state_reason"].get<std::string>().empty()
                                     ? ""
                                     : " (" + (*n)["state_reason"].get<std::string>() + ")")},
                  {"since", shortTime((*n)["state_since"])},
                  {"scheduling", scheduling(*n)},
                  {"cores", cell((*n)["cores"])},
                  {"memory_mb", cell((*n)["memory_mb"])},
                  {"disk_mb", cell((*n)["disk_mb"])},
                  {"allocated", std::to_string(a.value("instances", 0)) + " instances, " +
                                    std::to_string(a.value("vcpus", 0)) + " vCPUs, " +
                                    std::to_string(a.value("memory_mb", int64_t{0})) + " MiB"},
                  {"ipv6_prefix", cell((*n)["ipv6_prefix"])},
                  {"underlay", cell((*n)["underlay_address"])},
                  {"mesh_port", n->contains("mesh_port") ? cell((*n)["mesh_port"]) : "51820"},
                  {"mesh", meshDetails(*n)},
                  {"mesh_key", meshKeyDetails(*n)},
                  {"agent_url",
                   n->value("agent_url", "").empty() ? "-" : (*n)["agent_url"].get<std::string>()},
                  {"runtimes", runtimes.empty() ? "-" : runtimes},
                  {"labels", labels.empty() ? "-" : labels},
                  {"plan_version", cell((*n)["plan_version"])},
                  {"last_heartbeat", shortTime((*n)["last_heartbeat_at"])},
                  {"created", shortTime((*n)["created_at"])}});
  return 0;
}

// cordon, uncordon and drain: one PUT of the scheduling flags.
// One mutation of the node NODE names (id or hostname): `method` on
// /v1/nodes/ID`suffix`, with the id and hostname kept for the receipt.
struct NodeMutation {
  json answer;
  std::string id;
  std::string host;
};

Result<NodeMutation> mutateNode(Invocation& inv, const std::string& method,
                                const std::string& suffix, const json& body) {
  PLFM_ASSIGN_OR_RETURN(ApiClient * client, inv.api());
  PLFM_ASSIGN_OR_RETURN(json n, findNode(*client, inv.args.positionals[0]));
  NodeMutation m{{}, n["id"], n["hostname"]};
  PLFM_ASSIGN_OR_RETURN(m.answer, client->mutate(method, "/v1/nodes/" + m.id + suffix, body));
  return m;
}

int setScheduling(Invocation& inv, const json& flags, const std::string& verb,
                  const std::string& what) {
  auto m = mutateNode(inv, "PUT", "/scheduling", flags);
  if (!m) return fail(inv, m.error());
  const std::string& id = m->id;
  const std::string& host = m->host;
  Receipt r{.action = "node.scheduling_changed",
            .message = verb + " node " + host + " (" + id + ")",
            .ids = {id},
            .notes = {what},
            .next = {"vt nodes get " + host}};
  if (flags.value("cordoned", false) || flags.value("draining", false)) {
    r.next.push_back("vt nodes uncordon " + host);
  }
  inv.out.receipt(r, m->answer);
  return 0;
}

int nodesRemove(Invocation& inv) {
  auto m = mutateNode(inv, "DELETE", "", json::object());
  if (!m) return fail(inv, m.error());
  const std::string& id = m->id;
  const std::string& host = m->host;
  Receipt r{.action = "node.removed",
            .message = "Removed node " + host + " (" + id + ")",
            .ids = {id},
            .notes = {"its credential is revoked: its heartbeats and plan polls are refused",
                      "its instances are replaced on other nodes"},
            .next = {"vt nodes list", "vt nodes enroll"}};
  inv.out.receipt(r, m->answer);
  return 0;
}

int nodesRotateKey(Invocation& inv) {
  auto m = mutateNode(inv, "POST", "/mesh-key/rotate", json::object());
  if (!m) return fail(inv, m.error());
  const std::string& id = m->id;
  const std::string& host = m->host;
  const bool staged = m->answer.contains("next") && m->answer["next"].is_object();
  Receipt r{.action = "node.mesh_key_rotation_requested",
            .message = staged ? "Node " + host + " (" + id + ") is already rotating its mesh key"
                              : "Asked node " + host + " (" + id + ") to rotate its mesh key",
            .ids = {id},
            .notes = {"its agent brings up its second WireGuard interface with a new key, moves "
                      "each peer's route to it, then commits the key; the private key never "
                      "leaves the node"},
            .next = {"vt nodes get " + host}};
  inv.out.receipt(r, m->answer);
  return 0;
}

const Positional kNode{.name = "NODE", .help = "node id (node_...) or hostname"};

// The database primary's standbys: "NAME sync_state, replay lag N ms; ...".
std::string replicationCell(const json& replication) {
  if (!replication.is_object()) return "- (no standby)";
  std::string out;
  const json standbys = replication.value("standbys", json::array());
  if (!standbys.is_array()) return "- (no standby)";
  for (const auto& s : standbys) {
    if (!s.is_object()) continue;
    if (!out.empty()) out += "; ";
    out += s.value("name", "");
    const std::string sync = s.value("sync_state", "");
    out += ' ';
    out += sync.empty() ? "(state hidden: grant pg_monitor)" : sync;
    const json lag = s.value("replay_lag_ms", json());
    if (lag.is_number_integer()) {
      out += ", replay lag ";
      out += std::to_string(lag.get<int64_t>());
      out += " ms";
    }
  }
  return out.empty() ? "- (no standby)" : out;
}

// vt system status: the control-plane replicas' leader and fencing epoch
// (docs/specs/control-plane/ha.md, "Observing it").
int systemStatus(Invocation& inv) {
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto st = (*client)->get("/v1/system/status");
  if (!st) return fail(inv, st.error());
  if (inv.out.format() == Format::kJson) {
    inv.out.json(*st);
    return 0;
  }
  const json& leader = (*st)["leader"];
  const std::string holder = leader.value("replica_id", "");
  if (inv.out.quiet()) {
    inv.out.out() << (holder.empty() ? "-" : holder) << "\n";
    return 0;
  }
  inv.out.fields({{"replica", cell((*st)["replica_id"])},
                  {"leader", holder.empty() ? "- (no replica has led yet)" : holder},
                  {"epoch", cell(leader["epoch"])},
                  {"leading since", shortTime(leader["since"])},
                  {"this replica leads", st->value("this_replica_leads", false) ? "yes" : "no"},
                  {"replication", replicationCell(st->value("replication", json()))}});
  return 0;
}

}  // namespace

Command systemCommand() {
  Command c{.name = "system", .summary = "The control plane itself (platform admins)"};
  c.children.push_back(
      {.name = "status",
       .summary = "Show the control-plane leader, its epoch and the database replication",
       .help = "The replica that answered, the leader among the control-plane replicas,\n"
               "its fencing epoch (it grows at every change of leader), since when it\n"
               "leads, and the database primary's standbys with their sync state and\n"
               "replay lag. With --quiet, prints only the leader's replica id.",
       .run = systemStatus});
  return c;
}

Command nodesCommand() {
  Command c{.name = "nodes", .summary = "Cluster nodes (platform admins)"};
  c.children.push_back({.name = "enroll",
                        .summary = "Create a one-time token that enrolls a node",
                        .help = "Prints the token once, with the command to run on the new node.\n"
                                "With --quiet, prints only the token.\n\nExamples:\n"
                                "  vt nodes enroll\n  vt nodes enroll --ttl 1h\n"
                                "  TOKEN=$(vt nodes enroll -q)",
                        .flags = {{.name = "ttl",
                                   .value_name = "DURATION",
                                   .help = "how long the token is valid: 1m to 24h (default 15m)"}},
                        .mutating = true,
                        .run = nodesEnroll});
  c.children.push_back({.name = "list", .summary = "List nodes", .run = nodesList});
  c.children.push_back(
      {.name = "get", .summary = "Show one node", .positionals = {kNode}, .run = nodesGet});
  c.children.push_back({.name = "cordon",
                        .summary = "Stop placing new instances on a node (its instances stay)",
                        .positionals = {kNode},
                        .mutating = true,
                        .run = [](Invocation& inv) {
                          return setScheduling(
                              inv, {{"cordoned", true}}, "Cordoned",
                              "it takes no new instances; its instances keep running");
                        }});
  c.children.push_back({.name = "uncordon",
                        .summary = "Let a cordoned or draining node take instances again",
                        .positionals = {kNode},
                        .mutating = true,
                        .run = [](Invocation& inv) {
                          return setScheduling(inv, {{"cordoned", false}, {"draining", false}},
                                               "Uncordoned", "it takes new instances again");
                        }});
  c.children.push_back(
      {.name = "rm",
       .summary = "Remove a node and revoke its credential",
       .help = "The node's heartbeats and plan polls are refused from then on, and its\n"
               "instances are replaced on other nodes like those of a lost node. To bring\n"
               "the host back, enroll it anew (vt nodes enroll).",
       .positionals = {kNode},
       .mutating = true,
       .run = nodesRemove});
  c.children.push_back(
      {.name = "rotate-key",
       .summary = "Rotate a node's mesh WireGuard key",
       .help = "The node's agent stages a new key on its second mesh interface, moves its\n"
               "routes there peer by peer, then commits it (docs/specs/networking/mesh.md).\n"
               "`vt nodes get NODE` shows the rotation until the node commits. Asking again\n"
               "while a rotation runs changes nothing.",
       .positionals = {kNode},
       .mutating = true,
       .run = nodesRotateKey});
  c.children.push_back(
      {.name = "drain",
       .summary = "Move a node's instances to other nodes",
       .help = "The node takes no new instances, and each of its instances is replaced\n"
               "elsewhere under its deploy strategy (rolling: replacements first).",
       .positionals = {kNode},
       .mutating = true,
       .run = [](Invocation& inv) {
         return setScheduling(inv, {{"draining", true}}, "Draining",
                              "its instances move to other nodes; see `vt instances list`");
       }});
  return c;
}

}  // namespace plfm::vt
