// Defaults, rule behaviour and the entry points (parse, parseFile, validate,
// Diagnostic::format). Every error message is also pinned by a golden case
// (cases_test.cc); these tests pin the semantics.
#include "plfm/manifest/manifest.h"
#include "plfm/manifest/volume_rules.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

#include "plfm/testing/temp_dir.h"

namespace plfm::manifest {
namespace {

constexpr std::string_view kHead = "app = \"shop\"\nimage = \"shop:1\"\n";

std::string allDiagnostics(const ParseResult& r) {
  std::string out;
  for (const auto& d : r.diagnostics) out += d.format() + "\n";
  return out;
}

Manifest parseOk(const std::string& text) {
  ParseResult r = parse(text);
  EXPECT_TRUE(r.ok()) << allDiagnostics(r);
  return r.manifest.value_or(Manifest{});
}

TEST(ManifestParse, MinimalManifestGetsEveryDefault) {
  const Manifest m = parseOk(std::string(kHead) + "[processes.web]\n");
  EXPECT_EQ(m.app, "shop");
  EXPECT_EQ(m.image, "shop:1");
  ASSERT_EQ(m.processes.size(), 1U);
  EXPECT_EQ(m.processes[0].name, "web");
  EXPECT_TRUE(m.processes[0].command.empty());
  EXPECT_TRUE(m.processes[0].args.empty());
  EXPECT_EQ(m.processes[0].resources.vcpus, 1);
  EXPECT_EQ(m.processes[0].resources.memory_mb, 256);
  EXPECT_TRUE(m.services.empty());
  EXPECT_TRUE(m.volumes.empty());
  EXPECT_TRUE(m.checks.empty());
  EXPECT_TRUE(m.env.empty());
  EXPECT_TRUE(m.secrets.empty());
  EXPECT_FALSE(m.secrets_export_env);
  EXPECT_EQ(m.deploy.strategy, "rolling");
  EXPECT_EQ(m.deploy.max_surge, 1);
  EXPECT_EQ(m.deploy.max_unavailable, 0);
}

TEST(ManifestParse, ServiceAndRouteDefaults) {
  const Manifest m = parseOk(std::string(kHead) + R"(
[processes.web]
[[services]]
internal_port = 8443
[[services.routes]]
hostname = "WWW.Shop.Example.COM"
)");
  ASSERT_EQ(m.services.size(), 1U);
  const Service& s = m.services[0];
  EXPECT_EQ(s.process, "web") << "the only process";
  EXPECT_EQ(s.protocol, "tls-passthrough");
  ASSERT_EQ(s.routes.size(), 1U);
  EXPECT_EQ(s.routes[0].hostname, "www.shop.example.com") << "lower-cased";
  EXPECT_EQ(s.routes[0].port, 443);
  EXPECT_EQ(s.routes[0].proxy_protocol, "none");
}

TEST(ManifestParse, ServiceWithoutRoutesIsAllowed) {
  const Manifest m =
      parseOk(std::string(kHead) + "[processes.web]\n[[services]]\ninternal_port = 80\n");
  ASSERT_EQ(m.services.size(), 1U);
  EXPECT_TRUE(m.services[0].routes.empty());
}

TEST(ManifestParse, VolumesAreAcceptedInFileOrder) {
  const Manifest m = parseOk(std::string(kHead) + R"(
[processes.db]
[processes.web]
[[volumes]]
name = "pg"
mount = "/var/lib/postgresql"
size = "1536MiB"
process = "db"
[[volumes]]
name = "uploads"
mount = "/srv/uploads"
size = "16TiB"
process = "web"
[[volumes]]
name = "wal"
mount = "/var/lib/wal"
size = "16MiB"
process = "db"
)");
  ASSERT_EQ(m.volumes.size(), 3U);
  EXPECT_EQ(m.volumes[0].name, "pg");
  EXPECT_EQ(m.volumes[0].size_bytes, 1536ULL << 20);
  EXPECT_EQ(m.volumes[1].mount, "/srv/uploads");
  EXPECT_EQ(m.volumes[1].size_bytes, 16ULL << 40);
  EXPECT_EQ(m.volumes[2].process, "db");
  // The JSON form (what the control plane reads) says the same.
  auto j = fromJson(m.toJson());
  ASSERT_TRUE(j.has_value()) << j.error().toString();
  EXPECT_EQ(j->toJson(), m.toJson());
  EXPECT_TRUE(validate(m).empty());
}

TEST(ManifestParse, AVolumeHasABackupPolicyWithDefaults) {
  const Manifest m = parseOk(std::string(kHead) + R"(
[processes.db]
[[volumes]]
name = "pg"
mount = "/pg"
size = "1GiB"
[[volumes]]
name = "wal"
mount = "/wal"
size = "1GiB"
backup_every = "1h30m"
backup_keep = 1000
[[volumes]]
name = "scratch"
mount = "/scratch"
size = "1GiB"
backup_every = "off"
backup_keep = 1
[[volumes]]
name = "edge"
mount = "/edge"
size = "1GiB"
backup_every = "60s"
)");
  ASSERT_EQ(m.volumes.size(), 4U);
  EXPECT_EQ(m.volumes[0].backup_every_seconds, kDefaultBackupEverySeconds);
  EXPECT_EQ(m.volumes[0].backup_keep, kDefaultBackupKeep);
  EXPECT_EQ(m.volumes[1].backup_every_seconds, 5400);
  EXPECT_EQ(m.volumes[1].backup_keep, 1000);
  EXPECT_EQ(m.volumes[2].backup_every_seconds, 0);
  EXPECT_EQ(m.volumes[2].backup_keep, 1);
  EXPECT_EQ(m.volumes[3].backup_every_seconds, 60);
  EXPECT_EQ(formatBackupEvery(5400), "90m");
  EXPECT_EQ(formatBackupEvery(0), "off");
  auto j = fromJson(m.toJson());
  ASSERT_TRUE(j.has_value()) << j.error().toString();
  EXPECT_EQ(j->toJson(), m.toJson());
  // The defaults are not written, so releases stored before the policy
  // existed keep their canonical form, and read with the defaults.
  EXPECT_FALSE(m.toJson()["volumes"][0].contains("backup_every_seconds"));
  EXPECT_FALSE(m.toJson()["volumes"][0].contains("backup_keep"));
  EXPECT_EQ(m.toJson()["volumes"][2]["backup_every_seconds"], 0);
  nlohmann::json old = m.toJson();
  old["volumes"][1].erase("backup_every_seconds");
  old["volumes"][1].erase("backup_keep");
  auto o = fromJson(old);
  ASSERT_TRUE(o.has_value()) << o.error().toString();
  EXPECT_EQ(o->volumes[1].backup_every_seconds, kDefaultBackupEverySeconds);
  EXPECT_EQ(o->volumes[1].backup_keep, kDefaultBackupKeep);
  // The JSON form is checked as strictly as vt.toml.
  nlohmann::json bad = m.toJson();
  bad["volumes"][0]["backup_every_seconds"] = 30;
  auto b = fromJson(bad);
  ASSERT_FALSE(b.has_value());
  EXPECT_EQ(b.error().detail("field"), "volumes[0].backup_every");
  bad = m.toJson();
  bad["volumes"][0]["backup_keep"] = 0;
  b = fromJson(bad);
  ASSERT_FALSE(b.has_value());
  EXPECT_EQ(b.error().detail("field"), "volumes[0].backup_keep");
}

TEST(ManifestParse, AVolumeNameLeavesRoomForItsSlot) {
  // <name>-<slot> must be a name of at most 63 characters: 59 + "-999".
  Manifest m;
  m.app = "shop";
  m.image = "shop:1";
  m.processes = {Process{"db", {}, {}, {}}};
  m.volumes = {Volume{std::string(59, 'v'), "/data", "db", 1ULL << 30}};
  EXPECT_TRUE(validate(m).empty());
  m.volumes[0].name = std::string(60, 'v');
  auto j = fromJson(m.toJson());
  ASSERT_FALSE(j.has_value());
  EXPECT_EQ(j.error().detail("field"), "volumes[0].name");
}

TEST(ManifestParse, CheckDefaults) {
  const Manifest m = parseOk(std::string(kHead) + R"(
[processes.web]
[checks.web]
type = "http"
port = 8080
)");
  ASSERT_EQ(m.checks.size(), 1U);
  const Check& c = m.checks[0];
  EXPECT_EQ(c.process, "web");
  EXPECT_EQ(c.path, "/");
  EXPECT_EQ(c.interval_ms, 10000);
  EXPECT_EQ(c.timeout_ms, 2000);
  EXPECT_EQ(c.grace_ms, 5000);
  EXPECT_TRUE(c.command.empty());
}

TEST(ManifestParse, CheckDirectlyUnderChecksAppliesToTheOnlyProcess) {
  const Manifest m = parseOk(std::string(kHead) + R"(
[processes.api]
[checks]
type = "tcp"
port = 9000
interval = "1m30s"
)");
  ASSERT_EQ(m.checks.size(), 1U);
  EXPECT_EQ(m.checks[0].process, "api");
  EXPECT_EQ(m.checks[0].type, "tcp");
  EXPECT_EQ(m.checks[0].path, "");
  EXPECT_EQ(m.checks[0].interval_ms, 90000);
}

TEST(ManifestParse, ErrorsInADirectCheckNameChecks) {
  ParseResult r = parse(std::string(kHead) + "[processes.api]\n[checks]\ntype = \"tcp\"\n");
  ASSERT_EQ(r.diagnostics.size(), 1U) << allDiagnostics(r);
  EXPECT_EQ(r.diagnostics[0].path, "checks.port");
}

TEST(ManifestParse, ListsAreSorted) {
  const Manifest m = parseOk(std::string(kHead) + R"(
[processes.zeta]
[processes.alpha]
[processes.mid]
[checks.zeta]
type = "tcp"
port = 1
[checks.alpha]
type = "tcp"
port = 1
[secrets]
names = ["ZED", "ALPHA", "MIDDLE"]
)");
  ASSERT_EQ(m.processes.size(), 3U);
  EXPECT_EQ(m.processes[0].name, "alpha");
  EXPECT_EQ(m.processes[2].name, "zeta");
  EXPECT_EQ(m.checks[0].process, "alpha");
  EXPECT_EQ(m.secrets, (std::vector<std::string>{"ALPHA", "MIDDLE", "ZED"}));
}

TEST(ManifestParse, ImageReferences) {
  for (const char* image :
       {"shop", "shop:1", "acme/shop:1.2.3", "registry.example.com/acme/shop:v1",
        "localhost:5000/shop", "[::1]:5000/shop", "registry.example.com:443/a/b/c",
        "acme/shop@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "acme/shop:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}) {
    ParseResult r = parse("app = \"a\"\nimage = \"" + std::string(image) + "\"\n[processes.web]\n");
    if (std::string_view(image) == "[::1]:5000/shop") {
      EXPECT_FALSE(r.ok()) << "IPv6 registry literals are not supported";
      continue;
    }
    EXPECT_TRUE(r.ok()) << image << "\n" << allDiagnostics(r);
  }
}

TEST(ManifestParse, ReportsEveryErrorAtOnceInSourceOrder) {
  ParseResult r = parse(R"(app = "Bad App"
image = ""
[processes.web.resources]
memory_mb = 1
vcpus = 100
[deploy]
strategy = "canary"
)");
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.manifest.has_value());
  ASSERT_EQ(r.diagnostics.size(), 5U) << allDiagnostics(r);
  for (size_t i = 1; i < r.diagnostics.size(); ++i) {
    EXPECT_LE(r.diagnostics[i - 1].line, r.diagnostics[i].line);
  }
  EXPECT_EQ(r.diagnostics[0].path, "app");
  EXPECT_EQ(r.diagnostics[2].path, "processes.web.resources.memory_mb");
  EXPECT_EQ(r.diagnostics[2].line, 4);
  EXPECT_EQ(r.diagnostics[2].column, 13);
  EXPECT_EQ(r.diagnostics[2].message, "expected an integer from 64 to 65536, got 1");
}

TEST(ManifestParse, UnknownKeySuggestsTheClosestKey) {
  ParseResult r = parse(std::string(kHead) + "[processes.web.resources]\nmemroy_mb = 512\n");
  ASSERT_EQ(r.diagnostics.size(), 1U) << allDiagnostics(r);
  const Diagnostic& d = r.diagnostics[0];
  EXPECT_EQ(d.path, "processes.web.resources.memroy_mb");
  EXPECT_EQ(d.hint, "did you mean `memory_mb`?");
  EXPECT_EQ(d.line, 4);
  EXPECT_EQ(d.column, 1);
  EXPECT_EQ(d.format(),
            "vt.toml:4:1: processes.web.resources.memroy_mb: unknown key, expected one of: "
            "vcpus, memory_mb (did you mean `memory_mb`?)");
}

TEST(ManifestParse, SensitiveValuesAreNeverEchoed) {
  ParseResult r = parse(std::string(kHead) + R"([processes.web]
[env]
TOKEN = 12345678
[secrets]
API_KEY = "sk_live_secret_value"
)");
  const std::string all = allDiagnostics(r);
  EXPECT_EQ(r.diagnostics.size(), 2U) << all;
  EXPECT_EQ(all.find("12345678"), std::string::npos) << all;
  EXPECT_EQ(all.find("sk_live"), std::string::npos) << all;
}

TEST(ManifestParse, HostileInputGivesDiagnosticsNotCrashes) {
  const std::string inputs[] = {
      std::string("app = \"a\0b\"\n", 12),
      "app = \"\xff\xfe\"\n",
      "\xef\xbb\xbf" + std::string(kHead) + "[processes.web]\n",  // a BOM is fine
      std::string(10000, '['),
      "a" + std::string(5000, '.') + "a = 1",
      "x = " + std::string(300, '{'),
      "x = [" + std::string(100, '"') + "]",
      R"(""")" + std::string(1000, '.'),
      // toml++ 3.3 reaches __builtin_unreachable() for some non-ASCII code
      // points where it looks for whitespace (U+0465 here): outside strings,
      // after a quote inside a bare value, after a multi-line backslash.
      "[processes.\xd1\xa5web]\n",
      "app = 01a\"x\xd1\xa5\"\n",
      "app = \"\"\"a\\\n  \xd1\xa5\"\"\"\n",
      // and assumes that a table header starts with a key
      "[=]\n",
      "[[services]]\n[[services.routes]]\n[[services.routes.x]]\n",
  };
  for (const auto& text : inputs) {
    ParseResult r = parse(text);
    if (r.ok()) continue;
    EXPECT_FALSE(r.diagnostics.empty());
  }
  EXPECT_TRUE(parse(inputs[2]).ok()) << allDiagnostics(parse(inputs[2]));
}

TEST(ManifestParse, NonAsciiIsFineInStringsAndComments) {
  const Manifest m = parseOk(std::string(kHead) +
                             "# caf\xc3\xa9 \xd1\xa5\n[processes.web]\nargs = [\"\xd1\xa5\", "
                             "'\xd1\xa5', \"\"\"\n\xd1\xa5\"\"\"]\n");
  EXPECT_EQ(m.processes[0].args[0], "\xd1\xa5");
  ParseResult r = parse(std::string(kHead) + "[processes.web]\n[env]\n\"\xd1\xa5\" = \"x\"\n");
  ASSERT_EQ(r.diagnostics.size(), 1U) << "a quoted key parses; the env key rule rejects it";
  EXPECT_EQ(r.diagnostics[0].path, "env.\"\xd1\xa5\"");
}

TEST(ManifestParse, RejectsOversizedText) {
  const std::string big = std::string(kHead) + "# " + std::string(1 << 20, 'x') + "\n";
  ParseResult r = parse(big);
  ASSERT_EQ(r.diagnostics.size(), 1U);
  EXPECT_EQ(r.diagnostics[0].message.rfind("file too large", 0), 0U);
}

TEST(ManifestParse, DotsInsideStringsAndCommentsDoNotCount) {
  const std::string dots(100, '.');
  const Manifest m = parseOk(std::string(kHead) + "# " + dots + "\n[processes.web]\nargs = [\"" +
                             dots + "\", '" + dots + "', \"\"\"\n" + dots + "\"\"\"]\n");
  ASSERT_EQ(m.processes[0].args.size(), 3U);
}

TEST(ManifestParse, Limits) {
  auto withArgs = [&](size_t n) {
    std::string text = std::string(kHead) + "[processes.web]\nargs = [";
    for (size_t i = 0; i < n; ++i) text += "\"a\",";
    return parse(text + "]\n");
  };
  EXPECT_TRUE(withArgs(256).ok());
  EXPECT_FALSE(withArgs(257).ok());
  auto withProcesses = [&](size_t n) {
    std::string text(kHead);
    for (size_t i = 0; i < n; ++i) text += "[processes.p" + std::to_string(i) + "]\n";
    return parse(text);
  };
  EXPECT_TRUE(withProcesses(32).ok());
  EXPECT_FALSE(withProcesses(33).ok());
  auto withMemory = [&](int mb) {
    return parse(std::string(kHead) +
                 "[processes.web.resources]\nmemory_mb = " + std::to_string(mb) + "\n");
  };
  EXPECT_TRUE(withMemory(64).ok());
  EXPECT_TRUE(withMemory(65536).ok());
  EXPECT_FALSE(withMemory(63).ok());
  EXPECT_FALSE(withMemory(65537).ok());
}

TEST(ManifestParse, ExportedSecretMayNotShadowEnv) {
  const std::string text =
      std::string(kHead) + "[processes.web]\n[env]\nDB = \"x\"\n[secrets]\nnames = [\"DB\"]\n";
  EXPECT_TRUE(parse(text).ok()) << "not exported: the secret stays in the file only";
  ParseResult r = parse(text + "export_env = true\n");
  ASSERT_EQ(r.diagnostics.size(), 1U) << allDiagnostics(r);
  EXPECT_EQ(r.diagnostics[0].path, "env.DB");
}

TEST(ManifestParse, ImmediateDeployNeedsNoSurge) {
  EXPECT_TRUE(parse(std::string(kHead) +
                    "[processes.web]\n[deploy]\nstrategy = \"immediate\"\nmax_surge = 0\n")
                  .ok());
}

TEST(DiagnosticFormat, LeavesOutWhatIsUnknown) {
  Diagnostic d;
  d.file = "vt.toml";
  d.message = "file too large";
  EXPECT_EQ(d.format(), "vt.toml: file too large");
  d.line = 3;
  EXPECT_EQ(d.format(), "vt.toml:3: file too large");
  d.column = 7;
  d.path = "app";
  d.hint = "did you mean `x`?";
  EXPECT_EQ(d.format(), "vt.toml:3:7: app: file too large (did you mean `x`?)");
  d.file.clear();
  d.line = 0;
  EXPECT_EQ(d.format(), "app: file too large (did you mean `x`?)");
}

TEST(ParseFile, ReadsAFileAndNamesItInDiagnostics) {
  plfm::testing::TempDir dir;
  const std::string path = dir.file("vt.toml");
  { std::ofstream(path) << kHead << "[processes.web.resources]\nmemory_mb = 1\n"; }
  ParseResult r = parseFile(path);
  ASSERT_EQ(r.diagnostics.size(), 1U);
  EXPECT_EQ(r.diagnostics[0].file, path);
  EXPECT_EQ(r.diagnostics[0].format().rfind(path + ":4:13: ", 0), 0U) << r.diagnostics[0].format();
}

TEST(ParseFile, UnreadableFilesGiveOneDiagnostic) {
  plfm::testing::TempDir dir;
  for (const std::string& path : {dir.file("missing.toml"), dir.path()}) {
    ParseResult r = parseFile(path);
    ASSERT_EQ(r.diagnostics.size(), 1U) << path;
    EXPECT_EQ(r.diagnostics[0].file, path);
    EXPECT_EQ(r.diagnostics[0].message.rfind("cannot read: ", 0), 0U);
  }
  const std::string big = dir.file("big.toml");
  {
    std::ofstream out(big);
    out << std::string((1 << 20) + 1, '#');
  }
  ParseResult r = parseFile(big);
  ASSERT_EQ(r.diagnostics.size(), 1U);
  EXPECT_EQ(r.diagnostics[0].message.rfind("file too large", 0), 0U);
}

TEST(Validate, ChecksManifestsBuiltInCode) {
  Manifest m;
  m.app = "shop";
  m.image = "shop:1";
  m.processes.push_back(Process{"web", {}, {}, Resources{}});
  EXPECT_TRUE(validate(m).empty());
  m.processes[0].resources.memory_mb = 10;
  Service s;
  s.process = "api";
  s.internal_port = 80;
  s.routes.push_back(Route{"Upper.example.com", 443, "none"});
  m.services.push_back(s);
  const auto diags = validate(m);
  ASSERT_EQ(diags.size(), 3U);
  EXPECT_EQ(diags[0].path, "processes.web.resources.memory_mb");
  EXPECT_EQ(diags[1].path, "services[0].process");
  EXPECT_EQ(diags[1].hint, "");
  EXPECT_EQ(diags[2].path, "services[0].routes[0].hostname");
  EXPECT_EQ(diags[0].format(),
            "processes.web.resources.memory_mb: expected an integer from 64 to 65536, got 10");
}

}  // namespace
}  // namespace plfm::manifest
