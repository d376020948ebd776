#include "agent/cp_client.h"

#include "plfm/secrets/format.h"

namespace plfm::agent {
using nlohmann::json;

nlohmann::json NodeCredential::toJson() const {
  return {{"control_plane", control_planes.empty() ? std::string() : control_planes.front()},
          {"control_planes", control_planes},
          {"node_id", node_id},
          {"token", token},
          {"ipv6_prefix", ipv6_prefix},
          {"heartbeat_interval_seconds", heartbeat_interval_seconds},
          {"relay_public_key", relay_public_key}};
}

Result<NodeCredential> NodeCredential::fromJson(const json& j) {
  try {
    NodeCredential c;
    if (auto it = j.find("control_planes"); it != j.end() && !it->empty()) {
      c.control_planes = it->get<std::vector<std::string>>();
    } else {
      c.control_planes = {j.at("control_plane").get<std::string>()};
    }
    c.node_id = j.at("node_id").get<std::string>();
    c.token = j.at("token").get<std::string>();
    c.ipv6_prefix = j.value("ipv6_prefix", "");
    c.heartbeat_interval_seconds = j.value("heartbeat_interval_seconds", 10);
    c.relay_public_key = j.value("relay_public_key", "");
    return c;
  } catch (const json::exception& e) {
    return Error(errc::kInvalidArgument, std::string("bad node credential file: ") + e.what());
  }
}

Error apiError(int status, const std::string& body, std::string_view what) {
  std::string code = "http_" + std::to_string(status);
  std::string message = "no error body";
  auto j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    code = j["error"].value("code", code);
    message = j["error"].value("message", message);
  }
  std::string_view generic = status == 401   ? errc::kUnauthenticated
                             : status == 403 ? errc::kPermissionDenied
                             : status == 404 ? errc::kNotFound
                             : status == 409 ? errc::kFailedPrecondition
                             : status >= 500 ? errc::kUnavailable
                                             : errc::kInvalidArgument;
  return Error(generic, std::string(what) + ": control plane answered " + std::to_string(status) +
                            " " + code + ": " + message)
      .with("status", std::to_string(status))
      .with("code", code);
}

ControlPlaneClient::ControlPlaneClient(std::vector<std::string> base_urls, std::string token,
                                       http::ClientTlsOptions tls)
    : token_(std::move(token)), client_(std::move(base_urls), {.tls = std::move(tls)}) {}

ControlPlaneClient::ControlPlaneClient(std::string base_url, std::string token,
                                       http::ClientTlsOptions tls)
    : ControlPlaneClient(std::vector<std::string>{std::move(base_url)}, std::move(token),
                         std::move(tls)) {}

Result<json> ControlPlaneClient::call(const std::string& method, const std::string& target,
                                      const std::string& body, std::chrono::milliseconds timeout,
                                      int* status, const std::string& idempotency_key) {
  http::Headers headers;
  headers.set("Authorization", "Bearer " + token_);
  if (!idempotency_key.empty()) headers.set("Idempotency-Key", idempotency_key);
  if (!body.empty()) headers.set("Content-Type", "application/json");
  PLFM_ASSIGN_OR_RETURN(auto resp, client_.send(method, target, headers, body, timeout));
  *status = resp.status;
  if (resp.status == 304) return json(nullptr);
  // The status first: an error with an empty body (from a proxy in front of
  // the replicas) is an error, not an empty answer.
  if (resp.status / 100 != 2) return apiError(resp.status, resp.body, method + " " + target);
  if (resp.body.empty()) return json(nullptr);
  auto j = json::parse(resp.body, nullptr, false);
  if (j.is_discarded())
    return Error(errc::kUnavailable, method + " " + target + ": body is not JSON");
  return j;
}

Result<NodeCredential> ControlPlaneClient::enroll(const std::string& base_url,
                                                  const std::string& enrollment_token,
                                                  const NodeFacts& facts,
                                                  const http::ClientTlsOptions& tls) {
  return enroll(std::vector<std::string>{base_url}, enrollment_token, facts, tls);
}

Result<NodeCredential> ControlPlaneClient::enroll(const std::vector<std::string>& base_urls,
                                                  const std::string& enrollment_token,
                                                  const NodeFacts& facts,
                                                  const http::ClientTlsOptions& tls) {
  json body = {{"hostname", facts.hostname},
               {"cores", facts.cores},
               {"memory_mb", facts.memory_mb},
               {"disk_mb", facts.disk_mb},
               {"labels", facts.labels},
               {"wireguard_public_key", facts.wireguard_public_key},
               {"underlay_address", facts.underlay_address},
               {"runtimes", facts.runtimes}};
  if (facts.mesh_port != 51820) body["mesh_port"] = facts.mesh_port;
  if (facts.role != "worker") body["role"] = facts.role;
  ControlPlaneClient c(base_urls, enrollment_token, tls);
  int status = 0;
  PLFM_ASSIGN_OR_RETURN(
      auto j, c.call("POST", "/v1/nodes/enroll", body.dump(), std::chrono::seconds(30), &status));
  try {
    NodeCredential cred;
    cred.control_planes = base_urls;
    cred.node_id = j.at("node_id").get<std::string>();
    cred.token = j.at("token").get<std::string>();
    cred.ipv6_prefix = j.at("ipv6_prefix").get<std::string>();
    cred.heartbeat_interval_seconds = j.value("heartbeat_interval_seconds", 10);
    cred.relay_public_key = j.value("relay_public_key", "");
    return cred;
  } catch (const json::exception& e) {
    return Error(errc::kUnavailable, std::string("enrollment answer: ") + e.what());
  }
}

Result<ControlPlaneClient::HeartbeatReply> ControlPlaneClient::heartbeat(
    const std::string& node_id, const std::string& agent_version, const std::string& agent_url,
    const std::string& cert_sha256, uint64_t volume_capacity_bytes, const json& mesh) {
  int status = 0;
  json body{{"agent_version", agent_version}};
  // The size of the filesystem that holds STATE/volumes (0: unknown, omitted).
  if (volume_capacity_bytes != 0) body["volume_capacity_bytes"] = volume_capacity_bytes;
  if (!agent_url.empty()) body["agent_url"] = agent_url;
  if (!agent_url.empty() && !cert_sha256.empty()) body["agent_cert_sha256"] = cert_sha256;
  if (mesh.is_object()) body["mesh"] = mesh;
  PLFM_ASSIGN_OR_RETURN(auto j, call("POST", "/v1/nodes/" + node_id + "/heartbeat", body.dump(),
                                     std::chrono::seconds(10), &status));
  HeartbeatReply reply;
  if (!j.is_object()) return reply;
  reply.plan_version = j.value("plan_version", int64_t{0});
  if (auto it = j.find("relay_public_key"); it != j.end() && it->is_string()) {
    reply.relay_public_key = it->get<std::string>();
  }
  return reply;
}

Result<json> ControlPlaneClient::longPoll(const std::string& node_id, std::string_view feed,
                                          int64_t after, std::chrono::seconds wait) {
  int status = 0;
  const std::string target = "/v1/nodes/" + node_id + "/" + std::string(feed) +
                             "?after=" + std::to_string(after) +
                             "&wait=" + std::to_string(wait.count());
  return call("GET", target, "", wait + std::chrono::seconds(15), &status);
}

Result<json> ControlPlaneClient::services(const std::string& node_id, int64_t after,
                                          std::chrono::seconds wait) {
  return longPoll(node_id, "services", after, wait);
}

Result<NodePlan> ControlPlaneClient::plan(const std::string& node_id, int64_t after,
                                          std::chrono::seconds wait) {
  PLFM_ASSIGN_OR_RETURN(auto j, longPoll(node_id, "plan", after, wait));
  // The control plane always answers with the whole plan. Anything else (an
  // empty 200 or 204, a 304 from something in front of it) is a failed poll:
  // read as a plan it would have no instances, and the agent would stop
  // every instance it runs.
  if (!j.is_object() || !j.contains("instances")) {
    return Error(errc::kUnavailable,
                 "the plan poll was answered without a plan; keeping the "
                 "current plan");
  }
  NodePlan p;
  p.version = j.value("version", after);
  if (auto it = j.find("instances"); it != j.end() && it->is_array()) p.instances = *it;
  if (auto it = j.find("volumes"); it != j.end() && it->is_array()) p.volumes = *it;
  if (auto it = j.find("volume_ops"); it != j.end() && it->is_array()) p.volume_ops = *it;
  if (auto it = j.find("mesh"); it != j.end() && it->is_object()) p.mesh = *it;
  return p;
}

Result<std::string> ControlPlaneClient::fetchSecrets(const std::string& node_id,
                                                     const std::string& instance_id,
                                                     const std::string& version) {
  http::Headers headers;
  headers.set("Authorization", "Bearer " + token_);
  std::string target =
      "/v1/nodes/" + node_id + "/instances/" + instance_id + "/secrets?version=" + version;
  PLFM_ASSIGN_OR_RETURN(auto resp,
                        client_.send("GET", target, headers, "", std::chrono::seconds(15)));
  if (resp.status != 200) return apiError(resp.status, resp.body, "fetching secrets " + version);
  return std::move(resp.body);
}

Result<std::optional<RegistryLogin>> ControlPlaneClient::registryCredentials(
    const std::string& node_id, const std::string& instance_id) {
  http::Headers headers;
  headers.set("Authorization", "Bearer " + token_);
  PLFM_ASSIGN_OR_RETURN(auto resp, client_.send("GET",
                                                "/v1/nodes/" + node_id + "/instances/" +
                                                    instance_id + "/registry-credentials",
                                                headers, "", std::chrono::seconds(15)));
  if (resp.status == 404) return std::optional<RegistryLogin>();
  if (resp.status != 200) return apiError(resp.status, resp.body, "fetching registry credentials");
  auto j = json::parse(resp.body, nullptr, false);
  secrets::wipe(resp.body);
  RegistryLogin out;
  bool whole = j.is_object();
  for (auto [field, dest] :
       {std::pair{"registry", &out.registry}, std::pair{"username", &out.username},
        std::pair{"password", &out.password}}) {
    auto it = whole ? j.find(field) : j.end();
    whole = whole && it != j.end() && it->is_string();
    if (whole) *dest = it->get<std::string>();
  }
  if (j.is_object()) {
    for (auto& v : j) {
      if (v.is_string()) secrets::wipe(v.get_ref<std::string&>());
    }
  }
  if (!whole) {
    secrets::wipe(out.password);
    return Error(errc::kInvalidArgument,
                 "the control plane's registry credentials lack registry, username or password");
  }
  return std::optional<RegistryLogin>(std::move(out));
}

Result<bool> ControlPlaneClient::reportVolume(const std::string& node_id,
                                              const std::string& volume_id, const VolumeReport& r) {
  json body = {{"state", r.state}, {"size_bytes", r.size_bytes}};
  if (!r.reason.empty()) body["reason"] = r.reason.substr(0, 512);
  int status = 0;
  PLFM_ASSIGN_OR_RETURN(auto j,
                        call("POST", "/v1/nodes/" + node_id + "/volumes/" + volume_id + "/status",
                             body.dump(), std::chrono::seconds(15), &status));
  return j.is_object() ? j.value("applied", true) : true;
}

json SnapshotReport::toJson() const {
  json j = {{"state", state}};
  if (state == "taken") {
    j.update({{"origin", origin},
              {"method", method},
              {"consistent", consistent},
              {"freeze_ms", freeze_ms},
              {"size_bytes", size_bytes},
              {"sha256", sha256},
              {"taken_at", taken_at}});
  } else if (state == "failed") {
    j["reason"] = reason.substr(0, 512);
  } else if (state == "backed_up") {
    j.update(
        {{"backup_id", backup_id}, {"bytes_added", bytes_added}, {"duration_ms", duration_ms}});
  } else if (state == "expired") {
    j.update({{"local", local}, {"backup", backup}});
  }
  return j;
}

Result<SnapshotReport> SnapshotReport::fromJson(const json& j) {
  try {
    SnapshotReport r;
    r.state = j.at("state").get<std::string>();
    r.origin = j.value("origin", "");
    r.method = j.value("method", "");
    r.consistent = j.value("consistent", false);
    r.freeze_ms = j.value("freeze_ms", int64_t{-1});
    r.size_bytes = j.value("size_bytes", uint64_t{0});
    r.sha256 = j.value("sha256", "");
    r.taken_at = j.value("taken_at", "");
    r.reason = j.value("reason", "");
    r.backup_id = j.value("backup_id", "");
    r.bytes_added = j.value("bytes_added", uint64_t{0});
    r.duration_ms = j.value("duration_ms", int64_t{0});
    r.local = j.value("local", false);
    r.backup = j.value("backup", false);
    return r;
  } catch (const json::exception& e) {
    return Error(errc::kInvalidArgument, std::string("a snapshot report: ") + e.what());
  }
}

json VolumeOpReport::toJson() const {
  json j = {{"kind", kind},
            {"volume_id", volume_id},
            {"snapshot_id", snapshot_id},
            {"ok", ok},
            {"reason", reason.substr(0, 512)}};
  // A failed restore may have no file to hash: no sha256 then.
  if (kind == "restore" && !sha256.empty()) j["sha256"] = sha256;
  if (kind == "verify") j["duration_ms"] = duration_ms;
  return j;
}

Result<VolumeOpReport> VolumeOpReport::fromJson(const json& j) {
  try {
    VolumeOpReport r;
    r.kind = j.at("kind").get<std::string>();
    r.volume_id = j.at("volume_id").get<std::string>();
    r.snapshot_id = j.at("snapshot_id").get<std::string>();
    r.ok = j.at("ok").get<bool>();
    r.reason = j.value("reason", "");
    r.sha256 = j.value("sha256", "");
    r.duration_ms = j.value("duration_ms", int64_t{0});
    return r;
  } catch (const json::exception& e) {
    return Error(errc::kInvalidArgument, std::string("a volume op report: ") + e.what());
  }
}

Result<bool> ControlPlaneClient::reportSnapshot(const std::string& node_id,
                                                const std::string& volume_id,
                                                const std::string& snapshot_id,
                                                const SnapshotReport& report) {
  int status = 0;
  PLFM_ASSIGN_OR_RETURN(
      auto j,
      call("POST", "/v1/nodes/" + node_id + "/volumes/" + volume_id + "/snapshots/" + snapshot_id,
           report.toJson().dump(), std::chrono::seconds(15), &status));
  return j.is_object() ? j.value("applied", true) : true;
}

Result<bool> ControlPlaneClient::reportVolumeOp(const std::string& node_id,
                                                const std::string& op_id,
                                                const VolumeOpReport& report) {
  int status = 0;
  PLFM_ASSIGN_OR_RETURN(auto j, call("POST", "/v1/nodes/" + node_id + "/volume-ops/" + op_id,
                                     report.toJson().dump(), std::chrono::seconds(15), &status));
  return j.is_object() ? j.value("applied", true) : true;
}

Result<void> ControlPlaneClient::reportMeshKey(const std::string& node_id, std::string_view phase,
                                               const std::string& public_key, int listen_port) {
  json body = {{"phase", phase}, {"public_key", public_key}};
  std::string key = "mesh-key-" + std::string(phase) + "-" + public_key;
  if (phase == "next") {
    body["listen_port"] = listen_port;
    key += "-" + std::to_string(listen_port);
  }
  int status = 0;
  PLFM_ASSIGN_OR_RETURN(auto j, call("POST", "/v1/nodes/" + node_id + "/mesh-key", body.dump(),
                                     std::chrono::seconds(15), &status, key));
  (void)j;
  return ok();
}

Result<bool> ControlPlaneClient::report(const std::string& node_id, const std::string& instance_id,
                                        const StatusReport& r) {
  json body = {{"generation", r.generation}, {"seq", r.seq}, {"phase", r.phase}};
  if (r.exit_code) body["exit_code"] = *r.exit_code;
  if (!r.reason.empty()) body["reason"] = r.reason.substr(0, 1024);
  if (!r.timings.empty()) body["timings"] = r.timings;
  int status = 0;
  PLFM_ASSIGN_OR_RETURN(
      auto j, call("POST", "/v1/nodes/" + node_id + "/instances/" + instance_id + "/status",
                   body.dump(), std::chrono::seconds(15), &status));
  return j.is_object() ? j.value("applied", true) : true;
}

}  // namespace plfm::agent
