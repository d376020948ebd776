// ConfigTable and readToml: each kind of setting, and every error naming the
// file, the line and column, and the key.
#include "plfm/core/config_table.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "plfm/testing/temp_dir.h"

namespace plfm::config {
namespace {

struct Settings {
  std::string name = "default";
  bool enabled = true;
  int workers = 1;
  size_t limit = 10;
  std::chrono::milliseconds wait{100};
  std::vector<std::string> listen = {"[::1]:1"};
  std::string mode;
};

class ConfigTableTest : public ::testing::Test {
 protected:
  ConfigTableTest() {
    table_.string("name", s_.name)
        .boolean("enabled", s_.enabled)
        .integer("workers", 1, 64, s_.workers)
        .integer("limits.max", 0, 1000, s_.limit)
        .duration("timeouts.wait_ms", 0, 60'000, s_.wait)
        .strings("listen", s_.listen,
                 {"must be a non-empty array of addresses", "must contain strings", false})
        .add("mode", [this](const Entry& e) -> Result<void> {
          const std::string* v = e.string();
          if (v == nullptr || (*v != "a" && *v != "b")) return e.invalid(R"(must be "a" or "b")");
          s_.mode = *v;
          return ok();
        });
  }
  Result<void> load(const std::string& text) {
    std::ofstream(path_) << text;
    return table_.load(path_);
  }
  plfm::testing::TempDir dir_{"cfgtab"};
  std::string path_ = dir_.file("svc.toml");
  Settings s_;
  ConfigTable table_;
};

TEST_F(ConfigTableTest, EachKindOfSettingIsApplied) {
  auto r = load(R"(name = "edge"
enabled = false
workers = 4
listen = ["[::1]:2", "127.0.0.1:2"]
mode = "b"
[limits]
max = 0
[timeouts]
wait_ms = 1500
)");
  ASSERT_TRUE(r.has_value()) << r.error().toString();
  EXPECT_EQ(s_.name, "edge");
  EXPECT_FALSE(s_.enabled);
  EXPECT_EQ(s_.workers, 4);
  EXPECT_EQ(s_.limit, 0u);
  EXPECT_EQ(s_.wait, std::chrono::milliseconds(1500));
  EXPECT_EQ(s_.listen, (std::vector<std::string>{"[::1]:2", "127.0.0.1:2"}));
  EXPECT_EQ(s_.mode, "b");
  EXPECT_EQ(table_.keys().size(), 7u);
}

TEST_F(ConfigTableTest, AnUnknownKeyNamesFileLineKeyAndTheClosestKey) {
  auto r = load("name = \"x\"\n[timeouts]\nwiat_ms = 5\n");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(),
            path_ +
                ":3:1: 'timeouts.wiat_ms' is not a known setting; did you mean "
                "'timeouts.wait_ms'?");
  EXPECT_EQ(r.error().detail("field"), "timeouts.wiat_ms");
  EXPECT_TRUE(r.error().is(errc::kInvalidArgument));
  EXPECT_EQ(s_.name, "x");  // entries before the bad one were applied

  // Nothing close: the known keys are listed.
  r = load("zzzzzzzzzzzz = 1\n");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(),
            path_ +
                ":1:1: 'zzzzzzzzzzzz' is not a known setting (known: name, enabled, workers, "
                "limits.max, timeouts.wait_ms, listen, mode)");
}

TEST_F(ConfigTableTest, EachBadValueNamesLineColumnAndKey) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"name = 5\n", ":1:8: 'name' must be a string"},
      {"\nenabled = 1\n", ":2:11: 'enabled' must be true or false"},
      {"workers = 0\n", ":1:11: 'workers' must be an integer 1..64"},
      {"workers = 65\n", ":1:11: 'workers' must be an integer 1..64"},
      {"workers = 2.0\n", ":1:11: 'workers' must be an integer 1..64"},
      {"workers = true\n", ":1:11: 'workers' must be an integer 1..64"},
      {"[limits]\nmax = -1\n", ":2:7: 'limits.max' must be an integer 0..1000"},
      {"[timeouts]\nwait_ms = \"5\"\n", ":2:11: 'timeouts.wait_ms' must be an integer 0..60000"},
      {"listen = []\n", ":1:10: 'listen' must be a non-empty array of addresses"},
      {"listen = \"[::1]:1\"\n", ":1:10: 'listen' must be a non-empty array of addresses"},
      {"listen = [\"a\", 1]\n", ":1:10: 'listen' must contain strings"},
      {"mode = \"c\"\n", R"(:1:8: 'mode' must be "a" or "b")"},
  };
  for (const auto& [text, want] : cases) {
    auto r = load(text);
    ASSERT_FALSE(r.has_value()) << text;
    EXPECT_EQ(r.error().message(), path_ + want) << text;
    EXPECT_FALSE(r.error().detail("field").empty()) << text;
  }
  EXPECT_EQ(s_.listen, std::vector<std::string>{"[::1]:1"});  // a bad list changes nothing
}

TEST_F(ConfigTableTest, SyntaxErrorsAndMissingFilesNameTheFile) {
  auto r = load("listen = [\n");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message().rfind(path_ + ":", 0), 0u) << r.error().message();
  r = table_.load(dir_.file("missing.toml"));
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("missing.toml"), std::string::npos) << r.error().message();
}

TEST(ReadToml, FlattensTablesAndKeepsArraysAndPositions) {
  plfm::testing::TempDir dir("cfgread");
  const std::string path = dir.file("a.toml");
  std::ofstream(path)
      << "top = 1\n[a]\nb.c = \"x\"\nlist = [1, \"two\", true]\nwhen = 1979-05-27\n";
  auto entries = readToml(path);
  ASSERT_TRUE(entries.has_value()) << entries.error().toString();
  ASSERT_EQ(entries->size(), 4u);
  std::vector<std::string> keys;
  for (const Entry& e : *entries) keys.push_back(e.key);
  // In the file's order (toml++ itself sorts by key).
  EXPECT_EQ(keys, (std::vector<std::string>{"top", "a.b.c", "a.list", "a.when"}));
  for (const Entry& e : *entries) {
    EXPECT_EQ(e.file, path);
    if (e.key == "top") {
      EXPECT_EQ(e.integer(), 1);
      EXPECT_EQ(e.key_at.line, 1);
      EXPECT_EQ(e.key_at.column, 1);
      EXPECT_EQ(e.value_at.column, 7);
    } else if (e.key == "a.list") {
      ASSERT_TRUE(e.is_array);
      ASSERT_EQ(e.items.size(), 3u);
      EXPECT_EQ(std::get<int64_t>(e.items[0]), 1);
      EXPECT_EQ(std::get<std::string>(e.items[1]), "two");
      EXPECT_EQ(std::get<bool>(e.items[2]), true);
    } else if (e.key == "a.when") {
      EXPECT_TRUE(std::holds_alternative<std::monostate>(e.value));  // no setting takes dates
    }
  }
}

TEST(ConfigEnv, AnEmptyVariableIsUnsetAndListsSplitOnCommas) {
  ::setenv("PLFM_CONFIG_TABLE_TEST", "", 1);
  EXPECT_EQ(envValue("PLFM_CONFIG_TABLE_TEST"), nullptr);
  ::setenv("PLFM_CONFIG_TABLE_TEST", "[::1]:1,,127.0.0.1:2,", 1);
  ASSERT_NE(envValue("PLFM_CONFIG_TABLE_TEST"), nullptr);
  EXPECT_EQ(splitList(envValue("PLFM_CONFIG_TABLE_TEST")),
            (std::vector<std::string>{"[::1]:1", "127.0.0.1:2"}));
  ::unsetenv("PLFM_CONFIG_TABLE_TEST");
  EXPECT_EQ(envValue("PLFM_CONFIG_TABLE_TEST"), nullptr);
  EXPECT_TRUE(splitList("").empty());
}

}  // namespace
}  // namespace plfm::config
