// The canonical JSON form: the full example's golden, the schema in
// api/schemas/manifest.json, and fromJson as the inverse of toJson.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

#include "plfm/manifest/manifest.h"
#include "plfm/testing/temp_dir.h"

// valijson calls abort() on a malformed schema unless exceptions are enabled.
#ifndef VALIJSON_USE_EXCEPTIONS
#define VALIJSON_USE_EXCEPTIONS 1
#endif
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

namespace plfm::manifest {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

std::string readText(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

Manifest parseTestdata(const std::string& name) {
  const auto path = fs::path(PLFM_TEST_DIR) / "test" / "testdata" / name;
  ParseResult r = parseFile(path);
  std::string diags;
  for (const auto& d : r.diagnostics) diags += d.format() + "\n";
  EXPECT_TRUE(r.ok()) << diags;
  return r.manifest.value_or(Manifest{});
}

// nullopt when `instance` is valid per api/schemas/manifest.json, else every
// violation, one per line.
std::optional<std::string> schemaErrors(const Json& instance) {
  static const Json schema =
      Json::parse(readText(fs::path(PLFM_SOURCE_DIR) / "api" / "schemas" / "manifest.json"));
  valijson::Schema compiled;
  valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
  const valijson::adapters::NlohmannJsonAdapter schemaAdapter(schema);
  parser.populateSchema(schemaAdapter, compiled);
  valijson::Validator validator;  // strong types: "1" is not an integer
  valijson::ValidationResults results;
  const valijson::adapters::NlohmannJsonAdapter target(instance);
  if (validator.validate(compiled, target, &results)) return std::nullopt;
  std::string out;
  valijson::ValidationResults::Error e;
  while (results.popError(e)) {
    std::string where;
    for (const auto& c : e.context) where += c;
    out += where + ": " + e.description + "\n";
  }
  return out;
}

TEST(ManifestJson, FullExampleMatchesGolden) {
  const Manifest m = parseTestdata("full.toml");
  PLFM_EXPECT_GOLDEN("golden/full.json", m.toJson().dump(2) + "\n");
}

TEST(ManifestJson, FullAndMinimalAreValidPerSchema) {
  for (const char* name : {"full.toml", "minimal.toml"}) {
    const Json j = parseTestdata(name).toJson();
    EXPECT_EQ(schemaErrors(j), std::nullopt) << name;
  }
}

TEST(ManifestJson, SchemaRejectsWhatTheLibraryRejects) {
  const Json good = parseTestdata("full.toml").toJson();
  ASSERT_EQ(schemaErrors(good), std::nullopt);
  auto mutated = [&](const char* pointer, Json value) {
    Json j = good;
    j[Json::json_pointer(pointer)] = std::move(value);
    return j;
  };
  const std::pair<const char*, Json> cases[] = {
      {"/processes/0/resources/memory_mb", 63},
      {"/processes/0/resources/vcpus", 65},
      {"/processes/0/name", "Web"},
      {"/services/0/protocol", "udp"},
      {"/services/0/routes/0/hostname", "Shop.example.com"},
      {"/services/0/routes/0/port", 0},
      {"/services/0/routes/0/proxy_protocol", "v1"},
      {"/volumes/0/mount", "data"},
      {"/volumes/0/size_bytes", 1024},
      {"/checks/0/type", "grpc"},
      {"/checks/1/port", 0},       // a tcp check without a port
      {"/checks/1/type", "exec"},  // refused until exec sessions exist
      {"/env/1BAD", "x"},
      {"/secrets/names/0", "lower"},
      {"/deploy/strategy", "canary"},
      {"/deploy/auto_rollback", "yes"},
      {"/schema_version", 2},
      {"/extra", true},
  };
  for (const auto& [pointer, value] : cases) {
    const Json j = mutated(pointer, value);
    EXPECT_NE(schemaErrors(j), std::nullopt) << pointer << " = " << value.dump();
    EXPECT_FALSE(fromJson(j).has_value()) << pointer << " = " << value.dump();
  }
}

TEST(ManifestJson, FromJsonInvertsToJson) {
  for (const char* name : {"full.toml", "minimal.toml"}) {
    const Manifest m = parseTestdata(name);
    const Json j = m.toJson();
    auto back = fromJson(j);
    ASSERT_TRUE(back.has_value()) << back.error().toString();
    EXPECT_EQ(back->toJson(), j) << name;
    EXPECT_EQ(back->toJson().dump(), j.dump()) << "deterministic text";
  }
}

// Defaults added to [deploy] after releases were stored stay out of the
// canonical form, so those releases compare byte for byte as before.
TEST(ManifestJson, DeployDefaultsStayOutOfTheCanonicalForm) {
  const ParseResult on = parse("app = \"shop\"\nimage = \"shop:1\"\n[processes.web]\n");
  ASSERT_TRUE(on.ok());
  EXPECT_TRUE(on.manifest->deploy.auto_rollback);
  EXPECT_EQ(on.manifest->toJson()["deploy"],
            (Json{{"strategy", "rolling"}, {"max_surge", 1}, {"max_unavailable", 0}}));
  const ParseResult off = parse(
      "app = \"shop\"\nimage = \"shop:1\"\n[processes.web]\n[deploy]\nauto_rollback = false\n");
  ASSERT_TRUE(off.ok());
  const Json j = off.manifest->toJson();
  EXPECT_EQ(j["deploy"]["auto_rollback"], false);
  auto back = fromJson(j);
  ASSERT_TRUE(back.has_value()) << back.error().toString();
  EXPECT_FALSE(back->deploy.auto_rollback);
}

TEST(ManifestJson, FromJsonFillsLeftOutFieldsWithTheTomlDefaults) {
  const Json minimal = {{"app", "shop"}, {"image", "shop:1"}, {"processes", {{{"name", "web"}}}}};
  auto m = fromJson(minimal);
  ASSERT_TRUE(m.has_value()) << m.error().toString();
  const ParseResult toml = parse("app = \"shop\"\nimage = \"shop:1\"\n[processes.web]\n");
  ASSERT_TRUE(toml.ok());
  EXPECT_EQ(m->toJson(), toml.manifest->toJson());
  // What names things stays required, and says so.
  for (const char* field : {"app", "image", "processes"}) {
    Json j = minimal;
    j.erase(field);
    auto r = fromJson(j);
    ASSERT_FALSE(r.has_value()) << field;
    EXPECT_EQ(r.error().detail("field"), field);
    EXPECT_NE(r.error().message().find("required"), std::string::npos);
  }
  Json noName = minimal;
  noName["processes"][0].erase("name");
  EXPECT_EQ(fromJson(noName).error().detail("field"), "processes[0].name");
  // Left out is not the same as null or a wrong type.
  Json nullEnv = minimal;
  nullEnv["env"] = nullptr;
  EXPECT_EQ(fromJson(nullEnv).error().detail("field"), "env");
}

TEST(ManifestJson, FromJsonNamesTheOffendingField) {
  const Json good = parseTestdata("full.toml").toJson();
  {
    Json j = good;
    j["processes"][0]["resources"]["memory_mb"] = "lots";
    auto r = fromJson(j);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().detail("field"), "processes[0].resources.memory_mb");
  }
  {
    Json j = good;
    j["processes"][0]["resources"]["memory_mb"] = 70000;
    auto r = fromJson(j);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().detail("field"), "processes.web.resources.memory_mb");
    EXPECT_NE(r.error().message().find("expected an integer from 64 to 65536, got 70000"),
              std::string::npos)
        << r.error().message();
  }
  {
    Json j = good;
    j["deploy"]["max_surgee"] = 1;
    auto r = fromJson(j);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().detail("field"), "deploy.max_surgee");
  }
  {
    Json j = good;
    j["env"] = Json::array();
    auto r = fromJson(j);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().detail("field"), "env");
  }
  {
    Json j = good;
    j["services"][0]["process"] = "nope";
    auto r = fromJson(j);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().detail("field"), "services[0].process");
  }
  EXPECT_FALSE(fromJson(Json::array()).has_value());
  EXPECT_FALSE(fromJson(Json("vt.toml")).has_value());
}

TEST(ManifestJson, FromJsonSortsLikeTheParser) {
  Json j = parseTestdata("full.toml").toJson();
  std::swap(j["processes"][0], j["processes"][1]);
  std::swap(j["checks"][0], j["checks"][1]);
  std::swap(j["secrets"]["names"][0], j["secrets"]["names"][1]);
  auto m = fromJson(j);
  ASSERT_TRUE(m.has_value()) << m.error().toString();
  EXPECT_EQ(m->processes[0].name, "web");
  EXPECT_EQ(m->checks[0].process, "web");
  EXPECT_EQ(m->secrets[0], "DATABASE_URL");
}

}  // namespace
}  // namespace plfm::manifest
