// The node agent's routes: enrollment, heartbeats, the NodePlan long-poll
// and instance status reports (volume reports: api_agent_volumes.cc). Each is idempotent by its own
// contract, so none takes an Idempotency-Key (docs/specs/scheduler/node-plan.md).
#include <algorithm>
#include <array>
#include <cctype>

#include "api.h"
#include "node_plan.h"
#include "nodes.h"
#include "plfm/reconcile/types.h"
#include "services_feed.h"
#include "volume_reports.h"

namespace plfm::cp {
namespace {

Error invalid(std::string_view field, const std::string& why) {
  return Error(apierr::kInvalidField, "field '" + std::string(field) + "' " + why)
      .with("field", std::string(field));
}

// `prefix`: how the error names an object's field ("mesh." names mesh.peers).
Result<int64_t> requireInt(const json::Json& body, std::string_view field, int64_t lo, int64_t hi,
                           std::string_view prefix = {}) {
  auto it = body.find(field);
  if (it == body.end() || !it->is_number_integer() || it->get<int64_t>() < lo ||
      it->get<int64_t>() > hi) {
    return invalid(std::string(prefix) + std::string(field),
                   "must be an integer " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  return it->get<int64_t>();
}

bool printable(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c > 32 && c < 127; });
}

// The heartbeat's `mesh` figures (mesh.md, "Operator view and the bench"),
// checked field by field and rebuilt, so only these keys are ever stored.
Result<json::Json> parseMeshStats(const json::Json& m) {
  if (!m.is_object()) return invalid("mesh", "must be an object");
  for (const auto& item : m.items()) {
    static constexpr std::array<std::string_view, 5> kKeys = {
        "peers", "peers_up", "latest_handshake_at", "rx_bytes", "tx_bytes"};
    if (std::find(kKeys.begin(), kKeys.end(), item.key()) == kKeys.end()) {
      return invalid("mesh",
                     "has an unknown field (allowed: peers, peers_up, "
                     "latest_handshake_at, rx_bytes, tx_bytes)");
    }
  }
  // One peer per node: far above any cluster this control plane runs.
  PLFM_ASSIGN_OR_RETURN(int64_t peers, requireInt(m, "peers", 0, 65535, "mesh."));
  PLFM_ASSIGN_OR_RETURN(int64_t up, requireInt(m, "peers_up", 0, peers, "mesh."));
  PLFM_ASSIGN_OR_RETURN(int64_t rx, requireInt(m, "rx_bytes", 0, INT64_MAX, "mesh."));
  PLFM_ASSIGN_OR_RETURN(int64_t tx, requireInt(m, "tx_bytes", 0, INT64_MAX, "mesh."));
  json::Json latest = nullptr;
  auto it = m.find("latest_handshake_at");
  if (it == m.end()) return invalid("mesh.latest_handshake_at", "is required (null: never)");
  if (!it->is_null()) {
    if (!it->is_string() || !isRfc3339Utc(it->get_ref<const std::string&>())) {
      return invalid("mesh.latest_handshake_at", "must be an RFC 3339 UTC time or null");
    }
    latest = *it;
  }
  return json::Json{{"peers", peers},
                    {"peers_up", up},
                    {"latest_handshake_at", latest},
                    {"rx_bytes", rx},
                    {"tx_bytes", tx}};
}

Result<NodeFacts> parseFacts(const json::Json& body) {
  NodeFacts f;
  PLFM_ASSIGN_OR_RETURN(f.hostname, requireString(body, "hostname"));
  const bool host_ok =
      !f.hostname.empty() && f.hostname.size() <= 253 &&
      std::all_of(f.hostname.begin(), f.hostname.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.';
      });
  if (!host_ok) return invalid("hostname", "must be 1 to 253 letters, digits, '-' or '.'");
  PLFM_ASSIGN_OR_RETURN(f.cores, requireInt(body, "cores", 1, 4096));
  PLFM_ASSIGN_OR_RETURN(f.memory_mb, requireInt(body, "memory_mb", 64, int64_t{1} << 32));
  PLFM_ASSIGN_OR_RETURN(f.disk_mb, requireInt(body, "disk_mb", 0, int64_t{1} << 40));
  auto labels = body.find("labels");
  if (labels != body.end()) {
    if (!labels->is_object() || labels->size() > 64) {
      return invalid("labels", "must be an object of at most 64 string values");
    }
    for (const auto& [k, v] : labels->items()) {
      if (k.empty() || k.size() > 63 || !printable(k) || !v.is_string() ||
          v.get<std::string>().size() > 255) {
        return invalid("labels", "keys must be 1 to 63 printable characters and values strings");
      }
    }
    f.labels_json = json::dump(*labels);
  }
  PLFM_ASSIGN_OR_RETURN(f.wireguard_public_key, requireString(body, "wireguard_public_key"));
  if (!meshPublicKey(f.wireguard_public_key)) {
    return invalid("wireguard_public_key", std::string(kMeshKeyRule));
  }
  PLFM_ASSIGN_OR_RETURN(f.underlay_address, requireString(body, "underlay_address"));
  // It becomes the other nodes' WireGuard endpoint (NodePlan mesh.peers),
  // so only an address or a host name, nothing a config file could misread.
  if (!meshEndpointHost(f.underlay_address)) {
    return invalid("underlay_address",
                   "must be an IPv6 or IPv4 address or a host name the other nodes can reach");
  }
  if (body.contains("mesh_port")) {
    PLFM_ASSIGN_OR_RETURN(f.mesh_port, requireInt(body, "mesh_port", 1, 65535));
  }
  PLFM_ASSIGN_OR_RETURN(auto role, optionalString(body, "role"));
  if (role) {
    if (*role != kRoleWorker && *role != kRoleEdge) {
      return invalid("role", R"(must be "worker" or "edge")");
    }
    f.role = *role;
  }
  auto runtimes = body.find("runtimes");
  if (runtimes == body.end() || !runtimes->is_array() || runtimes->empty() ||
      runtimes->size() > 8) {
    return invalid("runtimes", R"(must be a list of 1 to 8 runtimes, e.g. ["qemu"])");
  }
  for (const auto& r : *runtimes) {
    const std::string name = r.is_string() ? r.get<std::string>() : std::string();
    const bool name_ok =
        !name.empty() && name.size() <= 32 && std::all_of(name.begin(), name.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
        });
    if (!name_ok) {
      return invalid("runtimes", R"(entries must be names like "qemu" or "firecracker")");
    }
    f.runtimes.push_back(name);
  }
  return f;
}

struct StatusReport {
  int64_t generation = 0;
  int64_t seq = 0;
  std::string phase;
  std::optional<int64_t> exit_code;
  std::string reason;
  json::Json timings = json::Json::object();
};

Result<StatusReport> parseReport(const json::Json& body) {
  StatusReport r;
  PLFM_ASSIGN_OR_RETURN(r.generation, requireInt(body, "generation", 1, INT32_MAX));
  PLFM_ASSIGN_OR_RETURN(r.seq, requireInt(body, "seq", 1, INT64_MAX));
  PLFM_ASSIGN_OR_RETURN(r.phase, requireString(body, "phase"));
  const auto phase = reconcile::parsePhase(r.phase);
  if (!phase || *phase == reconcile::Phase::kAllocated) {
    return invalid("phase",
                   "must be booting, running, healthy, unhealthy, exited, failed, draining or "
                   "stopped");
  }
  if (auto it = body.find("exit_code"); it != body.end() && !it->is_null()) {
    PLFM_ASSIGN_OR_RETURN(r.exit_code, requireInt(body, "exit_code", -1, 255));
  }
  if (*phase == reconcile::Phase::kExited && !r.exit_code) {
    return invalid("exit_code", "is required when phase is 'exited'");
  }
  PLFM_ASSIGN_OR_RETURN(auto reason, optionalString(body, "reason"));
  r.reason = reason.value_or("");
  if (r.reason.size() > 1024) return invalid("reason", "must be at most 1024 characters");
  if (auto it = body.find("timings"); it != body.end()) {
    if (!it->is_object()) return invalid("timings", "must be an object");
    for (const auto& [k, v] : it->items()) {
      if (k != "image_ms" && k != "start_ms" && k != "boot_ms") {
        return invalid("timings." + k, "is not one of image_ms, start_ms, boot_ms");
      }
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 86'400'000) {
        return invalid("timings." + k, "must be milliseconds 0..86400000");
      }
    }
    r.timings = *it;
  }
  // The reason people read (instances_view.reason) says what went wrong.
  if (*phase == reconcile::Phase::kExited) {
    r.reason = "exited with code " + std::to_string(*r.exit_code) +
               (r.reason.empty() ? "" : ": " + r.reason);
  } else if (*phase == reconcile::Phase::kFailed && r.reason.empty()) {
    r.reason = "failed to start";
  }
  return r;
}

// The bearer token of an enrollment route, or unauthenticated.
Result<std::string> enrollmentBearer(const http::Request& req) {
  auto h = req.header("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (!h || !h->starts_with(kBearer) || h->size() != kBearer.size() + 55 ||
      !h->substr(kBearer.size()).starts_with("vt_")) {
    return Error(plfm::errc::kUnauthenticated,
                 "missing or invalid enrollment token; create one with `vt nodes enroll`");
  }
  return std::string(h->substr(kBearer.size()));
}

}  // namespace

void Api::registerAgentRoutes(http::Router& r) {
  route(r, "POST", "/v1/nodes/enroll", Access::kEnroll, [this](Ctx& ctx) -> Result<http::Response> {
    // route() checked the token (authenticateEnrollment) before the body:
    // a caller without a valid token learns nothing about what the body
    // should be.
    PLFM_ASSIGN_OR_RETURN(auto token, enrollmentBearer(ctx.req));
    PLFM_ASSIGN_OR_RETURN(
        auto body, parseBody(ctx.req, {"hostname", "cores", "memory_mb", "disk_mb", "labels",
                                       "wireguard_public_key", "underlay_address", "runtimes",
                                       "mesh_port", "role"}));
    PLFM_ASSIGN_OR_RETURN(auto facts, parseFacts(body));
    return runWrite(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
      PLFM_ASSIGN_OR_RETURN(auto redeemed, redeemEnrollment(tx, deps_.clock, token, facts,
                                                            deps_.options.cluster_ipv6_prefix,
                                                            deps_.options.enrollment_retry_window));
      const EnrolledNode& n = redeemed.first;
      Mutation m;
      m.status = n.reissued ? 200 : 201;
      m.settle = !n.reissued;  // a new node: capacity for waiting instances
      m.actor = n.node_id;
      m.body = {{"node_id", n.node_id},
                {"hostname", n.hostname},
                {"ipv6_prefix", n.ipv6_prefix},
                {"token", n.token},
                {"reissued", n.reissued},
                {"heartbeat_interval_seconds", deps_.options.heartbeat_interval.count()},
                {"heartbeat_timeout_seconds", deps_.options.heartbeat_timeout.count()},
                {"relay_public_key", relayPublicKey()}};
      m.events = std::move(redeemed.second);
      return m;
    });
  });

  route(r, "POST", "/v1/nodes/{node_id}/heartbeat", Access::kNode,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto node, pathId<NodeId>(ctx.req, "node_id"));
          // relay_key is listed only to refuse it with a reason: agents
          // before signed relay requests sent it (docs/specs/runtime/logs.md).
          PLFM_ASSIGN_OR_RETURN(
              auto body, parseBody(ctx.req, {"agent_version", "agent_url", "agent_cert_sha256",
                                             "relay_key", "volume_capacity_bytes", "mesh"}));
          if (body.contains("relay_key")) {
            return invalid("relay_key",
                           "is no longer accepted: the control plane signs each relay request "
                           "and stores no agent key; upgrade the node agent");
          }
          PLFM_ASSIGN_OR_RETURN(auto version, optionalString(body, "agent_version"));
          if (version && (version->size() > 64 || !printable(*version))) {
            return invalid("agent_version", "must be at most 64 printable characters");
          }
          PLFM_ASSIGN_OR_RETURN(auto agent_url, optionalString(body, "agent_url"));
          PLFM_ASSIGN_OR_RETURN(auto cert, optionalString(body, "agent_cert_sha256"));
          if (cert && !agent_url) return invalid("agent_cert_sha256", "needs agent_url");
          // The size of the filesystem that holds the agent's volumes
          // (docs/specs/runtime/volume-mounts.md); absent: keep the last one.
          std::optional<int64_t> volume_capacity;
          if (body.contains("volume_capacity_bytes")) {
            PLFM_ASSIGN_OR_RETURN(volume_capacity,
                                  requireInt(body, "volume_capacity_bytes", 0, INT64_MAX));
          }
          // The mesh figures (absent: the node has no mesh interface now).
          std::optional<json::Json> mesh;
          if (auto it = body.find("mesh"); it != body.end() && !it->is_null()) {
            PLFM_ASSIGN_OR_RETURN(mesh, parseMeshStats(*it));
          }
          return runWrite(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            AgentEndpoint endpoint;
            if (agent_url) {
              PLFM_ASSIGN_OR_RETURN(
                  auto reg, tx.exec("SELECT underlay_address FROM node_liveness WHERE node_id = $1",
                                    {node.str()}));
              PLFM_ASSIGN_OR_RETURN(
                  endpoint, checkAgentEndpoint(*agent_url, cert,
                                               reg.rows() == 1 ? reg.text(0, 0) : std::string()));
            }
            PLFM_ASSIGN_OR_RETURN(auto beat,
                                  recordHeartbeat(tx, deps_.clock, node.str(), version.value_or(""),
                                                  endpoint, volume_capacity, mesh));
            PLFM_ASSIGN_OR_RETURN(int64_t plan, planVersion(tx.connection(), node.str()));
            Mutation m;
            m.status = 200;
            m.body = {{"node_id", node.str()},
                      {"state", "active"},
                      {"previous_state", beat.state},
                      {"plan_version", plan},
                      {"heartbeat_interval_seconds", deps_.options.heartbeat_interval.count()},
                      {"heartbeat_timeout_seconds", deps_.options.heartbeat_timeout.count()},
                      {"relay_public_key", relayPublicKey()}};
            if (beat.transition) {
              m.events = {std::move(*beat.transition)};
              m.settle = true;  // a node back: its instances may be stopped or kept
            }
            return m;
          });
        });

  route(r, "GET", "/v1/nodes/{node_id}/plan", Access::kNode,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto node, pathId<NodeId>(ctx.req, "node_id"));
          PLFM_ASSIGN_OR_RETURN(int64_t after, queryInt(ctx.req, "after", 0, 0, INT64_MAX));
          // The feed wakes us when this node's plan changes.
          PLFM_TRY(awaitNodeVersion(ctx, after, deps_.plans, node.str(),
                                    [&] { return planVersion(ctx.db(), node.str()); }));
          PLFM_ASSIGN_OR_RETURN(
              auto plan, buildNodePlan(ctx.db(), node.str(), deps_.options.cluster_ipv6_prefix));
          return jsonResponse(200, plan);
        });

  // The services feed for the node's DNS responder (services_feed.h): one
  // global version, so the feed wakes every waiter when it rises.
  route(r, "GET", "/v1/nodes/{node_id}/services", Access::kNode,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto node, pathId<NodeId>(ctx.req, "node_id"));
          PLFM_ASSIGN_OR_RETURN(int64_t after, queryInt(ctx.req, "after", 0, 0, INT64_MAX));
          PLFM_TRY(awaitNodeVersion(ctx, after, deps_.services, std::string(kServicesFeedKey),
                                    [&] { return servicesVersion(ctx.db()); }));
          PLFM_ASSIGN_OR_RETURN(auto feed, buildServicesFeed(ctx.db(), node.str()));
          return jsonResponse(200, feed);
        });

  route(r, "POST", "/v1/nodes/{node_id}/instances/{instance_id}/status", Access::kNode,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto node, pathId<NodeId>(ctx.req, "node_id"));
          PLFM_ASSIGN_OR_RETURN(auto inst, pathId<InstanceId>(ctx.req, "instance_id"));
          PLFM_ASSIGN_OR_RETURN(auto body, parseBody(ctx.req, {"generation", "seq", "phase",
                                                               "exit_code", "reason", "timings"}));
          PLFM_ASSIGN_OR_RETURN(auto report, parseReport(body));
          return runWrite(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec("SELECT node_id, generation, org_id FROM "
                                                   "instances_view WHERE instance_id = $1",
                                                   {inst.str()}));
            if (rs.rows() != 1 || rs.text(0, 0) != node.str()) {
              return Error(plfm::errc::kNotFound,
                           "instance " + inst.str() + " not found on node " + node.str())
                  .with("instance_id", inst.str());
            }
            const int64_t current = rs.int64(0, 1).value_or(0);
            if (report.generation > current) {
              return Error(plfm::errc::kFailedPrecondition,
                           "instance " + inst.str() + " has no generation " +
                               std::to_string(report.generation) + " (current " +
                               std::to_string(current) + "); fetch the plan again")
                  .with("field", "generation");
            }
            Mutation m;
            m.status = 200;
            m.body = {{"instance_id", inst.str()},
                      {"generation", report.generation},
                      {"seq", report.seq},
                      {"applied", false}};
            if (report.generation < current) return m;  // a stale generation
            // Newer than every report accepted so far, or nothing changes.
            PLFM_ASSIGN_OR_RETURN(
                auto up, tx.exec("INSERT INTO instance_reports (instance_id, generation, seq) "
                                 "VALUES ($1, $2, $3) ON CONFLICT (instance_id) DO UPDATE SET "
                                 "generation = $2, seq = $3 WHERE (instance_reports.generation, "
                                 "instance_reports.seq) < ($2, $3) RETURNING 1",
                                 {inst.str(), report.generation, report.seq}));
            if (up.rows() == 0) return m;
            PLFM_TRY(EventStore::lockLog(tx));
            PLFM_ASSIGN_OR_RETURN(auto seqs, EventStore::aggregateSeqs(tx, {inst.str()}));
            m.body["applied"] = true;
            m.events = {
                events::toNewEvent(events::InstanceStatusReported{.instance_id = inst.str(),
                                                                  .node_id = node.str(),
                                                                  .generation = report.generation,
                                                                  .seq = report.seq,
                                                                  .phase = report.phase,
                                                                  .exit_code = report.exit_code,
                                                                  .reason = report.reason,
                                                                  .timings = report.timings},
                                   seqs[inst.str()] + 1, std::string(rs.text(0, 2)))};
            return m;
          });
        });
  registerAgentVolumeRoutes(r);  // api_agent_volumes.cc
}

Result<void> Api::awaitNodeVersion(Ctx& ctx, int64_t after, VersionFeed* feed,
                                   const std::string& key,
                                   const std::function<Result<int64_t>()>& version) {
  PLFM_ASSIGN_OR_RETURN(int64_t wait,
                        queryInt(ctx.req, "wait", deps_.options.default_plan_wait.count(), 0,
                                 deps_.options.max_long_poll.count()));
  const auto deadline = deps_.clock.steadyNow() + std::chrono::seconds(wait);
  for (;;) {
    PLFM_ASSIGN_OR_RETURN(int64_t current, version());
    const bool stopping = feed != nullptr && !feed->running();
    if (current > after || deps_.clock.steadyNow() >= deadline || stopping) return ok();
    // Long-poll: give the connection back while waiting.
    ctx.lease.reset();
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - deps_.clock.steadyNow());
    if (feed != nullptr) {
      feed->waitBeyond(key, after, left);
    } else {
      deps_.worker.waitBeyond(deps_.worker.checkpoint(), left);
    }
    PLFM_TRY(reacquire(ctx));
    // A node removed (or its credential revoked) while it waited.
    PLFM_TRY(recheck(ctx.db(), deps_.clock, ctx.who));
  }
}

}  // namespace plfm::cp
