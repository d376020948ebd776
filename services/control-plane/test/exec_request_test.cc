// The exec request parser and the relay's frame checks, without a database
// or a network (docs/specs/runtime/exec-sessions.md, "Control plane" and
// "Wire protocol between hops").
#include <gtest/gtest.h>

#include "api.h"
#include "exec_relay.h"
#include "exec_request.h"
#include "plfm/guest_proto/frame.h"

namespace plfm::cp {
namespace {
namespace gp = guest_proto;

gp::ExecOpen openOf(std::vector<std::string> argv) {
  gp::ExecOpen o;
  o.argv = std::move(argv);
  return o;
}

Result<ExecCommand> parse(const std::string& text) {
  auto j = json::parse(text);
  EXPECT_TRUE(j.has_value()) << text;
  return parseExecCommand(*j);
}

std::string fieldOf(const Result<ExecCommand>& r) {
  return r ? "" : std::string(r.error().detail("field"));
}

TEST(ExecRequestTest, ParsesAFullRequestAndRoundTripsItsStoredForm) {
  auto c =
      parse(R"({"argv":["sh","-c","echo hi"],"tty":true,"rows":50,"cols":132,"user":"1000:1000",)"
            R"("workdir":"/srv"})");
  ASSERT_TRUE(c) << c.error().toString();
  EXPECT_EQ(c->argv, (std::vector<std::string>{"sh", "-c", "echo hi"}));
  EXPECT_TRUE(c->tty);
  EXPECT_EQ(c->rows, 50);
  EXPECT_EQ(c->cols, 132);
  EXPECT_EQ(c->user, "1000:1000");
  EXPECT_EQ(c->workdir, "/srv");
  auto again = parseExecCommand(execCommandJson(*c));
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *c);

  const gp::ExecOpen open = toExecOpen(*c);
  EXPECT_EQ(open.window, gp::kExecInitialWindow);
  EXPECT_EQ(open.timeout_ms, 0U);
  EXPECT_TRUE(open.env.empty());
  EXPECT_TRUE(gp::validateExecOpen(open));
}

TEST(ExecRequestTest, DefaultsArePipesWithTheDefaultSize) {
  auto c = parse(R"({"argv":["true"]})");
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->tty);
  EXPECT_EQ(c->rows, gp::kDefaultExecRows);
  EXPECT_EQ(c->cols, gp::kDefaultExecCols);
  EXPECT_FALSE(c->user);
  EXPECT_FALSE(c->workdir);
  auto again = parseExecCommand(execCommandJson(*c));
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *c);
}

TEST(ExecRequestTest, EachViolationNamesItsField) {
  const std::string big(4097, 'a');
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({})", "argv"},
      {R"({"argv":null})", "argv"},
      {R"({"argv":[]})", "argv"},
      {R"({"argv":"sh"})", "argv"},
      {R"({"argv":[""]})", "argv"},
      {R"({"argv":["sh",1]})", "argv"},
      {R"({"argv":["sh","a\u0000b"]})", "argv"},
      {R"({"argv":["sh",")" + big + R"("]})", "argv"},
      {R"({"argv":["sh"],"tty":"yes"})", "tty"},
      {R"({"argv":["sh"],"rows":40})", "rows"},
      {R"({"argv":["sh"],"cols":40})", "cols"},
      {R"({"argv":["sh"],"tty":true,"rows":0})", "rows"},
      {R"({"argv":["sh"],"tty":true,"cols":65536})", "cols"},
      {R"({"argv":["sh"],"tty":true,"cols":1.5})", "cols"},
      {R"({"argv":["sh"],"user":""})", "user"},
      {R"({"argv":["sh"],"user":")" + std::string(257, 'u') + R"("})", "user"},
      {R"({"argv":["sh"],"user":5})", "user"},
      {R"({"argv":["sh"],"workdir":"srv"})", "workdir"},
      {R"({"argv":["sh"],"workdir":""})", "workdir"},
  };
  for (const auto& [body, field] : cases) {
    auto r = parse(body);
    ASSERT_FALSE(r) << body.substr(0, 80);
    EXPECT_EQ(r.error().code(), apierr::kInvalidField) << body.substr(0, 80);
    EXPECT_EQ(fieldOf(r), field) << body.substr(0, 80);
  }
}

TEST(ExecRequestTest, LimitsAreThoseOfTheSpecAndOfExecOpen) {
  json::Json argv = json::Json::array();
  for (int i = 0; i < 256; ++i) argv.push_back("a");
  EXPECT_TRUE(parseExecCommand({{"argv", argv}}));
  argv.push_back("a");
  EXPECT_EQ(fieldOf(parseExecCommand({{"argv", argv}})), "argv");
  // 4 KiB each is fine, but the whole EXEC_OPEN must fit in 64 KiB.
  json::Json wide = json::Json::array();
  for (int i = 0; i < 15; ++i) wide.push_back(std::string(4096, 'x'));
  EXPECT_TRUE(parseExecCommand({{"argv", wide}}));
  for (int i = 0; i < 2; ++i) wide.push_back(std::string(4096, 'x'));
  auto r = parseExecCommand({{"argv", wide}});
  ASSERT_FALSE(r);
  EXPECT_EQ(fieldOf(r), "argv");
  EXPECT_NE(r.error().message().find("64 KiB"), std::string::npos) << r.error().message();
}

TEST(ExecRequestTest, ErrorsNeverQuoteTheCommand) {
  for (const std::string& body : std::vector<std::string>{
           R"({"argv":["sh","CANARY\u0000"]})", R"({"argv":["sh"],"workdir":"CANARY"})",
           R"({"argv":["sh"],"user":"CANARY)" + std::string(300, 'x') + R"("})"}) {
    auto r = parse(body);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().toString().find("CANARY"), std::string::npos) << r.error().toString();
  }
}

// ---- the relay's checks ----

std::string frame(const gp::Result<std::string>& f) {
  EXPECT_TRUE(f.has_value());
  return f.value_or("");
}

TEST(ExecRelayTest, EachSideMaySendOnlyItsFrames) {
  const uint16_t s = gp::kFirstExecStream;
  const std::string stdin_data = frame(gp::encode(gp::ExecData{gp::ExecFd::kStdin, "ab"}, s));
  const std::string stdout_data = frame(gp::encode(gp::ExecData{gp::ExecFd::kStdout, "abc"}, s));
  const std::string window = frame(gp::encode(gp::ExecWindow{4096}, s));
  const std::string resize = frame(gp::encode(gp::ExecResize{40, 100}, s));
  const std::string signal = frame(gp::encode(gp::ExecSignal{2}, s));
  const std::string close = frame(gp::encode(gp::ExecClose{gp::ExecCloseKind::kAbort}, s));
  const std::string exit = frame(gp::encode(gp::ExecExit{gp::ExecExitKind::kExited, 3, ""}, s));
  const std::string open = frame(gp::encode(openOf({"sh"}), s));

  auto client = [](const std::string& m) { return checkExecMessage(m, ExecSide::kClient); };
  auto agent = [](const std::string& m) { return checkExecMessage(m, ExecSide::kAgent); };
  ASSERT_TRUE(client(stdin_data));
  EXPECT_EQ(client(stdin_data)->data_bytes, 2U);
  EXPECT_EQ(client(window)->window_increment, 4096U);
  EXPECT_TRUE(client(resize));
  EXPECT_TRUE(client(signal));
  EXPECT_TRUE(client(close));
  EXPECT_FALSE(client(stdout_data));
  EXPECT_FALSE(client(exit));
  EXPECT_FALSE(client(open));

  ASSERT_TRUE(agent(stdout_data));
  EXPECT_EQ(agent(stdout_data)->data_bytes, 3U);
  EXPECT_TRUE(agent(window));
  ASSERT_TRUE(agent(exit));
  ASSERT_TRUE(agent(exit)->exit);
  EXPECT_EQ(agent(exit)->exit->status(), 3);
  EXPECT_FALSE(agent(stdin_data));
  EXPECT_FALSE(agent(resize));
  EXPECT_FALSE(agent(signal));
  EXPECT_FALSE(agent(close));
  EXPECT_FALSE(agent(open));

  // Not exactly one well-formed exec frame.
  EXPECT_FALSE(client(""));
  EXPECT_FALSE(client(stdin_data.substr(0, 5)));
  EXPECT_FALSE(client(stdin_data.substr(0, stdin_data.size() - 1)));
  EXPECT_FALSE(client(stdin_data + stdin_data));
  EXPECT_FALSE(client(frame(gp::encodeFrame(gp::FrameType::kPing, 0, std::string(8, '\0')))));
  std::string bad_signal = signal;
  bad_signal.back() = 0;  // signal 0
  EXPECT_FALSE(client(bad_signal));
  auto err = client(stdin_data + stdin_data);
  ASSERT_FALSE(err);
  EXPECT_NE(err.error().message().find("more than one frame"), std::string::npos);
}

TEST(ExecRelayTest, CreditIsSpentAndGrantedWithinItsBounds) {
  ExecCredit c(gp::kExecInitialWindow);
  EXPECT_TRUE(c.spend(gp::kExecInitialWindow));
  EXPECT_FALSE(c.spend(1));
  EXPECT_TRUE(c.grant(10));
  EXPECT_TRUE(c.spend(10));
  EXPECT_EQ(c.available(), 0U);
  EXPECT_TRUE(c.grant(gp::kMaxExecCredit));
  EXPECT_FALSE(c.grant(1));
}

TEST(ExecRelayTest, CloseReasonsFitAControlFrameWithoutCuttingACharacter) {
  EXPECT_EQ(closeReason("short"), "short");
  EXPECT_EQ(closeReason(std::string(200, 'a')).size(), kMaxCloseReasonBytes);
  std::string s(122, 'a');
  s += "\xc3\xa9\xc3\xa9";  // é at bytes 122-123: cut before it
  EXPECT_EQ(closeReason(s), std::string(122, 'a'));
  EXPECT_EQ(closeReason("vm\x1b[2Jgone\r\n\x7f"), "vm?[2Jgone???");
}

}  // namespace
}  // namespace plfm::cp

namespace plfm::cp {
namespace {

TEST(ExecRelayTest, AnAgentRefusalIsReadFromItsErrorEnvelopeOnly) {
  EXPECT_EQ(agentRefusalMessage(R"({"error":{"code":"conflict","message":"not running"}})"),
            "not running");
  EXPECT_EQ(agentRefusalMessage("not json"), std::nullopt);
  EXPECT_EQ(agentRefusalMessage(R"({"error":"flat"})"), std::nullopt);
  EXPECT_EQ(agentRefusalMessage(R"({"error":{"message":7}})"), std::nullopt);
  EXPECT_EQ(agentRefusalMessage(std::string(5000, ' ') + "{}"), std::nullopt);
}

}  // namespace
}  // namespace plfm::cp
