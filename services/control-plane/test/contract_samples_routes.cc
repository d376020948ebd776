// Samples of the route and edge shapes (see contract_samples.h).
#include "contract_samples.h"

namespace plfm::cp::testsupport {

using Json = nlohmann::json;

namespace {

std::string id(std::string_view prefix) { return sampleId(prefix); }

Json sampleRoute() {
  return {{"id", id("route")},
          {"org_id", id("org")},
          {"app_id", id("app")},
          {"env_id", id("env")},
          {"hostname", "*.example.com"},
          {"listener_port", 443},
          {"protocol", "tls-passthrough"},
          {"process_type", "web"},
          {"backend_port", 8443},
          {"proxy_protocol", "v2"},
          {"created_at", kSampleTs},
          {"updated_at", kSampleTs}};
}

Json sampleEdgeRoute() {
  return {{"id", id("route")},
          {"hostname", "app.example.com"},
          {"listener_port", 443},
          {"protocol", "tls-passthrough"},
          {"proxy_protocol", "none"},
          {"backends", Json::array({{{"address", "fd7a:5c00:0:1::2"},
                                     {"port", 8443},
                                     {"healthy", true},
                                     {"draining", false}}})}};
}

Json sampleUserToken() {
  return {{"id", id("tok")},         {"description", "ci deploys"}, {"created_at", kSampleTs},
          {"expires_at", kSampleTs}, {"revoked_at", nullptr},       {"first_used_at", kSampleTs},
          {"current", true}};
}

Json sampleDomain() {
  return {{"id", id("dom")},
          {"org_id", id("org")},
          {"domain", "example.com"},
          {"status", "verified"},
          {"challenge_name", "_plfm-challenge.example.com"},
          {"challenge_value", "plfm-verify=" + std::string(52, 'q')},
          {"created_at", kSampleTs},
          {"verified_at", kSampleTs}};
}

Json sampleDomainEvent() {
  return {{"domain_id", id("dom")}, {"org_id", id("org")}, {"domain", "example.com"}};
}

Json sampleVolume() {
  return {{"volume_id", id("vol")},
          {"env_id", id("env")},
          {"app_id", id("app")},
          {"process", "web"},
          {"name", "uploads"},
          {"slot", 1},
          {"full_name", "uploads-1"},
          {"size_bytes", int64_t{10} << 30},
          {"node_id", id("node")},
          {"state", "ready"},
          {"reason", ""},
          {"reported_size_bytes", int64_t{10} << 30},
          {"created_at", kSampleTs},
          {"updated_at", kSampleTs}};
}

Json sampleBackend() {
  return {{"instance_id", id("inst")},     {"node_id", id("node")},
          {"address", "fd7a:5c00:0:1::2"}, {"port", 8443},
          {"phase", "unhealthy"},          {"healthy", false}};
}

// The describe shapes build on the Instance and Release samples, so they
// follow those shapes when they change.
Json sampleInstanceDetail() {
  const Json event = {{"seq", 812},
                      {"occurred_at", kSampleTs},
                      {"event_type", "instance.status_reported"},
                      {"generation", 1},
                      {"phase", "unhealthy"},
                      {"reason", "http check on port 8443: connection refused"},
                      {"exit_code", nullptr},
                      {"node_id", id("node")}};
  return {{"instance", componentSamples().at("Instance")},
          {"events", Json::array({event})},
          {"last_check",
           {{"status", "unhealthy"},
            {"reason", "http check on port 8443: connection refused"},
            {"generation", 1},
            {"at", kSampleTs}}},
          {"checks", Json::array({{{"process", "web"}, {"type", "http"}, {"port", 8443}}})},
          {"logs",
           {{"items", Json::array({componentSamples().at("LogLine")})}, {"unavailable", nullptr}}}};
}

Json sampleReleaseDetail() {
  Json r = componentSamples().at("Release");
  r["envs"] = Json::array({{{"env_id", id("env")},
                            {"name", "prod"},
                            {"current", true},
                            {"instances", 2},
                            {"deploy_status", "succeeded"}}});
  return r;
}

}  // namespace

std::map<std::string, Json> mergedSamples(std::map<std::string, Json> a,
                                          std::map<std::string, Json> b) {
  a.merge(b);
  return a;
}

std::map<std::string, Json> routeComponentSamples() {
  return {
      {"RouteId", id("route")},
      {"DomainId", id("dom")},
      {"VolumeName", "uploads"},
      {"VolumeSize", "10GiB"},
      {"VolumeSizeBytes", int64_t{16} << 20},
      {"CreateVolumeRequest",
       {{"process", "web"}, {"name", "uploads"}, {"slot", 0}, {"size", "10GiB"}}},
      {"ExtendVolumeRequest", {{"size_bytes", int64_t{20} << 30}}},
      {"Volume", sampleVolume()},
      {"VolumeList", samplePage(sampleVolume())},
      {"CreateDomainRequest", {{"domain", "Example.com."}}},
      {"VerifyDomainRequest", Json::object()},
      {"Domain", sampleDomain()},
      {"DomainList", samplePage(sampleDomain())},
      {"DeletedDomain", {{"deleted", true}, {"id", id("dom")}}},
      {"TokenId", id("tok")},
      {"CreateExecRequest",
       {{"argv", {"sh", "-c", "ls"}},
        {"tty", true},
        {"rows", 24},
        {"cols", 80},
        {"user", "1000"},
        {"workdir", "/srv"}}},
      {"ExecTicket",
       {{"ticket", "vxt_" + std::string(52, 'a')},
        {"ticket_redacted", false},
        {"expires_at", "2026-12-06T09:00:00.000000Z"},
        {"session_id", id("exec")},
        {"instance_id", id("inst")},
        {"url", "/v1/exec"}}},
      {"RouteHostname", "app.example.com"},
      {"Port", 443},
      {"RouteProtocol", "tcp"},
      {"ProxyProtocol", "v2"},
      {"CreateRouteRequest",
       {{"hostname", "App.Example.com."},
        {"listener_port", 443},
        {"protocol", "tls-passthrough"},
        {"process_type", "web"},
        {"backend_port", 8443},
        {"proxy_protocol", "none"}}},
      {"UpdateRouteRequest", {{"backend_port", 9443}}},
      {"Route", sampleRoute()},
      {"RouteList", samplePage(sampleRoute())},
      {"RouteBackend", sampleBackend()},
      {"RouteBackendList", {{"items", Json::array({sampleBackend()})}}},
      {"NodeRemoved",
       {{"node_id", id("node")},
        {"hostname", "n1.example"},
        {"removed", true},
        {"revoked_tokens", 1}}},
      {"CreateTokenRequest", {{"description", "ci deploys"}, {"ttl_seconds", 86400}}},
      {"UserToken", sampleUserToken()},
      {"UserTokenWithSecret",
       {{"id", id("tok")},
        {"description", "ci deploys"},
        {"token", "vt_" + std::string(52, 'z')},
        {"token_redacted", false},
        {"created_at", kSampleTs},
        {"expires_at", kSampleTs},
        {"revoked_at", nullptr},
        {"first_used_at", nullptr}}},
      {"UserTokenList", samplePage(sampleUserToken())},
      {"CreateEdgeTokenRequest", {{"name", "edge-1"}, {"ttl_seconds", 86400}}},
      {"EdgeToken",
       {{"id", id("tok")},
        {"name", "edge-1"},
        {"token", "vt_" + std::string(52, 'z')},
        {"token_redacted", false},
        {"expires_at", nullptr},
        {"created_at", kSampleTs}}},
      {"EdgeTokenInfo",
       {{"id", id("tok")},
        {"name", "edge-1"},
        {"created_at", kSampleTs},
        {"expires_at", nullptr},
        {"revoked_at", kSampleTs}}},
      {"EdgeTokenList", samplePage({{"id", id("tok")},
                                    {"name", "edge-1"},
                                    {"created_at", kSampleTs},
                                    {"expires_at", kSampleTs},
                                    {"revoked_at", nullptr}})},
      {"EdgeBackend",
       {{"address", "fd7a:5c00:0:1::2"}, {"port", 8443}, {"healthy", false}, {"draining", true}}},
      {"EdgeStatusRequest",
       {{"cursor", 1287},
        {"draining",
         Json::array({{{"address", "fd7a:5c00:0:1::2"}, {"port", 8443}, {"active", 2}}})}}},
      {"EdgeStatus", {{"name", "edge-1"}, {"cursor", 1287}}},
      {"EdgeRoute", sampleEdgeRoute()},
      {"EdgeConfig", {{"cursor", 1287}, {"routes", Json::array({sampleEdgeRoute()})}}},
      {"InstanceDetail", sampleInstanceDetail()},
      {"InstanceEvent", sampleInstanceDetail()["events"][0]},
      {"InstanceCheckResult", sampleInstanceDetail()["last_check"]},
      {"InstanceLogTail", sampleInstanceDetail()["logs"]},
      {"ReleaseDetail", sampleReleaseDetail()},
      {"ReleaseEnv", sampleReleaseDetail()["envs"][0]},
  };
}

std::map<std::string, Json> routePayloadSamples() {
  return {
      {"route.created",
       {{"route_id", id("route")},
        {"org_id", id("org")},
        {"app_id", id("app")},
        {"env_id", id("env")},
        {"hostname", "app.example.com"},
        {"listener_port", 443},
        {"protocol", "tls-passthrough"},
        {"process_type", "web"},
        {"backend_port", 8443},
        {"proxy_protocol", "v2"}}},
      {"route.updated",
       {{"route_id", id("route")},
        {"org_id", id("org")},
        {"process_type", "web"},
        {"backend_port", 9443},
        {"proxy_protocol", "none"}}},
      {"domain.created", sampleDomainEvent()},
      {"domain.verified", sampleDomainEvent()},
      {"domain.deleted", sampleDomainEvent()},
      {"token.revoked", {{"token_id", id("tok")}, {"kind", "edge"}, {"subject_id", "edge-1"}}},
      {"route.deleted",
       {{"route_id", id("route")},
        {"org_id", id("org")},
        {"hostname", ""},
        {"listener_port", 5432}}},
      {"exec.started",
       {{"session_id", id("exec")},
        {"org_id", id("org")},
        {"instance_id", id("inst")},
        {"actor", id("usr")},
        {"argv0", "sh"},
        {"tty", true}}},
      {"exec.ended",
       {{"session_id", id("exec")},
        {"org_id", id("org")},
        {"instance_id", id("inst")},
        {"outcome", "exited"},
        {"exit_code", 0},
        {"duration_ms", 1234}}},
      {"volume.created",
       {{"volume_id", id("vol")},
        {"org_id", id("org")},
        {"app_id", id("app")},
        {"env_id", id("env")},
        {"process_type", "web"},
        {"name", "uploads"},
        {"slot", 0},
        {"full_name", "uploads-0"},
        {"size_bytes", int64_t{1} << 30},
        {"origin", "manifest"}}},
      {"volume.placed", {{"volume_id", id("vol")}, {"env_id", id("env")}, {"node_id", id("node")}}},
      {"volume.extend_requested",
       {{"volume_id", id("vol")}, {"env_id", id("env")}, {"size_bytes", int64_t{2} << 30}}},
      {"volume.delete_requested",
       {{"volume_id", id("vol")}, {"env_id", id("env")}, {"reason", "env_deleted"}}},
      {"volume.status_reported",
       {{"volume_id", id("vol")},
        {"node_id", id("node")},
        {"state", "ready"},
        {"size_bytes", int64_t{1} << 30},
        {"reason", ""}}},
      {"volume.deleted", {{"volume_id", id("vol")}, {"node_id", nullptr}}},
  };
}

}  // namespace plfm::cp::testsupport
