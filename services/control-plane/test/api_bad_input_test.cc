// Bad input, table-driven: every case gets a 4xx that names the field or the
// reason, never a 500, a crash or a partial write.
#include <gtest/gtest.h>

#include "api_test_support.h"

namespace plfm::cp {
namespace {

using testsupport::ApiTest;

struct BadCase {
  const char* name;
  const char* method;
  std::string path;  // {org} {app} {env} are substituted
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  int status;
  const char* code;
  const char* field;        // expected details.field, or "" for none
  const char* reason = "";  // expected details.reason, or "" for none
};

// A release request around `manifest` (JSON text).
std::string releaseBody(const std::string& manifest);

std::string fill(std::string s, const std::map<std::string, std::string>& vars) {
  for (const auto& [k, v] : vars) {
    for (size_t p; (p = s.find(k)) != std::string::npos;) s.replace(p, k.size(), v);
  }
  return s;
}

const std::string kDigest = "sha256:" + std::string(64, 'c');

std::string releaseBody(const std::string& manifest) {
  return R"({"image_ref":"hello:1","image_digest":")" + kDigest + R"(","manifest":)" + manifest +
         "}";
}

// `n` JSON strings, comma-separated.
std::string manyStrings(int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += i == 0 ? R"("a")" : R"(,"a")";
  return out;
}

// A manifest with app and image, and `process` as its one process.
std::string withProcess(const std::string& process, const std::string& extra = "") {
  return R"({"app":"hello","image":"hello:1","processes":[)" + process + "]" + extra + "}";
}

std::vector<BadCase> cases() {
  const std::string big(size_t{70} * 1024, 'x');
  return {
      {"malformed_json", "POST", "/v1/orgs", R"({"name":)", {}, 400, "invalid_json", ""},
      {"json_not_object", "POST", "/v1/orgs", "[1,2]", {}, 400, "invalid_json", ""},
      {"empty_body", "POST", "/v1/orgs", "", {}, 400, "invalid_json", ""},
      {"unknown_field",
       "POST",
       "/v1/orgs",
       R"({"name":"x","nmae":"y"})",
       {},
       400,
       "unknown_field",
       "nmae"},
      {"wrong_type", "POST", "/v1/orgs", R"({"name":5})", {}, 400, "invalid_field", "name"},
      {"missing_field", "POST", "/v1/orgs", "{}", {}, 400, "invalid_field", "name"},
      {"bad_name", "POST", "/v1/orgs", R"({"name":"Bad Name"})", {}, 400, "invalid_field", "name"},
      {"name_too_long",
       "POST",
       "/v1/orgs",
       R"({"name":")" + std::string(64, 'a') + R"("})",
       {},
       400,
       "invalid_field",
       "name"},
      {"oversized_body",
       "POST",
       "/v1/orgs",
       R"({"name":")" + big + R"("})",
       {},
       413,
       "payload_too_large",
       ""},
      {"invalid_path_id", "GET", "/v1/apps/app_bad", "", {}, 400, "invalid_id", "app_id"},
      {"wrong_prefix_id", "GET", "/v1/apps/{env}", "", {}, 400, "invalid_id", "app_id"},
      {"invalid_limit", "GET", "/v1/orgs?limit=0", "", {}, 400, "invalid_query", "limit"},
      {"limit_not_number", "GET", "/v1/orgs?limit=ten", "", {}, 400, "invalid_query", "limit"},
      {"invalid_cursor", "GET", "/v1/orgs?cursor=zzz", "", {}, 400, "invalid_query", "cursor"},
      {"missing_idempotency_key",
       "POST",
       "/v1/orgs",
       R"({"name":"nokey"})",
       {{"Idempotency-Key", ""}},
       400,
       "idempotency_key_required",
       "Idempotency-Key"},
      {"duplicate_idempotency_key",
       "POST",
       "/v1/orgs",
       R"({"name":"dupkey"})",
       {{"Idempotency-Key", "k1"}, {"Idempotency-Key", "k2"}},
       400,
       "idempotency_key_invalid",
       "Idempotency-Key"},
      {"idempotency_key_too_long",
       "POST",
       "/v1/orgs",
       R"({"name":"longkey"})",
       {{"Idempotency-Key", std::string(256, 'k')}},
       400,
       "idempotency_key_invalid",
       "Idempotency-Key"},
      {"digest_is_a_tag",
       "POST",
       "/v1/apps/{app}/releases",
       R"({"image_ref":"hello:latest","image_digest":"latest","manifest":{}})",
       {},
       400,
       "invalid_field",
       "image_digest"},
      {"image_ref_oci_layout",
       "POST",
       "/v1/apps/{app}/releases",
       R"({"image_ref":"oci:/var/lib/plfm/images:x","image_digest":")" + kDigest +
           R"(","manifest":{}})",
       {},
       400,
       "invalid_field",
       "image_ref"},
      {"image_ref_control_bytes",
       "POST",
       "/v1/apps/{app}/releases",
       R"({"image_ref":"hello:1\nreason: pwned","image_digest":")" + kDigest +
           R"(","manifest":{}})",
       {},
       400,
       "invalid_field",
       "image_ref"},
      {"manifest_not_object",
       "POST",
       "/v1/apps/{app}/releases",
       R"({"image_ref":"hello:1","image_digest":")" + kDigest + R"(","manifest":"x"})",
       {},
       400,
       "invalid_field",
       "manifest"},
      {"scale_negative",
       "PUT",
       "/v1/envs/{env}/scale",
       R"({"processes":{"web":-1}})",
       {},
       400,
       "invalid_field",
       "processes.web"},
      {"scale_too_many",
       "PUT",
       "/v1/envs/{env}/scale",
       R"({"processes":{"web":1001}})",
       {},
       400,
       "invalid_field",
       "processes.web"},
      {"scale_bad_process",
       "PUT",
       "/v1/envs/{env}/scale",
       R"({"processes":{"Web!":1}})",
       {},
       400,
       "invalid_field",
       "processes.Web!"},
      {"scale_empty",
       "PUT",
       "/v1/envs/{env}/scale",
       R"({"processes":{}})",
       {},
       400,
       "invalid_field",
       "processes"},
      {"deploy_bad_strategy",
       "POST",
       "/v1/envs/{env}/deploys",
       R"({"release_id":"rel_01jdq3v7k2m9x4c8r6t0w5y1zb","strategy":"yolo"})",
       {},
       400,
       "invalid_field",
       "strategy"},
      {"deploy_release_wrong_type",
       "POST",
       "/v1/envs/{env}/deploys",
       R"({"release_id":5})",
       {},
       400,
       "invalid_field",
       "release_id"},
      {"deploy_release_bad_id",
       "POST",
       "/v1/envs/{env}/deploys",
       R"({"release_id":"app_01jdq3v7k2m9x4c8r6t0w5y1zb"})",
       {},
       400,
       "invalid_field",
       "release_id"},
      {"deploy_unknown_release",
       "POST",
       "/v1/envs/{env}/deploys",
       R"({"release_id":"rel_01jdq3v7k2m9x4c8r6t0w5y1zb"})",
       {},
       404,
       "not_found",
       "release_id"},
      {"member_bad_role",
       "POST",
       "/v1/orgs/{org}/members",
       R"({"user_id":"usr_01jdq3v7k2m9x4c8r6t0w5y1zb","role":"god"})",
       {},
       400,
       "invalid_field",
       "role"},
      {"events_negative_after",
       "GET",
       "/v1/orgs/{org}/events?after=-1",
       "",
       {},
       400,
       "invalid_query",
       "after"},
      {"events_wait_too_long",
       "GET",
       "/v1/orgs/{org}/events?wait=999",
       "",
       {},
       400,
       "invalid_query",
       "wait"},
      // Manifests get the rules of `vt manifest validate` (issue 15).
      {"manifest_as_in_the_crash_report",
       "POST",
       "/v1/apps/{app}/releases",
       releaseBody(R"({"processes":[{"name":"web","resources":{"vcpus":"x","memory_mb":128}}]})"),
       {},
       400,
       "invalid_field",
       "manifest.app"},
      {"manifest_vcpus_wrong_type",
       "POST",
       "/v1/apps/{app}/releases",
       releaseBody(withProcess(R"({"name":"web","resources":{"vcpus":"x","memory_mb":128}})")),
       {},
       400,
       "invalid_field",
       "manifest.processes[0].resources.vcpus"},
      {"manifest_negative_memory",
       "POST",
       "/v1/apps/{app}/releases",
       releaseBody(withProcess(R"({"name":"web","resources":{"memory_mb":-4096}})")),
       {},
       400,
       "invalid_field",
       "manifest.processes.web.resources.memory_mb"},
      {"manifest_absurd_vcpus",
       "POST",
       "/v1/apps/{app}/releases",
       releaseBody(withProcess(R"({"name":"web","resources":{"vcpus":1000000}})")),
       {},
       400,
       "invalid_field",
       "manifest.processes.web.resources.vcpus"},
      {"manifest_memory_overflows_int",
       "POST",
       "/v1/apps/{app}/releases",
       releaseBody(withProcess(R"({"name":"web","resources":{"memory_mb":99999999999999}})")),
       {},
       400,
       "invalid_field",
       "manifest.processes[0].resources.memory_mb"},
      {"manifest_volume_over_proc",
       "POST",
       "/v1/apps/{app}/releases",
       releaseBody(withProcess(
           R"({"name":"web"})",
           R"(,"volumes":[{"name":"data","mount":"/proc","process":"web","size_bytes":1073741824}])")),
       {},
       400,
       "invalid_field",
       "manifest.volumes[0].mount"},
      {"manifest_unknown_field",
       "POST",
       "/v1/apps/{app}/releases",
       releaseBody(withProcess(R"({"name":"web"})", R"(,"colour":"blue")")),
       {},
       400,
       "invalid_field",
       "manifest.colour"},
      {"manifest_huge_array",
       "POST",
       "/v1/apps/{app}/releases",
       releaseBody(withProcess(R"({"name":"web","args":[)" + manyStrings(2000) + "]}")),
       {},
       400,
       "invalid_field",
       "manifest.processes.web.args"},
      {"manifest_number_overflows_double",
       "POST",
       "/v1/apps/{app}/releases",
       releaseBody(withProcess(R"({"name":"web","resources":{"memory_mb":1e400}})")),
       {},
       400,
       "invalid_json",
       "",
       "malformed"},
      {"manifest_too_deep",
       "POST",
       "/v1/apps/{app}/releases",
       releaseBody(std::string(20'000, '[') + std::string(20'000, ']')),
       {},
       400,
       "invalid_json",
       "",
       "too_deep"},
      {"invalid_utf8",
       "POST",
       "/v1/orgs",
       "{\"name\":\"\xff\xfe\"}",
       {},
       400,
       "invalid_json",
       "",
       "malformed"},
      {"unknown_route", "GET", "/v1/nothing-here", "", {}, 404, "not_found", ""},
      {"method_not_allowed", "PATCH", "/v1/orgs", "", {}, 405, "method_not_allowed", ""},
  };
}

TEST_F(ApiTest, BadInputGetsAClear4xxAndWritesNothing) {
  const std::string org = makeOrg("badinput");
  const std::string app = makeApp(org, "web");
  const std::string env = makeEnv(app, "prod");
  const std::map<std::string, std::string> vars = {{"{org}", org}, {"{app}", app}, {"{env}", env}};
  auto conn = connect();
  auto before = conn.exec("SELECT count(*) FROM events");
  ASSERT_TRUE(before.has_value());

  for (const auto& c : cases()) {
    SCOPED_TRACE(c.name);
    http::Headers h;
    for (const auto& [k, v] : c.headers) h.add(k, v);
    auto r = call(c.method, fill(c.path, vars), c.body, std::nullopt, h);
    EXPECT_EQ(r.status, c.status) << r.raw;
    ASSERT_TRUE(r.body.contains("error")) << r.raw;
    EXPECT_EQ(r.body["error"]["code"], c.code) << r.raw;
    EXPECT_FALSE(r.body["error"]["message"].get<std::string>().empty());
    if (*c.field != '\0') {
      EXPECT_EQ(r.body["error"]["details"].value("field", ""), c.field) << r.raw;
    }
    if (*c.reason != '\0') {
      EXPECT_EQ(r.body["error"]["details"].value("reason", ""), c.reason) << r.raw;
    }
  }
  auto after = conn.exec("SELECT count(*) FROM events");
  EXPECT_EQ(*after->int64(0, 0), *before->int64(0, 0)) << "a bad request wrote events";
  EXPECT_EQ(call("GET", "/healthz", "", "").status, 200);
}

}  // namespace
}  // namespace plfm::cp
