// The event log on a real PostgreSQL: append-only, atomic per command,
// optimistic concurrency per aggregate, and gapless commit-ordered seq.
#include "event_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <set>
#include <thread>

#include "cp_test_support.h"
#include "projections.h"

namespace plfm::cp {
namespace {

using testsupport::appCreated;
using testsupport::orgCreated;

class EventStoreTest : public testsupport::CpTest {};

TEST_F(EventStoreTest, AppendsAndReadsTheFullEnvelope) {
  auto conn = connect();
  auto r = appendOk(conn, {orgCreated("org_a", "acme"), appCreated("org_a", "app_1", "web")},
                    {"usr_alice", "req_42"});
  EXPECT_EQ(r.first_seq, 1);
  EXPECT_EQ(r.last_seq, 2);
  appendOk(conn, {orgCreated("org_b", "other")});
  auto events = EventStore::readAfter(conn, 0, 10);
  ASSERT_TRUE(events.has_value()) << events.error().toString();
  ASSERT_EQ(events->size(), 3U);
  const StoredEvent& e = (*events)[1];
  EXPECT_EQ(e.seq, 2);
  EXPECT_EQ(e.event_id.substr(0, 4), "evt_");
  EXPECT_EQ(e.aggregate_type, "app");
  EXPECT_EQ(e.aggregate_id, "app_1");
  EXPECT_EQ(e.aggregate_seq, 1);
  EXPECT_EQ(e.event_type, "app.created");
  EXPECT_EQ(e.org_id, "org_a");
  EXPECT_EQ(e.actor, "usr_alice");
  EXPECT_EQ(e.request_id, "req_42");
  EXPECT_EQ(e.occurred_at, r.occurred_at);
  // jsonb text: keys by length, then bytes.
  EXPECT_EQ(e.payload,
            R"({"name": "web", "app_id": "app_1", "org_id": "org_a", "description": ""})");
  auto orgB = EventStore::readAfter(conn, 0, 10, std::string("org_b"));
  ASSERT_TRUE(orgB.has_value());
  ASSERT_EQ(orgB->size(), 1U);
  EXPECT_EQ((*orgB)[0].seq, 3);
  EXPECT_EQ(*EventStore::headSeq(conn), 3);
  auto page = EventStore::readAfter(conn, 1, 1);
  ASSERT_EQ(page->size(), 1U);
  EXPECT_EQ((*page)[0].seq, 2);
}

TEST_F(EventStoreTest, LogIsAppendOnly) {
  auto conn = connect();
  appendOk(conn, {orgCreated("org_a", "acme")});
  for (const char* sql :
       {"UPDATE events SET actor = 'mallory'", "DELETE FROM events", "TRUNCATE events"}) {
    auto r = conn.exec(sql);
    ASSERT_FALSE(r.has_value()) << sql;
    EXPECT_EQ(r.error().code(), pg::errc::kRaised) << sql;
    EXPECT_NE(r.error().message().find("append-only"), std::string::npos) << sql;
  }
  EXPECT_EQ(*EventStore::headSeq(conn), 1);
}

TEST_F(EventStoreTest, ConflictingAggregateSeqIsATypedErrorAndNothingLands) {
  auto conn = connect();
  appendOk(conn, {orgCreated("org_a", "acme"), appCreated("org_a", "app_1", "web")});
  // One command: a fresh app plus a stale write to app_1. Neither may land.
  auto tx = pg::Transaction::begin(conn);
  ASSERT_TRUE(tx.has_value());
  auto r = store_.append(*tx, {"usr_x", ""},
                         {appCreated("org_a", "app_2", "api"), appCreated("org_a", "app_1", "x")});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), errc::kConcurrencyConflict);
  tx->rollback();
  EXPECT_EQ(*EventStore::headSeq(conn), 2);
  auto events = EventStore::readAfter(conn, 0, 10);
  ASSERT_EQ(events->size(), 2U);
  // The next append continues the sequence with no gap.
  EXPECT_EQ(appendOk(conn, {appCreated("org_a", "app_2", "api")}).first_seq, 3);
}

// N writers append concurrently while a reader tails `seq > cursor`, the way
// a projection does. Writers hold their transactions open for random times
// before and after taking seq numbers, so commit order is shuffled. The
// reader must see every seq exactly once, in order: nothing skipped because
// a lower seq committed late, nothing read twice.
TEST_F(EventStoreTest, GaplessCommitOrderUnderConcurrentWritersWhileTailing) {
  constexpr int kWriters = 6;
  constexpr int kCommandsPerWriter = 60;
  std::atomic<int> writersDone{0};
  std::atomic<int> failures{0};
  std::atomic<int64_t> appended{0};

  std::vector<std::thread> writers;
  writers.reserve(kWriters);
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      std::mt19937 rng(static_cast<uint32_t>(w + 1));
      auto conn = pg::Connection::connect(conninfo());
      if (!conn) {
        ++failures;
        ++writersDone;
        return;
      }
      for (int i = 0; i < kCommandsPerWriter; ++i) {
        auto tx = pg::Transaction::begin(*conn);
        if (!tx) {
          ++failures;
          break;
        }
        // Some work before the append...
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 800));
        const int n = 1 + static_cast<int>(rng() % 3);
        std::vector<NewEvent> evs;
        evs.reserve(static_cast<size_t>(n));
        for (int k = 0; k < n; ++k) {
          evs.push_back(appCreated(
              "org_w",
              "app_" + std::to_string(w) + "_" + std::to_string(i) + "_" + std::to_string(k), "n"));
        }
        auto r = store_.append(*tx, {"usr_w", ""}, evs);
        if (!r) {
          ++failures;
          break;
        }
        // ...and a delay between taking seq numbers and committing.
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 800));
        if (!tx->commit()) {
          ++failures;
          break;
        }
        appended += n;
      }
      ++writersDone;
    });
  }

  // The tailer.
  std::vector<int64_t> seen;
  auto tail = connect();
  int64_t cursor = 0;
  for (;;) {
    const bool done = writersDone.load() == kWriters;
    auto batch = EventStore::readAfter(tail, cursor, 50);
    ASSERT_TRUE(batch.has_value()) << batch.error().toString();
    for (const auto& e : *batch) {
      seen.push_back(e.seq);
      cursor = e.seq;
    }
    if (done && batch->empty()) break;
  }
  for (auto& t : writers) t.join();
  ASSERT_EQ(failures.load(), 0);
  ASSERT_EQ(static_cast<int64_t>(seen.size()), appended.load());
  for (size_t i = 0; i < seen.size(); ++i) {
    ASSERT_EQ(seen[i], static_cast<int64_t>(i) + 1) << "skipped or repeated at position " << i;
  }
}

}  // namespace
}  // namespace plfm::cp
