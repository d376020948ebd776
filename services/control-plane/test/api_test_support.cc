#include "api_test_support.h"

#include <regex>

#include "plfm/core/log.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"

namespace plfm::cp::testsupport {

void ApiTest::SetUp() {
  CpTest::SetUp();
  if (HasFatalFailure()) return;
  if (openapi_.is_null()) {
    openapi_ = loadOpenApi();
    routes_ = openApiRoutes(openapi_);
  }
  state_ = std::make_unique<plfm::testing::TempDir>("plfm-cp");
  // The server's log goes to a file in the state dir (tests may search it).
  log::Options lo;
  lo.component = "control-plane";
  lo.file = state_->file("control-plane.log");
  log::init(lo);
  Config cfg;
  cfg.listen = {"[::1]:0"};
  cfg.database = conninfo();
  cfg.state_dir = state_->path();
  cfg.db_pool_size = 64;
  cfg.max_body_bytes = size_t{64} * 1024;
  cfg.shutdown_grace = std::chrono::seconds(5);
  configure(cfg);
  cp_ = std::make_unique<ControlPlane>(cfg, serverClock());
  auto r = cp_->start();
  ASSERT_TRUE(r.has_value()) << r.error().toString();
  base_ = "http://" + cp_->endpoints().at(0);
  auto token = readFile(cfg.adminTokenFile());
  ASSERT_TRUE(token.has_value());
  admin_token_ = std::string(trim(*token));
}

void ApiTest::TearDown() {
  if (cp_) cp_->stop();
  cp_.reset();
  log::init(log::Options{});
  CpTest::TearDown();
}

std::string ApiTest::templateFor(const std::string& method, const std::string& path) const {
  const std::string p = path.substr(0, path.find('?'));
  for (const auto& [m, tmpl] : routes_) {
    if (m != method) continue;
    const std::string re = std::regex_replace(tmpl, std::regex(R"(\{[^}]+\})"), "[^/]+");
    if (std::regex_match(p, std::regex(re))) return tmpl;
  }
  return "";
}

Reply ApiTest::call(const std::string& method, const std::string& path, const std::string& body,
                    const std::optional<std::string>& token, http::Headers headers) {
  http::ClientRequest req;
  req.method = method;
  req.url = base_ + path;
  req.body = body;
  req.headers = std::move(headers);
  const std::string tok = token.value_or(admin_token_);
  if (!tok.empty()) req.headers.set("Authorization", "Bearer " + tok);
  if (!body.empty()) req.headers.set("Content-Type", "application/json");
  const bool mutation = method == "POST" || method == "PUT" || method == "DELETE";
  if (mutation && !req.headers.get("Idempotency-Key")) {
    req.headers.set("Idempotency-Key", RequestId::generate().str());
  }
  // An explicitly empty key means "send none".
  if (auto k = req.headers.get("Idempotency-Key"); k && k->empty()) {
    http::Headers stripped;
    for (const auto& [n, v] : req.headers.all()) {
      if (n != "Idempotency-Key") stripped.add(n, v);
    }
    req.headers = stripped;
  }
  auto resp = http::request(req);
  Reply out;
  if (!resp) {
    ADD_FAILURE() << method << " " << path << ": " << resp.error().toString();
    return out;
  }
  out.status = resp->status;
  out.raw = resp->body;
  out.headers = resp->headers;
  auto j = json::parse(resp->body);
  if (j) out.body = *j;
  EXPECT_FALSE(out.header("X-Request-Id").empty()) << method << " " << path;
  if (validate_) {
    const std::string tmpl = templateFor(method, path);
    if (tmpl.empty()) {
      // Unknown routes answer with the error envelope.
      EXPECT_EQ(out.status / 100, 4) << method << " " << path << " is not in the OpenAPI";
    } else if (path != "/metrics") {
      auto err = validateResponse(openapi_, method, tmpl, out.status, out.raw);
      EXPECT_FALSE(err.has_value()) << method << " " << path << " -> " << out.status << ": "
                                    << err.value_or("") << "\nbody: " << out.raw;
    }
  }
  return out;
}

std::pair<std::string, std::string> ApiTest::makeUser(const std::string& name) {
  auto r = callJson("POST", "/v1/users", {{"name", name}});
  EXPECT_EQ(r.status, 201) << r.raw;
  return {r.body.value("id", ""), r.body.value("token", "")};
}

std::string ApiTest::makeOrg(const std::string& name, const std::optional<std::string>& token) {
  auto r = callJson("POST", "/v1/orgs", {{"name", name}}, token);
  EXPECT_EQ(r.status, 201) << r.raw;
  return r.body.value("id", "");
}

std::string ApiTest::makeApp(const std::string& org, const std::string& name) {
  auto r = callJson("POST", "/v1/orgs/" + org + "/apps", {{"name", name}});
  EXPECT_EQ(r.status, 201) << r.raw;
  return r.body.value("id", "");
}

std::string ApiTest::makeEnv(const std::string& app, const std::string& name) {
  auto r = callJson("POST", "/v1/apps/" + app + "/envs", {{"name", name}});
  EXPECT_EQ(r.status, 201) << r.raw;
  return r.body.value("id", "");
}

std::string ApiTest::makeRelease(const std::string& app) {
  auto r = callJson("POST", "/v1/apps/" + app + "/releases",
                    {{"image_ref", "registry.local/hello:1"},
                     {"image_digest", "sha256:" + std::string(64, 'b')},
                     {"manifest",
                      {{"app", "hello"},
                       {"image", "registry.local/hello:1"},
                       {"processes", {{{"name", "web"}}}}}}});
  EXPECT_EQ(r.status, 201) << r.raw;
  return r.body.value("id", "");
}

std::string ApiTest::makeEnrollmentToken(int ttl_seconds) {
  auto r = callJson("POST", "/v1/nodes/enrollments", {{"ttl_seconds", ttl_seconds}});
  EXPECT_EQ(r.status, 201) << r.raw;
  return r.body.value("token", "");
}

std::pair<std::string, std::string> ApiTest::enrollNode(const std::string& hostname, int cores,
                                                        int memory_mb,
                                                        const std::string& underlay_address) {
  const std::string token = makeEnrollmentToken();
  auto r = callJson("POST", "/v1/nodes/enroll",
                    {{"hostname", hostname},
                     {"cores", cores},
                     {"memory_mb", memory_mb},
                     {"disk_mb", 100'000},
                     {"labels", {{"zone", "a"}}},
                     {"wireguard_public_key", std::string(43, 'k') + "="},
                     {"underlay_address", underlay_address},
                     {"runtimes", {"qemu"}}},
                    token);
  EXPECT_EQ(r.status, 201) << r.raw;
  return {r.body.value("node_id", ""), r.body.value("token", "")};
}

json::Json ApiTest::webManifest(int vcpus, int memory_mb) {
  return {{"schema_version", 1},
          {"app", "hello"},
          {"image", "registry.local/hello:1"},
          {"processes",
           {{{"name", "web"},
             {"command", {"/hello", "--port", "8443"}},
             {"args", json::Json::array()},
             {"resources", {{"vcpus", vcpus}, {"memory_mb", memory_mb}}}}}},
          {"services", json::Json::array()},
          {"volumes", json::Json::array()},
          {"checks",
           {{{"process", "web"},
             {"type", "tcp"},
             {"port", 8443},
             {"path", ""},
             {"command", json::Json::array()},
             {"interval_ms", 10000},
             {"timeout_ms", 2000},
             {"grace_ms", 5000}}}},
          {"env", {{"GREETING", "hi"}}},
          {"secrets", {{"names", json::Json::array()}, {"export_env", false}}},
          {"deploy", {{"strategy", "rolling"}, {"max_surge", 1}, {"max_unavailable", 0}}}};
}

std::string ApiTest::makeReleaseWith(const std::string& app, const json::Json& manifest) {
  auto r = callJson("POST", "/v1/apps/" + app + "/releases",
                    {{"image_ref", "registry.local/hello:1"},
                     {"image_digest", "sha256:" + std::string(64, 'b')},
                     {"manifest", manifest}});
  EXPECT_EQ(r.status, 201) << r.raw;
  return r.body.value("id", "");
}

int64_t ApiTest::countEvents(const std::string& type) {
  auto conn = connect();
  auto rs = conn.exec("SELECT count(*) FROM events WHERE event_type = $1", {type});
  EXPECT_TRUE(rs.has_value());
  return rs ? rs->int64(0, 0).value_or(-1) : -1;
}

}  // namespace plfm::cp::testsupport
