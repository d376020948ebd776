// The log relay's merge order and cursors (log_relay.h), without agents.
#include "log_relay.h"

#include <gtest/gtest.h>

#include "plfm/core/strings.h"

namespace plfm::cp {
namespace {

json::Json line(const std::string& ts, const std::string& text) {
  return {{"ts", ts}, {"stream", "stdout"}, {"line", text}};
}

constexpr const char* kT1 = "2026-12-03T06:30:00.000001Z";
constexpr const char* kT2 = "2026-12-03T06:30:00.000002Z";

InstancePage page(const std::string& id, std::vector<json::Json> lines) {
  InstancePage p;
  p.instance_id = id;
  p.process_type = "web";
  p.lines = std::move(lines);
  p.next = {kT2, 9};
  return p;
}

std::vector<std::string> texts(const std::vector<RelayLine>& ls) {
  std::vector<std::string> out;
  out.reserve(ls.size());
  for (const auto& l : ls) out.push_back(l.instance_id + ":" + l.line);
  return out;
}

TEST(LogRelay, OrdersByTimeThenInstanceThenPosition) {
  RelayCursor cursor;
  auto got = mergeLogPages({page("inst_b", {line(kT1, "b1"), line(kT2, "b2")}),
                            page("inst_a", {line(kT2, "a1"), line(kT2, "a2")})},
                           100, false, cursor);
  EXPECT_EQ(texts(got),
            (std::vector<std::string>{"inst_b:b1", "inst_a:a1", "inst_a:a2", "inst_b:b2"}));
  // Everything delivered: each instance resumes where its agent said.
  EXPECT_EQ(cursor["inst_a"], (InstanceCursor{kT2, 9}));
  EXPECT_EQ(cursor["inst_b"], (InstanceCursor{kT2, 9}));
}

TEST(LogRelay, ALimitAdvancesEachCursorPastWhatWasShownOnly) {
  RelayCursor cursor;
  auto a = page("inst_a", {line(kT2, "a1"), line(kT2, "a2")});
  a.start = {kT2, 3};  // three lines at kT2 shown before
  auto got =
      mergeLogPages({a, page("inst_b", {line(kT1, "b1"), line(kT2, "b2")})}, 2, false, cursor);
  EXPECT_EQ(texts(got), (std::vector<std::string>{"inst_b:b1", "inst_a:a1"}));
  EXPECT_EQ(cursor["inst_a"], (InstanceCursor{kT2, 4}));
  EXPECT_EQ(cursor["inst_b"], (InstanceCursor{kT1, 1}));
}

TEST(LogRelay, TailKeepsTheNewestAndSkipsPastEveryPage) {
  RelayCursor cursor;
  auto got = mergeLogPages(
      {page("inst_a", {line(kT1, "a1"), line(kT2, "a2")}), page("inst_b", {line(kT1, "b1")})}, 2,
      true, cursor);
  EXPECT_EQ(texts(got), (std::vector<std::string>{"inst_b:b1", "inst_a:a2"}));
  EXPECT_EQ(cursor["inst_a"], (InstanceCursor{kT2, 9}));
}

TEST(LogRelay, CursorsRoundTripAndJunkIsRejected) {
  RelayCursor c{{"inst_a", {kT1, 2}}, {"inst_b", {"", 0}}};
  auto back = decodeCursor(encodeCursor(c));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, c);
  EXPECT_TRUE(decodeCursor("")->empty());
  for (const char* bad : {"zz", "7", "7b", "5b5d", "7b2261223a317d"}) {
    EXPECT_FALSE(decodeCursor(bad)) << bad;
  }
}

// A cursor is the caller's input, and its parts go into the agent's URL:
// only the agent's own ts form and plain ids pass.
TEST(LogRelay, CursorPartsThatWouldChangeTheAgentUrlAreRejected) {
  const auto encode = [](const json::Json& j) { return hexEncode(json::dump(j)); };
  EXPECT_TRUE(decodeCursor(encode({{"inst_a", {kT1, 0}}})));
  for (const json::Json& bad : {
           json::Json{{"inst_a", {"2026-12-03T06:30:00.000001Z&tail=1", 0}}},
           json::Json{{"inst_a", {"x#", 0}}},
           json::Json{{"inst_a", {"2026-12-03T06:30:00.000001Z/../../v1", 0}}},
           json::Json{{"inst_a", {"2026-12-03 06:30:00.000001Z", 0}}},
           json::Json{{"../x", {kT1, 0}}},
           json::Json{{"", {kT1, 0}}},
           json::Json{{"inst_a", {kT1, int64_t{1} << 40}}},
       }) {
    EXPECT_FALSE(decodeCursor(encode(bad))) << bad.dump();
  }
  EXPECT_TRUE(validCursorTs(kT1));
  EXPECT_FALSE(validCursorTs("2026-12-03T06:30:00Z"));
  EXPECT_FALSE(validCursorTs(""));
}

TEST(LogRelay, SinceTakesDurationsAndUtcTimes) {
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'796'000'000));
  EXPECT_EQ(*parseSince("10m", now), "2026-11-30T00:43:20.000000Z");
  EXPECT_EQ(*parseSince("1d", now), "2026-11-29T00:53:20.000000Z");
  EXPECT_EQ(*parseSince("2026-12-03T06:30:00Z", now), "2026-12-03T06:30:00.000000Z");
  EXPECT_EQ(*parseSince("2026-12-03T06:30:00.5Z", now), "2026-12-03T06:30:00.500000Z");
  EXPECT_EQ(*parseSince("", now), "");
  for (const char* bad : {"10", "m", "-5m", "yesterday", "2026-12-03 06:30:00Z",
                          "2026-12-03T06:30:00+01:00", "2026-12-03T06:30:00.Z"}) {
    EXPECT_FALSE(parseSince(bad, now)) << bad;
  }
}

TEST(LogRelay, FollowerSlotsArePerOrgAndComeBackWithTheLease) {
  auto slots = std::make_shared<FollowerSlots>(2);
  auto a1 = slots->tryAcquire("org_a");
  auto a2 = slots->tryAcquire("org_a");
  ASSERT_TRUE(a1 && a2);
  EXPECT_FALSE(slots->tryAcquire("org_a"));
  EXPECT_EQ(slots->held("org_a"), 2);
  // Another org is not affected.
  auto b = slots->tryAcquire("org_b");
  EXPECT_TRUE(b);
  a1.reset();
  EXPECT_EQ(slots->held("org_a"), 1);
  auto again = slots->tryAcquire("org_a");
  EXPECT_TRUE(again);
  // Moving a lease keeps one slot, released once.
  std::optional<FollowerSlots::Lease> moved = std::move(again);
  // A moved-from lease must release nothing when it goes.
  again.reset();  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(slots->held("org_a"), 2);
  moved.reset();
  a2.reset();
  EXPECT_EQ(slots->held("org_a"), 0);
}

}  // namespace
}  // namespace plfm::cp
