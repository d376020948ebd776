#include "contract_samples.h"

namespace plfm::cp::testsupport {

using Json = nlohmann::json;

namespace {

constexpr std::string_view kIdBody = "01jdq3v7k2m9x4c8r6t0w5y1zb";
constexpr std::string_view kTs = kSampleTs;

std::string id(std::string_view prefix) { return sampleId(prefix); }

}  // namespace

std::string sampleId(std::string_view prefix) {
  return std::string(prefix) + "_" + std::string(kIdBody);
}

Json sampleOrg() {
  return {{"id", id("org")}, {"name", "acme"}, {"created_at", kTs}, {"updated_at", kTs}};
}
Json samplePage(Json item) {
  return {{"items", Json::array({std::move(item)})}, {"next_cursor", nullptr}};
}
Json sampleEvent() {
  return {{"seq", 7},
          {"event_id", id("evt")},
          {"occurred_at", kTs},
          {"aggregate_type", "app"},
          {"aggregate_id", id("app")},
          {"aggregate_seq", 1},
          {"event_type", "app.created"},
          {"event_version", 1},
          {"org_id", id("org")},
          {"actor", id("usr")},
          {"request_id", id("req")},
          {"correlation", Json::object()},
          {"payload",
           {{"app_id", id("app")}, {"org_id", id("org")}, {"name", "web"}, {"description", ""}}}};
}

namespace {

Json enrollRequest() {
  return {{"hostname", "n1.example"},
          {"cores", 8},
          {"memory_mb", 32768},
          {"disk_mb", 512000},
          {"labels", {{"zone", "a"}}},
          {"wireguard_public_key", std::string(43, 'k') + "="},
          {"underlay_address", "2001:db8::10"},
          {"runtimes", {"qemu"}}};
}

}  // namespace

Json sampleWorkloadSpec() {
  return {
      {"instance_id", id("inst")},
      {"generation", 2},
      {"desired", "run"},
      {"org_id", id("org")},
      {"app_id", id("app")},
      {"env_id", id("env")},
      {"process_type", "web"},
      {"release_id", id("rel")},
      {"deploy_id", id("dep")},
      {"image", {{"ref", "ghcr.io/acme/web:1.2"}, {"digest", "sha256:" + std::string(64, 'a')}}},
      {"command", {"/hello", "--port", "8443"}},
      {"args", Json::array()},
      {"env", {{"GREETING", "hi"}}},
      {"resources", {{"vcpus", 1}, {"memory_mb", 128}}},
      {"network",
       {{"address", "fd7a:5c00:0:1::2"},
        {"prefix_len", 128},
        {"gateway", "fe80::1"},
        {"mtu", 1420}}},
      {"checks",
       {{{"type", "tcp"},
         {"port", 8443},
         {"path", ""},
         {"command", Json::array()},
         {"interval_ms", 10000},
         {"timeout_ms", 2000},
         {"grace_ms", 5000}}}},
      {"volumes", Json::array()},
      {"secrets", {{"version", nullptr}}},
      {"restart", {{"count", 1}, {"not_before", kTs}}}};
}

Json sampleNodePlan() {
  return {{"node_id", id("node")},
          {"version", 42},
          {"ipv6_prefix", "fd7a:5c00:0:1::/64"},
          {"instances", Json::array({sampleWorkloadSpec()})}};
}

// One valid instance of every components/schemas entry.
const std::map<std::string, Json>& componentSamples() {
  static const std::map<std::string, Json> m = [] {
    const std::string digest = "sha256:" + std::string(64, 'a');
    const Json member = {
        {"org_id", id("org")}, {"user_id", id("usr")}, {"role", "owner"}, {"created_at", kTs}};
    const Json app = {{"id", id("app")},           {"org_id", id("org")}, {"name", "web"},
                      {"description", "the shop"}, {"created_at", kTs},   {"updated_at", kTs}};
    const Json env = {{"id", id("env")},
                      {"org_id", id("org")},
                      {"app_id", id("app")},
                      {"name", "prod"},
                      {"current_release_id", nullptr},
                      {"current_deploy_id", id("dep")},
                      {"created_at", kTs},
                      {"updated_at", kTs}};
    const Json release = {{"id", id("rel")},        {"org_id", id("org")},
                          {"app_id", id("app")},    {"image_ref", "ghcr.io/acme/web:1.2"},
                          {"image_digest", digest}, {"manifest", {{"processes", {{"web", 1}}}}},
                          {"created_at", kTs}};
    const Json deploy = {{"id", id("dep")},         {"org_id", id("org")},
                         {"app_id", id("app")},     {"env_id", id("env")},
                         {"release_id", id("rel")}, {"strategy", "rolling"},
                         {"status", "pending"},     {"reason", ""},
                         {"created_at", kTs},       {"updated_at", kTs}};
    const Json instance = {{"id", id("inst")},
                           {"env_id", id("env")},
                           {"process_type", "web"},
                           {"release_id", id("rel")},
                           {"deploy_id", id("dep")},
                           {"node_id", nullptr},
                           {"generation", 1},
                           {"desired_state", "run"},
                           {"current_state", "allocated"},
                           {"reason", "waiting for capacity: no node has 2048 MiB free"},
                           {"address", nullptr},
                           {"lost", false},
                           {"restarts", 0},
                           {"exit_code", nullptr},
                           {"vcpus", 1},
                           {"memory_mb", 256},
                           {"timings", {{"boot_ms", 1480}}},
                           {"not_before", nullptr},
                           {"phase_since", kTs},
                           {"created_at", kTs},
                           {"updated_at", kTs}};
    const Json summary = {
        {"process_type", "web"}, {"desired", 2}, {"current", 0}, {"reason", "deploying"}};
    const Json allocated = {{"instances", 2}, {"vcpus", 2}, {"memory_mb", 512}};
    const Json node = {{"id", id("node")},
                       {"hostname", "n1.example"},
                       {"state", "active"},
                       {"state_reason", ""},
                       {"state_since", kTs},
                       {"cordoned", false},
                       {"draining", false},
                       {"cores", 8},
                       {"memory_mb", 32768},
                       {"disk_mb", 512000},
                       {"ipv6_prefix", "fd7a:5c00:0:1::/64"},
                       {"labels", {{"zone", "a"}}},
                       {"runtimes", {"qemu"}},
                       {"wireguard_public_key", std::string(43, 'k') + "="},
                       {"underlay_address", "2001:db8::10"},
                       {"plan_version", 42},
                       {"allocated", allocated},
                       {"last_heartbeat_at", kTs},
                       {"created_at", kTs},
                       {"updated_at", kTs}};
    const Json error = {{"code", "not_found"},
                        {"message", "no such app"},
                        {"request_id", id("req")},
                        {"details", {{"field", "app_id"}}}};
    return std::map<std::string, Json>{
        {"OrgId", id("org")},
        {"UserId", id("usr")},
        {"AppId", id("app")},
        {"EnvId", id("env")},
        {"ReleaseId", id("rel")},
        {"DeployId", id("dep")},
        {"NodeId", id("node")},
        {"InstanceId", id("inst")},
        {"EventId", id("evt")},
        {"RequestId", id("req")},
        {"AnyId", id("tok")},
        {"Name", "a-1"},
        {"Timestamp", kTs},
        {"ImageDigest", digest},
        {"Role", "member"},
        {"Strategy", "immediate"},
        {"DeployStatus", "superseded"},
        {"ProcessCounts", {{"web", 2}, {"worker", 0}}},
        {"Health", {{"status", "ok"}, {"checkpoint", 0}}},
        {"WhoAmI",
         {{"kind", "user"}, {"user_id", id("usr")}, {"name", "admin"}, {"is_admin", true}}},
        {"CreateUserRequest", {{"name", "alice"}}},
        {"User", {{"id", id("usr")}, {"name", "alice"}, {"is_admin", false}, {"created_at", kTs}}},
        {"UserWithToken",
         {{"id", id("usr")},
          {"name", "alice"},
          {"is_admin", false},
          {"created_at", kTs},
          {"token", "vt_" + std::string(52, 'z')},
          {"token_redacted", false}}},
        {"CreateOrgRequest", {{"name", "acme"}}},
        {"Org", sampleOrg()},
        {"OrgList", samplePage(sampleOrg())},
        {"AddMemberRequest", {{"user_id", id("usr")}, {"role", "member"}}},
        {"Member", member},
        {"MemberList", samplePage(member)},
        {"MemberDeleted", {{"deleted", true}, {"org_id", id("org")}, {"user_id", id("usr")}}},
        {"CreateAppRequest", {{"name", "web"}, {"description", ""}}},
        {"App", app},
        {"AppList", samplePage(app)},
        {"CreateEnvRequest", {{"name", "prod"}}},
        {"Env", env},
        {"EnvList", samplePage(env)},
        {"Deleted", {{"deleted", true}, {"id", id("app")}}},
        {"CreateReleaseRequest",
         {{"image_ref", "ghcr.io/acme/web:1.2"},
          {"image_digest", digest},
          {"manifest", Json::object()}}},
        {"Release", release},
        {"ReleaseList", samplePage(release)},
        {"CreateDeployRequest", {{"release_id", id("rel")}, {"strategy", "immediate"}}},
        {"Deploy", deploy},
        {"DeployList", samplePage(deploy)},
        {"ScaleRequest", {{"processes", {{"web", 3}}}}},
        {"Scale", {{"env_id", id("env")}, {"processes", {{"web", 3}}}, {"updated_at", kTs}}},
        {"Instance", instance},
        {"InstanceSummary", summary},
        {"InstancesResponse",
         {{"items", Json::array({instance})}, {"summary", Json::array({summary})}}},
        {"Node", node},
        {"NodeList", samplePage(node)},
        {"NodeAllocation", allocated},
        {"EnrollmentId", id("enr")},
        {"NodeState", "unreachable"},
        {"DesiredState", "drain"},
        {"Phase", "healthy"},
        {"CreateEnrollmentRequest", {{"ttl_seconds", 900}}},
        {"Enrollment",
         {{"id", id("enr")},
          {"token", "vt_" + std::string(52, 'z')},
          {"token_redacted", false},
          {"expires_at", kTs},
          {"created_at", kTs}}},
        {"EnrollRequest", enrollRequest()},
        {"NodeCredential",
         {{"node_id", id("node")},
          {"hostname", "n1.example"},
          {"ipv6_prefix", "fd7a:5c00:0:1::/64"},
          {"token", "vt_" + std::string(52, 'z')},
          {"reissued", false},
          {"heartbeat_interval_seconds", 10},
          {"heartbeat_timeout_seconds", 30}}},
        {"HeartbeatRequest", {{"agent_version", "0.1.0"}}},
        {"Heartbeat",
         {{"node_id", id("node")},
          {"state", "active"},
          {"previous_state", "active"},
          {"plan_version", 42},
          {"heartbeat_interval_seconds", 10},
          {"heartbeat_timeout_seconds", 30}}},
        {"NodePlan", sampleNodePlan()},
        {"WorkloadSpec", sampleWorkloadSpec()},
        {"StatusReportRequest",
         {{"generation", 1},
          {"seq", 3},
          {"phase", "exited"},
          {"exit_code", 1},
          {"reason", "oom"},
          {"timings", {{"boot_ms", 1480}}}}},
        {"StatusReportResult",
         {{"instance_id", id("inst")}, {"generation", 1}, {"seq", 3}, {"applied", true}}},
        {"SchedulingRequest", {{"cordoned", true}}},
        {"NodeScheduling", {{"node_id", id("node")}, {"cordoned", true}, {"draining", false}}},
        {"Event", sampleEvent()},
        {"EventPage", {{"items", Json::array({sampleEvent()})}, {"next_after", 7}}},
        {"Accepted", {{"accepted", true}, {"seq", 12}, {"message", "accepted"}}},
        {"ErrorCode", "idempotency_key_reused"},
        {"Error", error},
        {"ErrorEnvelope", {{"error", error}}},
    };
  }();
  return m;
}

// One valid payload per event type.
const std::map<std::string, Json>& payloadSamples() {
  static const std::map<std::string, Json> m = {
      {"org.created", {{"org_id", id("org")}, {"name", "acme"}}},
      {"org.member_added", {{"org_id", id("org")}, {"user_id", id("usr")}, {"role", "owner"}}},
      {"org.member_removed", {{"org_id", id("org")}, {"user_id", id("usr")}}},
      {"org.deleted", {{"org_id", id("org")}}},
      {"user.created", {{"user_id", id("usr")}, {"name", "admin"}, {"is_admin", true}}},
      {"token.created", {{"token_id", id("tok")}, {"kind", "user"}, {"subject_id", id("usr")}}},
      {"app.created",
       {{"app_id", id("app")}, {"org_id", id("org")}, {"name", "web"}, {"description", ""}}},
      {"app.deleted", {{"app_id", id("app")}, {"org_id", id("org")}}},
      {"env.created",
       {{"env_id", id("env")}, {"app_id", id("app")}, {"org_id", id("org")}, {"name", "prod"}}},
      {"env.deleted", {{"env_id", id("env")}, {"app_id", id("app")}, {"org_id", id("org")}}},
      {"env.scale_set",
       {{"env_id", id("env")}, {"org_id", id("org")}, {"processes", {{"web", 2}, {"jobs", 0}}}}},
      {"release.created",
       {{"release_id", id("rel")},
        {"app_id", id("app")},
        {"org_id", id("org")},
        {"image_ref", "ghcr.io/acme/web:1.2"},
        {"image_digest", "sha256:" + std::string(64, '0')},
        {"manifest", {{"processes", {{"web", {{"command", {"./server"}}}}}}}}}},
      {"deploy.created",
       {{"deploy_id", id("dep")},
        {"app_id", id("app")},
        {"env_id", id("env")},
        {"org_id", id("org")},
        {"release_id", id("rel")},
        {"strategy", "rolling"}}},
      {"deploy.status_changed",
       {{"deploy_id", id("dep")}, {"status", "failed"}, {"reason", "health check timed out"}}},
      {"node.enrollment_created", {{"enrollment_id", id("enr")}, {"expires_at", kTs}}},
      {"node.enrolled",
       {{"node_id", id("node")},
        {"enrollment_id", id("enr")},
        {"hostname", "n1.example"},
        {"cores", 8},
        {"memory_mb", 32768},
        {"disk_mb", 512000},
        {"labels", {{"zone", "a"}}},
        {"wireguard_public_key", std::string(43, 'k') + "="},
        {"underlay_address", "2001:db8::10"},
        {"runtimes", {"qemu"}},
        {"ipv6_prefix", "fd7a:5c00:0:1::/64"}}},
      {"node.state_changed",
       {{"node_id", id("node")},
        {"from", "active"},
        {"to", "unreachable"},
        {"reason", "no heartbeat for 31 s (timeout 30 s)"}}},
      {"node.scheduling_changed",
       {{"node_id", id("node")}, {"cordoned", true}, {"draining", false}}},
      {"instance.allocated",
       {{"instance_id", id("inst")},
        {"org_id", id("org")},
        {"app_id", id("app")},
        {"env_id", id("env")},
        {"process_type", "web"},
        {"release_id", id("rel")},
        {"deploy_id", nullptr},
        {"node_id", id("node")},
        {"address", "fd7a:5c00:0:1::2"},
        {"vcpus", 1},
        {"memory_mb", 256},
        {"reason", "web has 0 of 2 instances of rel_..."}}},
      {"instance.restart_scheduled",
       {{"instance_id", id("inst")},
        {"node_id", id("node")},
        {"generation", 2},
        {"restarts", 1},
        {"not_before", kTs},
        {"reason", "exited with code 1; restart 1 after 1 s backoff"}}},
      {"instance.drain_requested", {{"instance_id", id("inst")}, {"reason", "scale down"}}},
      {"instance.stop_requested", {{"instance_id", id("inst")}, {"reason", "node is back"}}},
      {"instance.lost",
       {{"instance_id", id("inst")}, {"node_id", id("node")}, {"reason", "node is down"}}},
      {"instance.status_reported",
       {{"instance_id", id("inst")},
        {"node_id", id("node")},
        {"generation", 1},
        {"seq", 4},
        {"phase", "exited"},
        {"exit_code", 137},
        {"reason", "exited with code 137"},
        {"timings", {{"boot_ms", 1480}}}}},
  };
  return m;
}

}  // namespace plfm::cp::testsupport
