// Checks the API contract documents on their own, without a server: the
// OpenAPI document is complete and consistent with docs/specs/api/v1.md, its
// schemas accept hand-written samples and reject near misses, and the event
// payload schemas agree with the projections and docs/specs/state.
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <tuple>

#include "contract_samples.h"
#include "plfm/core/strings.h"
#include "schema_support.h"

namespace plfm::cp::testsupport {
namespace {

using Json = nlohmann::json;
using Routes = std::vector<std::pair<std::string, std::string>>;

const std::string kSourceDir = PLFM_SOURCE_DIR;

std::string id(std::string_view prefix) { return sampleId(prefix); }

std::string readText(const std::string& relPath) {
  std::ifstream in(kSourceDir + "/" + relPath, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << relPath;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every first capture group of `re` in `text`, one match per line.
std::set<std::string> matchLines(const std::string& text, const std::regex& re) {
  std::set<std::string> out;
  std::istringstream lines(text);
  std::smatch m;
  for (std::string line; std::getline(lines, line);) {
    if (std::regex_search(line, m, re)) out.insert(m[1].str() + (m.size() > 2 ? m[2].str() : ""));
  }
  return out;
}

// Follows local $refs ("#/components/...") of a non-schema object.
const Json& follow(const Json& doc, const Json& node) {
  const Json* n = &node;
  while (n->is_object() && n->contains("$ref")) {
    n = &doc.at(Json::json_pointer(n->at("$ref").get<std::string>().substr(1)));
  }
  return *n;
}

bool isMutation(const std::string& method) {
  return method == "POST" || method == "PUT" || method == "DELETE";
}
bool isHealth(const std::string& path) { return path == "/healthz" || path == "/metrics"; }

// Routes idempotent by their own contract (x-idempotent-by: enrollment,
// heartbeats, status and volume reports) take no Idempotency-Key and never replay.
bool idempotentByContract(const Json& operation) { return operation.contains("x-idempotent-by"); }

class OpenApiTest : public ::testing::Test {
 protected:
  static const Json& doc() {
    static const Json d = loadOpenApi();
    return d;
  }
  static const Json& op(const std::string& method, const std::string& path) {
    return doc()["paths"][path][asciiLower(method)];
  }
  // Operation-level and path-level parameters, resolved.
  static std::vector<Json> params(const std::string& method, const std::string& path) {
    std::vector<Json> out;
    for (const Json* list : {&op(method, path), &doc()["paths"][path]}) {
      for (const auto& p : list->value("parameters", Json::array()))
        out.push_back(follow(doc(), p));
    }
    return out;
  }
  // The schema of an object shape (one with `properties`), or nullptr.
  static const Json* objectSchema(const std::string& name) {
    const Json& schema = doc()["components"]["schemas"].at(name);
    return schema.contains("properties") ? &schema : nullptr;
  }
};

// ---- The YAML loads as the JSON it means ----

TEST_F(OpenApiTest, YamlScalarsKeepTheirTypes) {
  EXPECT_EQ(doc()["openapi"], Json("3.0.3"));
  EXPECT_TRUE(doc()["info"]["version"].is_string());
  const Json& responses = op("GET", "/v1/orgs")["responses"];
  EXPECT_TRUE(responses.contains("200"));
  EXPECT_TRUE(responses.contains("401"));
  EXPECT_EQ(doc()["x-error-codes"][0]["status"], Json(400));
  EXPECT_EQ(doc()["components"]["parameters"]["Limit"]["schema"]["maximum"], Json(200));
  EXPECT_EQ(doc()["components"]["schemas"]["Deleted"]["properties"]["deleted"]["enum"][0],
            Json(true));
  EXPECT_EQ(doc()["components"]["headers"]["IdempotentReplayed"]["schema"]["enum"][0],
            Json("true"));
  EXPECT_EQ(
      doc()["components"]["schemas"]["CreateAppRequest"]["properties"]["description"]["default"],
      Json(""));
}

// ---- The OpenAPI document agrees with docs/specs/api/v1.md ----

TEST_F(OpenApiTest, RoutesAreExactlyThoseOfTheSpec) {
  const auto spec = matchLines(readText("docs/specs/api/v1.md"),
                               std::regex(R"(^\| `(GET|POST|PUT|DELETE)( /[^` ]*)`)"));
  std::set<std::string> documented;
  for (const auto& [method, path] : openApiRoutes(doc())) {
    documented.insert(std::string(method).append(" ").append(path));
  }
  EXPECT_EQ(documented, spec);
  EXPECT_EQ(documented.size(), 92U);
}

TEST_F(OpenApiTest, ErrorCodesAreExactlyThoseOfTheSpec) {
  const auto spec = matchLines(readText("docs/specs/api/v1.md"),
                               std::regex(R"(^\| ([0-9]{3}) \| `([a-z_]+)` \|)"));
  std::set<std::string> listed;
  std::set<std::string> codes;
  for (const auto& e : doc()["x-error-codes"]) {
    listed.insert(std::to_string(e["status"].get<int>()) + e["code"].get<std::string>());
    codes.insert(e["code"].get<std::string>());
  }
  EXPECT_EQ(listed, spec);
  const Json& enumerated = doc()["components"]["schemas"]["ErrorCode"]["enum"];
  EXPECT_EQ(std::set<std::string>(enumerated.begin(), enumerated.end()), codes);
}

// ---- Every operation is complete ----

TEST_F(OpenApiTest, EveryOperationHasAUniqueOperationIdAndASummary) {
  std::set<std::string> ids;
  for (const auto& [method, path] : openApiRoutes(doc())) {
    const Json& o = op(method, path);
    ASSERT_TRUE(o.contains("operationId")) << method << " " << path;
    EXPECT_TRUE(ids.insert(o["operationId"].get<std::string>()).second) << o["operationId"];
    // (find() rather than value(): GCC 12 sees a false null dereference in
    // nlohmann's value() once this file grows.)
    const auto summary = o.find("summary");
    EXPECT_TRUE(summary != o.end() && summary->is_string() && !summary->get<std::string>().empty())
        << method << " " << path;
  }
}

TEST_F(OpenApiTest, EveryMutationRequiresAnIdempotencyKeyHeader) {
  int keyed = 0;
  int by_contract = 0;
  for (const auto& [method, path] : openApiRoutes(doc())) {
    bool declared = false;
    for (const auto& p : params(method, path)) {
      if (p["name"] == "Idempotency-Key") {
        declared = p["in"] == "header" && p.value("required", false);
      }
    }
    const bool own = idempotentByContract(op(method, path));
    EXPECT_TRUE(!own || isMutation(method)) << method << " " << path;
    EXPECT_EQ(declared, isMutation(method) && !own) << method << " " << path;
    keyed += declared ? 1 : 0;
    by_contract += own ? 1 : 0;
  }
  EXPECT_EQ(keyed, 41);
  EXPECT_EQ(by_contract, 7);
}

TEST_F(OpenApiTest, EveryRouteButHealthNeedsABearerTokenAndDocuments401) {
  EXPECT_EQ(doc()["components"]["securitySchemes"]["bearerAuth"]["scheme"], "bearer");
  for (const auto& [method, path] : openApiRoutes(doc())) {
    const Json& o = op(method, path);
    ASSERT_TRUE(o.contains("security")) << method << " " << path;
    if (isHealth(path)) {
      EXPECT_EQ(o["security"], Json::array()) << path;
      EXPECT_FALSE(o["responses"].contains("401")) << path;
    } else if (path == "/v1/exec") {
      // Its one credential is the exec ticket (docs/specs/runtime/exec-sessions.md).
      EXPECT_EQ(o["security"], Json::parse(R"([{"execTicket": []}])"));
      EXPECT_TRUE(o["responses"].contains("401"));
      EXPECT_TRUE(o["responses"].contains("101"));
    } else {
      EXPECT_EQ(o["security"], Json::parse(R"([{"bearerAuth": []}])")) << method << " " << path;
      EXPECT_TRUE(o["responses"].contains("401")) << method << " " << path;
      EXPECT_TRUE(o["responses"].contains("500")) << method << " " << path;
      EXPECT_TRUE(o["responses"].contains("503")) << method << " " << path;
    }
  }
}

TEST_F(OpenApiTest, EveryErrorResponseUsesTheSharedEnvelope) {
  for (const auto& [method, path] : openApiRoutes(doc())) {
    for (const auto& [status, response] : op(method, path)["responses"].items()) {
      if (status < "400") continue;
      const Json& r = follow(doc(), response);
      EXPECT_EQ(r["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorEnvelope")
          << method << " " << path << " " << status;
    }
  }
}

TEST_F(OpenApiTest, ResponsesDeclareTheirHeaders) {
  for (const auto& [method, path] : openApiRoutes(doc())) {
    const Json& responses = op(method, path)["responses"];
    if (isMutation(method) && path != "/v1/users") {
      EXPECT_TRUE(responses.contains("202")) << method << " " << path;
    }
    for (const auto& [status, response] : responses.items()) {
      const Json& headers = follow(doc(), response)["headers"];
      // A 101 carries the WebSocket handshake's headers only.
      EXPECT_EQ(headers.contains("X-Request-Id"), status != "101")
          << method << " " << path << " " << status;
      if (isMutation(method) && status < "300") {
        ASSERT_TRUE(headers.contains("X-Event-Seq")) << method << " " << path << " " << status;
        EXPECT_TRUE(follow(doc(), headers.at("X-Event-Seq")).value("required", false))
            << method << " " << path << " " << status;
        // Routes idempotent by contract never replay (their 202 is the shared one).
        if (!idempotentByContract(op(method, path))) {
          EXPECT_TRUE(headers.contains("Idempotent-Replayed")) << method << " " << path;
        } else if (status != "202") {
          EXPECT_FALSE(headers.contains("Idempotent-Replayed")) << method << " " << path;
        }
      }
    }
  }
}

TEST_F(OpenApiTest, PathParametersAreDeclaredWithIdPatterns) {
  const std::regex placeholder(R"(\{([a-z_]+)\})");
  for (const auto& [method, path] : openApiRoutes(doc())) {
    for (auto it = std::sregex_iterator(path.begin(), path.end(), placeholder);
         it != std::sregex_iterator(); ++it) {
      const std::string name = (*it)[1].str();
      bool found = false;
      for (const auto& p : params(method, path)) {
        if (p["in"] != "path" || p["name"] != name) continue;
        found = true;
        EXPECT_TRUE(p.value("required", false)) << name;
        const std::string pattern = follow(doc(), p["schema"])["pattern"].get<std::string>();
        if (name == "registry_host") {  // the one path parameter that is not an id
          EXPECT_EQ(pattern.front(), '^') << pattern;
          continue;
        }
        EXPECT_NE(pattern.find("_[0-7][0-9a-hjkmnp-tv-z]{25}$"), std::string::npos) << pattern;
      }
      EXPECT_TRUE(found) << method << " " << path << ": {" << name << "} is not declared";
    }
  }
}

TEST_F(OpenApiTest, RequestBodiesAreStrictObjects) {
  for (const auto& [method, path] : openApiRoutes(doc())) {
    const Json& o = op(method, path);
    const bool takesBody = method == "POST" || method == "PUT";
    ASSERT_EQ(o.contains("requestBody"), takesBody) << method << " " << path;
    if (!takesBody) continue;
    EXPECT_TRUE(o["requestBody"].value("required", false)) << method << " " << path;
    const Json& schema = follow(doc(), o["requestBody"]["content"]["application/json"]["schema"]);
    EXPECT_EQ(schema["additionalProperties"], Json(false)) << method << " " << path;
  }
}

// Response shapes never omit a field (nullable ones are null), so `required`
// lists every property; request shapes may have optional fields.
TEST_F(OpenApiTest, ObjectSchemasAreStrictAndResponsesRequireEveryField) {
  for (const auto& [name, schema] : doc()["components"]["schemas"].items()) {
    if (!schema.contains("properties")) continue;
    EXPECT_EQ(schema["additionalProperties"], Json(false)) << name;
    if (name.ends_with("Request")) continue;
    std::set<std::string> props;
    for (const auto& [prop, unused] : schema["properties"].items()) props.insert(prop);
    const Json& required = schema["required"];
    EXPECT_EQ(std::set<std::string>(required.begin(), required.end()), props) << name;
  }
}

TEST_F(OpenApiTest, EveryRefResolves) {
  EXPECT_EQ(unresolvedRefs(doc()), std::vector<std::string>{});
  Json broken = doc();
  broken["components"]["schemas"]["Org"]["properties"]["id"] = {{"$ref", "#/nope/Nothing"}};
  EXPECT_EQ(
      unresolvedRefs(broken),
      std::vector<std::string>{R"(/components/schemas/Org/properties/id/$ref: "#/nope/Nothing")"});
}

// ---- Component schemas accept samples and reject near misses ----

// The samples live in contract_samples.cc.
Json org() { return sampleOrg(); }
Json page(Json item) { return samplePage(std::move(item)); }
Json event() { return sampleEvent(); }
Json workloadSpec() { return sampleWorkloadSpec(); }
Json nodePlan() { return sampleNodePlan(); }
const std::map<std::string, Json>& samples() {
  static const auto m = mergedSamples(componentSamples(), routeComponentSamples());
  return m;
}

TEST_F(OpenApiTest, EveryComponentSchemaAcceptsItsSample) {
  for (const auto& [name, unused] : doc()["components"]["schemas"].items()) {
    auto it = samples().find(name);
    ASSERT_NE(it, samples().end()) << "no sample for components/schemas/" << name;
    auto err = validateAgainstComponent(doc(), name, it->second);
    EXPECT_EQ(err, std::nullopt) << *err;
  }
}

TEST_F(OpenApiTest, ObjectSchemasRejectExtraAndMissingFields) {
  int checked = 0;
  for (const auto& [name, sample] : samples()) {
    const Json* schema = objectSchema(name);
    if (schema == nullptr) continue;
    Json extra = sample;
    extra["unexpected"] = 1;
    EXPECT_NE(validateAgainstComponent(doc(), name, extra), std::nullopt) << name << " + field";
    for (const auto& field : schema->value("required", Json::array())) {
      Json missing = sample;
      missing.erase(field.get<std::string>());
      EXPECT_NE(validateAgainstComponent(doc(), name, missing), std::nullopt)
          << name << " without " << field;
      ++checked;
    }
  }
  EXPECT_GT(checked, 100);
}

// `nullable: true` admits null; every other field refuses it.
TEST_F(OpenApiTest, NullIsAcceptedExactlyWhereNullable) {
  int nullable = 0;
  for (const auto& [name, sample] : samples()) {
    const Json* object = objectSchema(name);
    if (object == nullptr || name.ends_with("Request")) continue;
    for (const auto& [prop, schema] : object->at("properties").items()) {
      Json instance = sample;
      instance[prop] = nullptr;
      const bool allowed = schema.value("nullable", false);
      nullable += allowed ? 1 : 0;
      EXPECT_EQ(validateAgainstComponent(doc(), name, instance) == std::nullopt, allowed)
          << name << "." << prop;
    }
  }
  EXPECT_GT(nullable, 10);
}

TEST_F(OpenApiTest, SchemasCheckIdsNamesTimestampsAndRanges) {
  const std::vector<std::pair<std::string, Json>> bad = {
      {"OrgId", "app_01jdq3v7k2m9x4c8r6t0w5y1zb"},  // wrong prefix
      {"OrgId", "org_81jdq3v7k2m9x4c8r6t0w5y1zb"},  // timestamp overflow
      {"OrgId", "org_01jdq3v7k2m9x4c8r6t0w5y1zi"},  // 'i' is not in the alphabet
      {"OrgId", "org_01jdq3v7k2m9x4c8r6t0w5y1z"},   // too short
      {"Name", "Web"},
      {"Name", "web-"},
      {"Name", "1web"},
      {"Name", std::string(64, 'a')},
      {"Timestamp", "2026-11-26T11:46:40Z"},
      {"Timestamp", "2026-11-26T11:46:40.123456+01:00"},
      {"Timestamp", "2026-13-26T11:46:40.123456Z"},
      {"ImageDigest", "sha256:" + std::string(64, 'A')},
      {"ProcessCounts", {{"web", 1001}}},
      {"ProcessCounts", {{"web", -1}}},
      {"ProcessCounts", {{"web", "2"}}},
      {"Health", {{"status", "degraded"}, {"checkpoint", 0}}},
      {"Accepted", {{"accepted", false}, {"seq", 1}, {"message", "x"}}},
      {"ErrorCode", "invalid_argument"},
      {"RouteHostname", "*.*.example.com"},
      {"RouteHostname", "a.*.example.com"},
      {"RouteHostname", "Example.com"},
      {"Port", 0},
      {"EdgeBackend",
       {{"address", "::1"}, {"port", 70000}, {"healthy", true}, {"draining", false}}},
  };
  for (const auto& [name, instance] : bad) {
    EXPECT_NE(validateAgainstComponent(doc(), name, instance), std::nullopt)
        << name << " accepted " << instance.dump();
  }
}

// ---- validateResponse ----

TEST_F(OpenApiTest, ValidateResponseChecksTheOperationsSchema) {
  EXPECT_EQ(validateResponse(doc(), "GET", "/v1/orgs/{org_id}", 200, org().dump()), std::nullopt);
  EXPECT_EQ(validateResponse(doc(), "get", "/v1/orgs", 200, page(org()).dump()), std::nullopt);
  const std::string notFound = Json{{"error", samples().at("Error")}}.dump();
  EXPECT_EQ(validateResponse(doc(), "DELETE", "/v1/apps/{app_id}", 404, notFound), std::nullopt);
  EXPECT_EQ(validateResponse(doc(), "POST", "/v1/orgs", 202, samples().at("Accepted").dump()),
            std::nullopt);
  EXPECT_EQ(validateResponse(doc(), "GET", "/metrics", 200, "# TYPE up gauge\nup 1\n"),
            std::nullopt);
  Json nullOrg = event();
  nullOrg["org_id"] = nullptr;
  nullOrg["request_id"] = nullptr;
  nullOrg["actor"] = "system:bootstrap";
  EXPECT_EQ(validateResponse(doc(), "GET", "/v1/orgs/{org_id}/events", 200,
                             Json{{"items", Json::array({nullOrg})}, {"next_after", 7}}.dump()),
            std::nullopt);
}

TEST_F(OpenApiTest, ValidateResponseNamesWhatIsWrong) {
  EXPECT_EQ(validateResponse(doc(), "GET", "/v1/orgs", 418, "{}"),
            "status 418 not documented for GET /v1/orgs");
  EXPECT_EQ(validateResponse(doc(), "GET", "/v1/nope", 200, "{}"),
            "path /v1/nope is not documented");
  EXPECT_EQ(validateResponse(doc(), "PATCH", "/v1/orgs", 200, "{}"),
            "PATCH /v1/orgs is not documented");
  auto notJson = validateResponse(doc(), "GET", "/v1/orgs", 200, "{");
  ASSERT_TRUE(notJson.has_value());
  EXPECT_NE(notJson->find("body is not JSON"), std::string::npos) << *notJson;

  Json list = page(org());
  list["items"][0]["id"] = "org_nope";
  auto err = validateResponse(doc(), "GET", "/v1/orgs", 200, list.dump());
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->find("GET /v1/orgs 200: at /items/0/id: "), std::string::npos) << *err;
  EXPECT_NE(err->find("'pattern'"), std::string::npos) << *err;
  EXPECT_NE(err->find("\"org_nope\""), std::string::npos) << *err;

  Json envelope = {{"error", samples().at("Error")}};
  envelope["error"].erase("request_id");
  err = validateResponse(doc(), "GET", "/v1/orgs", 401, envelope.dump());
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->find("at /error: Missing required property 'request_id'"), std::string::npos)
      << *err;
}

// ---- Event schemas (api/schemas) agree with the projections and the docs ----

std::set<std::string> eventSchemaFiles() {
  std::set<std::string> out;
  for (const auto& f : std::filesystem::directory_iterator(kSourceDir + "/api/schemas/events")) {
    if (f.path().extension() == ".json") out.insert(f.path().stem().string());
  }
  return out;
}

const std::map<std::string, Json>& payloads() {
  static const auto m = mergedSamples(payloadSamples(), routePayloadSamples());
  return m;
}

Json loadSchemaFile(const std::string& rel) { return Json::parse(readText("api/schemas/" + rel)); }

TEST(EventSchemasTest, EveryProjectedEventTypeHasASchemaAndADocRow) {
  const auto projected = matchLines(readText("services/control-plane/src/projections.cc"),
                                    std::regex(R"re(^\s*\{"([a-z_]+\.[a-z_]+)", )re"));
  const auto documented = matchLines(readText("docs/specs/state/event-types.md"),
                                     std::regex(R"(^\| `([a-z_]+\.[a-z_]+)` \|)"));
  EXPECT_EQ(projected.size(), 60U);
  EXPECT_EQ(eventSchemaFiles(), projected);
  EXPECT_EQ(documented, projected);
}

TEST(EventSchemasTest, EveryPayloadSchemaAcceptsItsSampleAndRejectsNearMisses) {
  for (const auto& type : eventSchemaFiles()) {
    auto it = payloads().find(type);
    ASSERT_NE(it, payloads().end()) << "no sample payload for " << type;
    const std::string file = "events/" + type + ".json";
    auto err = validateAgainstSchemaFile(file, it->second);
    EXPECT_EQ(err, std::nullopt) << *err;

    const Json schema = loadSchemaFile(file);
    EXPECT_EQ(schema["additionalProperties"], Json(false)) << type;
    std::set<std::string> props;
    for (const auto& [prop, unused] : schema["properties"].items()) props.insert(prop);
    EXPECT_EQ(std::set<std::string>(schema["required"].begin(), schema["required"].end()), props)
        << type;
    for (const auto& prop : props) {
      Json missing = it->second;
      missing.erase(prop);
      EXPECT_NE(validateAgainstSchemaFile(file, missing), std::nullopt) << type << " - " << prop;
    }
    Json extra = it->second;
    extra["unexpected"] = true;
    EXPECT_NE(validateAgainstSchemaFile(file, extra), std::nullopt) << type << " + field";
  }
}

TEST(EventSchemasTest, PayloadsCarryNoSecretMaterial) {
  // A secrets version id is not material: it names which sealed version to
  // use; nor is a quota on the size of secrets (org.quotas_set).
  const std::regex secretish("token$|secret(?!s_version$|s_bytes$)|hash|password|digest_of");
  for (const auto& type : eventSchemaFiles()) {
    // Keep the schema alive: a range-for over items() of a temporary dangles.
    const Json schema = loadSchemaFile("events/" + type + ".json");
    for (const auto& [prop, unused] : schema["properties"].items()) {
      EXPECT_FALSE(std::regex_search(prop, secretish)) << type << "." << prop;
    }
  }
  for (const char* field : {"token", "token_hash", "secret"}) {
    Json payload = payloads().at("token.created");
    payload[field] = "vt_" + std::string(52, 'z');
    EXPECT_NE(validateAgainstSchemaFile("events/token.created.json", payload), std::nullopt)
        << field;
  }
}

TEST(EventSchemasTest, PayloadValuesAreChecked) {
  const std::vector<std::pair<std::string, std::pair<std::string, Json>>> bad = {
      {"env.scale_set", {"processes", {{"web", 1001}}}},
      {"env.scale_set", {"processes", {{"Web", 1}}}},
      {"env.scale_set", {"processes", {{"web", 1.5}}}},
      {"release.created", {"image_digest", "sha256:abc"}},
      {"release.created", {"manifest", "{}"}},
      {"deploy.created", {"strategy", "bluegreen"}},
      {"deploy.status_changed", {"status", "done"}},
      {"org.member_added", {"role", "admin"}},
      {"token.created", {"kind", "robot"}},
      {"app.created", {"org_id", id("app")}},
      {"node.state_changed", {"to", "gone"}},
      {"node.enrolled", {"ipv6_prefix", "fd7a:5c00:0:1::/48"}},
      {"node.enrolled", {"runtimes", Json::array()}},
      {"node.mesh_key_rotation_requested", {"reason", "cron"}},
      {"node.mesh_key_staged", {"public_key", std::string(43, 'x') + "="}},
      {"node.mesh_key_staged", {"listen_port", 0}},
      {"node.mesh_key_rotated", {"public_key", std::string(42, 'k') + "=="}},
      {"instance.allocated", {"deploy_id", id("rel")}},
      {"instance.allocated", {"secrets_version", id("dep")}},
      {"secrets.version_created", {"keys", {"bad-key"}}},
      {"secrets.version_created", {"operation", "patch"}},
      {"instance.restart_scheduled", {"generation", 1}},
      {"instance.status_reported", {"phase", "allocated"}},
      {"instance.status_reported", {"timings", {{"boot_seconds", 1}}}},
      {"route.created", {"hostname", "App.example.com"}},
      {"route.created", {"hostname", "app.example.com."}},
      {"route.created", {"protocol", "http"}},
      {"route.created", {"listener_port", 0}},
      {"route.updated", {"proxy_protocol", "v1"}},
      {"route.deleted", {"listener_port", 65536}},
      {"volume.created", {"size_bytes", 1024}},
      {"volume.created", {"full_name", "Uploads-0"}},
      {"volume.created", {"origin", "cli"}},
      {"volume.extend_requested", {"size_bytes", (int64_t{16} << 40) + 1}},
      {"volume.delete_requested", {"reason", "because"}},
      {"volume.status_reported", {"state", "deleting"}},
      {"volume.status_reported", {"reason", std::string(513, 'x')}},
      {"volume.deleted", {"node_id", id("inst")}},
      {"volume.created", {"origin", "clone"}},
      {"volume.snapshot_requested", {"snapshot_id", id("vop")}},
      {"volume.snapshot_taken", {"sha256", std::string(64, 'A')}},
      {"volume.snapshot_taken", {"method", "dd"}},
      {"volume.snapshot_taken", {"freeze_ms", -2}},
      {"volume.snapshot_taken", {"origin", "cli"}},
      {"volume.snapshot_failed", {"reason", std::string(513, 'x')}},
      {"volume.backed_up", {"backup_id", std::string(63, 'b')}},
      {"volume.snapshot_expired", {"local", "yes"}},
      {"volume.restore_requested", {"source", "mesh"}},
      {"volume.restore_requested", {"op_id", id("snap")}},
      {"volume.restored", {"sha256", "0"}},
      {"volume.verified", {"origin", "cron"}},
  };
  for (const auto& [type, change] : bad) {
    Json payload = payloads().at(type);
    payload[change.first] = change.second;
    EXPECT_NE(validateAgainstSchemaFile("events/" + type + ".json", payload), std::nullopt)
        << type << "." << change.first << " = " << change.second.dump();
  }
  // valijson gives propertyNames no message of its own; the error still names the value.
  Json payload = payloads().at("env.scale_set");
  payload["processes"] = {{"Web", 1}};
  auto err = validateAgainstSchemaFile("events/env.scale_set.json", payload);
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->find("events/env.scale_set.json: at /processes: "), std::string::npos) << *err;
}

TEST_F(OpenApiTest, EnvelopeFileAndOpenApiEventAgree) {
  const Json file = loadSchemaFile("event-envelope.json");
  const Json& api = doc()["components"]["schemas"]["Event"];
  std::set<std::string> fileProps;
  std::set<std::string> apiProps;
  for (const auto& [p, unused] : file["properties"].items()) fileProps.insert(p);
  for (const auto& [p, unused] : api["properties"].items()) apiProps.insert(p);
  EXPECT_EQ(fileProps, apiProps);
  EXPECT_EQ(file["required"], api["required"]);

  Json e = event();
  EXPECT_EQ(validateAgainstSchemaFile("event-envelope.json", e), std::nullopt);
  e["org_id"] = nullptr;
  e["request_id"] = nullptr;
  e["actor"] = "system:bootstrap";
  for (const auto& [type, payload] : payloads()) {
    e["event_type"] = type;
    e["payload"] = payload;
    auto err = validateAgainstSchemaFile("event-envelope.json", e);
    EXPECT_EQ(err, std::nullopt) << *err;
    err = validateAgainstComponent(doc(), "Event", e);
    EXPECT_EQ(err, std::nullopt) << *err;
  }
  for (const auto& field : file["required"]) {
    Json missing = event();
    missing.erase(field.get<std::string>());
    EXPECT_NE(validateAgainstSchemaFile("event-envelope.json", missing), std::nullopt) << field;
  }
  const std::vector<std::pair<std::string, Json>> bad = {
      {"seq", 0},
      {"seq", "7"},
      {"occurred_at", "2026-11-26"},
      {"actor", "alice"},
      {"org_id", id("app")},
      {"event_type", "created"},
      {"payload", "{}"},
      {"correlation", nullptr},
      {"unexpected", 1},
  };
  for (const auto& [field, value] : bad) {
    Json instance = event();
    instance[field] = value;
    EXPECT_NE(validateAgainstSchemaFile("event-envelope.json", instance), std::nullopt)
        << field << " = " << value.dump();
  }
  EXPECT_NE(validateAgainstSchemaFile("events/no.such_type.json", event()), std::nullopt);
}

// api/schemas/node-plan.json and workload-spec.json describe the same shapes
// as the OpenAPI's NodePlan and WorkloadSpec.
TEST_F(OpenApiTest, NodePlanFilesAndOpenApiAgree) {
  for (const auto& [file, name] :
       {std::pair<std::string, std::string>{"node-plan.json", "NodePlan"},
        {"workload-spec.json", "WorkloadSpec"}}) {
    const Json schema = loadSchemaFile(file);
    const Json& api = doc()["components"]["schemas"][name];
    std::set<std::string> fileProps;
    std::set<std::string> apiProps;
    for (const auto& [p, unused] : schema["properties"].items()) fileProps.insert(p);
    for (const auto& [p, unused] : api["properties"].items()) apiProps.insert(p);
    EXPECT_EQ(fileProps, apiProps) << file;
    EXPECT_EQ(schema["required"], api["required"]) << file;
  }
  const Json plan = nodePlan();
  EXPECT_EQ(validateAgainstSchemaFile("node-plan.json", plan), std::nullopt);
  EXPECT_EQ(validateAgainstSchemaFile("workload-spec.json", workloadSpec()), std::nullopt);
  const std::vector<std::pair<std::string, Json>> bad = {
      {"desired", "running"},
      {"generation", 0},
      {"network",
       {{"address", "fd7a::2"}, {"prefix_len", 64}, {"gateway", "fe80::1"}, {"mtu", 1420}}},
      {"volumes", Json::array({Json::object()})},
      {"volumes", Json::array({{{"volume_id", id("vol")},
                                {"name", "uploads-0"},
                                {"mount", "data"},
                                {"size_bytes", int64_t{1} << 30}}})},
      {"volumes", Json::array({{{"volume_id", id("inst")},
                                {"name", "uploads-0"},
                                {"mount", "/data"},
                                {"size_bytes", int64_t{1} << 30}}})},
      {"image", {{"ref", "x"}, {"digest", "latest"}}},
      {"secrets", {{"version", 1}}},
  };
  for (const auto& [field, value] : bad) {
    Json spec = workloadSpec();
    spec[field] = value;
    EXPECT_NE(validateAgainstSchemaFile("workload-spec.json", spec), std::nullopt) << field;
    EXPECT_NE(validateAgainstComponent(doc(), "WorkloadSpec", spec), std::nullopt) << field;
    Json p = plan;
    p["instances"][0] = spec;
    EXPECT_NE(validateAgainstSchemaFile("node-plan.json", p), std::nullopt) << field;
  }
  const std::vector<std::pair<std::string, Json>> bad_volumes = {
      {"size_bytes", 1 << 20},         {"state", "failed"}, {"backup_every_seconds", -1},
      {"backup_every_seconds", "15m"}, {"backup_keep", 0},  {"backup_keep", 1001},
  };
  for (const auto& [field, value] : bad_volumes) {
    Json p = plan;
    p["volumes"][0][field] = value;
    EXPECT_NE(validateAgainstSchemaFile("node-plan.json", p), std::nullopt) << field;
    EXPECT_NE(validateAgainstComponent(doc(), "NodePlan", p), std::nullopt) << field;
  }
  // Each op is exactly one of the three shapes.
  const std::vector<std::tuple<int, std::string, Json>> bad_ops = {
      {0, "op_id", id("vop")},
      {0, "kind", "restore"},
      {0, "path", "/"},
      {1, "backup_id", "ab"},
      {1, "sha256", std::string(64, 'A')},
      {1, "source", "mesh"},
      {1, "size_bytes", 1},
      {2, "op_id", id("snap")},
      {2, "in_place", true},
  };
  for (const auto& [i, field, value] : bad_ops) {
    Json p = plan;
    p["volume_ops"][i][field] = value;
    EXPECT_NE(validateAgainstSchemaFile("node-plan.json", p), std::nullopt) << i << field;
    EXPECT_NE(validateAgainstComponent(doc(), "NodePlan", p), std::nullopt) << i << field;
  }
  // The mesh section (docs/specs/networking/mesh.md): every field required,
  // roles and ports in range, a peer with one /64 at least.
  const std::vector<std::tuple<std::string, std::string, Json>> bad_mesh = {
      {"", "version", -1},
      {"", "cluster_prefix", "fd7a:5c00::"},
      {"", "peers", Json::object()},
      {"self", "listen_port", 0},
      {"self", "role", "boss"},
      {"self", "prefix", "fd7a:5c00:0:1::/48"},
      {"peer", "allowed_ips", Json::array()},
      {"peer", "public_key", "short"},
      {"peer", "endpoint", ""},
      {"peer", "role", "ingress"},
      {"peer", "next", {{"public_key", "short"}, {"endpoint", "[fd00:5c::b]:51821"}}},
      {"peer", "next", {{"public_key", std::string(43, 'w') + "="}}},
      {"self", "rotate", "yes"},
      {"self", "next_listen_port", 0},
      {"self", "next_public_key", "short"},
  };
  for (const auto& [where, field, value] : bad_mesh) {
    Json p = plan;
    Json& target = where.empty()     ? p["mesh"]
                   : where == "self" ? p["mesh"]["self"]
                                     : p["mesh"]["peers"][0];
    target[field] = value;
    EXPECT_NE(validateAgainstSchemaFile("node-plan.json", p), std::nullopt) << where << field;
    EXPECT_NE(validateAgainstComponent(doc(), "NodePlan", p), std::nullopt) << where << field;
  }
  Json no_mesh = plan;
  no_mesh.erase("mesh");
  EXPECT_NE(validateAgainstSchemaFile("node-plan.json", no_mesh), std::nullopt);
  EXPECT_EQ(validateAgainstSchemaFile("node-plan.json", plan), std::nullopt);
}

}  // namespace
}  // namespace plfm::cp::testsupport
