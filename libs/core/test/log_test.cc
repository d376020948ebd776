#include "plfm/core/log.h"

#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "plfm/core/redact.h"
#include "plfm/core/strings.h"

namespace plfm::log {
namespace {

Options streamTo(std::ostream& out, std::string component = "plfm", Level level = Level::kInfo) {
  Options o;
  o.component = std::move(component);
  o.level = level;
  o.stream = &out;
  return o;
}

class LogTest : public ::testing::Test {
 protected:
  void TearDown() override { init(Options{}); }  // before out is destroyed
  std::ostringstream out;
};

TEST_F(LogTest, WritesOneJsonObjectPerLineWithTypedFields) {
  init(streamTo(out, "control-plane"));
  info("deploy created", {{"request_id", "req_1"}, {"count", 3}, {"ok", true}, {"ratio", 0.5}});
  debug("hidden");
  warn("quote \" and newline \n in msg");
  const std::string text = out.str();
  auto lines = splitLines(text);
  ASSERT_EQ(lines.size(), 2U) << text;
  auto j = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["component"], "control-plane");
  EXPECT_EQ(j["msg"], "deploy created");
  EXPECT_EQ(j["request_id"], "req_1");
  EXPECT_EQ(j["count"], 3);
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["ratio"], 0.5);
  EXPECT_EQ(j["ts"].get<std::string>().size(), 27U);
  EXPECT_EQ(nlohmann::json::parse(lines[1])["msg"], "quote \" and newline \n in msg");
}

TEST_F(LogTest, FormatRecordIsDeterministic) {
  EXPECT_EQ(formatRecord("T", Level::kError, "ingress", "x", {{"route_id", "route_1"}}),
            R"({"ts":"T","level":"error","component":"ingress","msg":"x","route_id":"route_1"})");
}

TEST_F(LogTest, LevelFilteringAndParsing) {
  init(streamTo(out, "plfm", Level::kWarn));
  info("no");
  error("yes");
  const std::string text = out.str();
  EXPECT_EQ(splitLines(text).size(), 1U);
  EXPECT_EQ(*parseLevel("debug"), Level::kDebug);
  EXPECT_FALSE(parseLevel("loud").has_value());
  EXPECT_EQ(parseLevel("loud").error().detail("field"), "log_level");
}

// The redaction facility: a registered value never reaches any sink, whether
// it is in the message, in a field, or JSON-escaped.
TEST_F(LogTest, RegisteredSecretsAreMaskedInStreamSink) {
  init(streamTo(out, "agent"));
  const std::string secret = "canary-7f3a\"9b";
  auto guard = Redactor::global().add(secret);
  info("value is " + secret, {{"field", secret}, {"instance_id", "inst_1"}});
  const std::string text = out.str();
  EXPECT_EQ(text.find("canary-7f3a"), std::string::npos) << text;
  EXPECT_NE(text.find("[REDACTED]"), std::string::npos);
  auto j = nlohmann::json::parse(splitLines(text)[0]);
  EXPECT_EQ(j["msg"], "value is [REDACTED]");
  EXPECT_EQ(j["field"], "[REDACTED]");
  EXPECT_EQ(j["instance_id"], "inst_1");
}

TEST_F(LogTest, RegisteredSecretsAreMaskedInFileSink) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("plfm-log-test-" + std::to_string(::getpid()) + ".log");
  std::filesystem::remove(path);
  Options o;
  o.component = "agent";
  o.file = path.string();
  init(o);
  auto guard = Redactor::global().add("file-canary-1234");
  error("leaked file-canary-1234 here");
  flush();
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::filesystem::remove(path);
  EXPECT_EQ(ss.str().find("file-canary-1234"), std::string::npos);
  EXPECT_NE(ss.str().find("leaked [REDACTED] here"), std::string::npos);
}

}  // namespace
}  // namespace plfm::log
