// One bad manifest per error message: test/cases/<name>.toml must give
// exactly the diagnostics in test/golden/<name>.txt (PLFM_UPDATE_GOLDEN=1
// rewrites them; review the diff). Adding a case is adding the two files.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "plfm/manifest/manifest.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::manifest {
namespace {

namespace fs = std::filesystem;

const fs::path kTestDir = fs::path(PLFM_TEST_DIR) / "test";

std::vector<std::string> caseNames() {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(kTestDir / "cases")) {
    if (entry.path().extension() == ".toml") names.push_back(entry.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string readAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

class ManifestCase : public ::testing::TestWithParam<std::string> {};

TEST_P(ManifestCase, DiagnosticsMatchGolden) {
  const std::string name = GetParam();
  const std::string text = readAll(kTestDir / "cases" / (name + ".toml"));
  const ParseResult r = parse(text, name + ".toml");
  EXPECT_FALSE(r.ok()) << "a case is a bad manifest";
  EXPECT_FALSE(r.manifest.has_value());
  std::string out;
  for (const auto& d : r.diagnostics) {
    EXPECT_FALSE(d.message.empty());
    out += d.format() + "\n";
  }
  PLFM_EXPECT_GOLDEN("golden/" + name + ".txt", out);
}

INSTANTIATE_TEST_SUITE_P(Cases, ManifestCase, ::testing::ValuesIn(caseNames()),
                         [](const auto& param_info) {
                           std::string n = param_info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

// A golden without its case would never be checked again.
TEST(ManifestCases, EveryGoldenHasACase) {
  const auto names = caseNames();
  for (const auto& entry : fs::directory_iterator(kTestDir / "golden")) {
    const std::string stem = entry.path().stem().string();
    if (entry.path().extension() != ".txt") continue;
    EXPECT_NE(std::find(names.begin(), names.end(), stem), names.end())
        << entry.path() << " has no cases/" << stem << ".toml";
  }
}

// The fuzz seed corpus says in each name what it is; keep it honest.
TEST(ManifestCases, SeedCorpusNamesTellValidFromInvalid) {
  for (const auto& entry : fs::directory_iterator(kTestDir / "corpus")) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() != ".toml") continue;
    const ParseResult r = parse(readAll(entry.path()), name);
    if (name.rfind("valid_", 0) == 0) {
      std::string diags;
      for (const auto& d : r.diagnostics) diags += d.format() + "\n";
      EXPECT_TRUE(r.ok()) << diags;
    } else {
      EXPECT_FALSE(r.ok()) << name;
    }
  }
}

// Duplicate processes and checks cannot be written in TOML (a key appears
// once per table, and the reader reports that as a syntax error), but a
// Manifest built in code or read from the JSON form (where both are arrays)
// can hold them: validate() and fromJson() report each. (The golden sits in
// a subdirectory: every golden/*.txt belongs to a cases/*.toml.)
TEST(ManifestCodeBuilt, DuplicateProcessAndCheckMatchGolden) {
  Manifest m;
  m.app = "shop";
  m.image = "shop:1";
  Process web;
  web.name = "web";
  Process worker;
  worker.name = "worker";
  m.processes = {web, worker, web};
  Check tcp;
  tcp.process = "worker";
  tcp.type = "tcp";
  tcp.port = 8080;
  m.checks = {tcp, tcp};
  std::string out;
  for (const auto& d : validate(m)) out += d.format() + "\n";
  auto j = m.toJson();
  auto r = fromJson(j);
  EXPECT_FALSE(r.has_value());
  if (!r) out += "fromJson: " + r.error().message() + "\n";
  PLFM_EXPECT_GOLDEN("golden/code_built/duplicates.txt", out);
}

}  // namespace
}  // namespace plfm::manifest
