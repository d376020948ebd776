// The group committer (docs/specs/state/event-log.md, "Group commit"): a
// batch is one transaction with a savepoint per command. Each test holds the
// first batch open until the commands under test are queued, so they form
// the second batch together, in the order they were queued.
#include "group_commit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <thread>

#include "cp_test_support.h"
#include "idempotency.h"
#include "plfm/core/id.h"

namespace plfm::cp {
namespace {

using namespace std::chrono_literals;

class GroupCommitTest : public testsupport::CpTest {
 protected:
  void SetUp() override {
    CpTest::SetUp();
    if (HasFatalFailure()) return;
    committer_ = std::make_unique<GroupCommitter>(conninfo(), GroupCommitter::Options{});
  }
  void TearDown() override {
    committer_.reset();
    CpTest::TearDown();
  }

  // A body that appends one app.created of `org` and answers its seq.
  GroupCommitter::Body appendApp(const std::string& org, const std::string& app) {
    return [this, org, app](pg::Transaction& tx,
                            Result<pg::ResultSet> /*opened*/) -> Result<CommandOutcome> {
      PLFM_ASSIGN_OR_RETURN(auto r, store_.appendLocked(tx, {"usr_test", ""},
                                                        {testsupport::appCreated(org, app, app)}));
      CommandOutcome out;
      out.status = 201;
      out.body = app;
      out.seq = r.last_seq;
      return out;
    };
  }

  // A keyed body the way runMutation builds one: run presumed, it queues its
  // append and its record (GroupCommitter::knownHead) for a later round
  // trip; run the usual way, it resolves its claim first. `before` runs
  // before the append.
  GroupCommitter::Body keyedApp(const IdempotencyKey& k, const std::string& org,
                                const std::string& app,
                                std::function<Result<void>(pg::Transaction&)> before = {}) {
    return [this, k, org, app, before](pg::Transaction& tx,
                                       Result<pg::ResultSet> claim) -> Result<CommandOutcome> {
      const bool presumed = GroupCommitter::openingPresumed();
      if (!presumed) {
        PLFM_ASSIGN_OR_RETURN(auto replay, resolveClaim(tx, k, std::move(claim)));
        if (replay) return std::move(*replay);
      }
      if (before) PLFM_TRY(before(tx));
      const std::vector<NewEvent> events = {testsupport::appCreated(org, app, app)};
      const AppendContext actx{"usr_test", ""};
      CommandOutcome out{.status = 201, .body = app};
      if (!presumed) {
        const pg::Statement save = saveAfterAppendStatement(k, out.status, app);
        PLFM_ASSIGN_OR_RETURN(auto r, store_.appendLocked(tx, actx, events, &save));
        out.seq = r.last_seq;
      } else {
        PLFM_ASSIGN_OR_RETURN(
            auto r, store_.appendLocked(tx, actx, events, nullptr, GroupCommitter::knownHead()));
        out.seq = r.last_seq;
        PLFM_TRY(saveIdempotencyRecord(tx, k, out, app, /*insert=*/true));
      }
      GroupCommitter::noteAppended(events);
      return out;
    };
  }
  Result<CommandOutcome> runKeyed(const GroupCommitter::Body& body, const IdempotencyKey& k) {
    return committer_->run(body, claimStatement(k), /*presume=*/true);
  }
  // runAsOneBatch with keyed commands: bodies[i] under keys[i], presumed.
  std::vector<Result<CommandOutcome>> runKeyedAsOneBatch(
      const GroupCommitter::Body& first, const std::vector<GroupCommitter::Body>& bodies,
      const std::vector<IdempotencyKey>& keys, uint64_t batches = 2) {
    std::vector<std::function<Result<CommandOutcome>()>> submit;
    submit.reserve(bodies.size());
    for (size_t i = 0; i < bodies.size(); ++i) {
      submit.emplace_back([&, i] { return runKeyed(bodies[i], keys[i]); });
    }
    return runAsOneBatch(first, submit, batches);
  }

  // Runs `first` in a batch held open until `rest` are all queued behind it,
  // then lets them run as the next batch. Returns each one's result.
  std::vector<Result<CommandOutcome>> runAsOneBatch(const GroupCommitter::Body& first,
                                                    const std::vector<GroupCommitter::Body>& rest) {
    std::vector<std::function<Result<CommandOutcome>()>> submit;
    submit.reserve(rest.size());
    for (const auto& body : rest) submit.emplace_back([&] { return committer_->run(body); });
    return runAsOneBatch(first, submit);
  }
  // The same with each command submitted by `rest[i]()` (with an opening).
  // `batches`: how many the committer ran in all (more when one defers).
  std::vector<Result<CommandOutcome>> runAsOneBatch(
      const GroupCommitter::Body& first,
      const std::vector<std::function<Result<CommandOutcome>()>>& rest, uint64_t batches = 2) {
    std::atomic<bool> started{false};
    std::atomic<bool> release{false};
    const GroupCommitter::Body gate = [&](pg::Transaction& tx,
                                          Result<pg::ResultSet> opened) -> Result<CommandOutcome> {
      started = true;
      while (!release) std::this_thread::sleep_for(1ms);
      return first(tx, std::move(opened));
    };
    std::vector<std::optional<Result<CommandOutcome>>> results(rest.size() + 1);
    std::vector<std::thread> threads;
    threads.emplace_back([&] { results[0] = committer_->run(gate); });
    // The gate runs alone in the first batch.
    while (!started) std::this_thread::sleep_for(1ms);
    for (size_t i = 0; i < rest.size(); ++i) {
      threads.emplace_back([&, i] { results[i + 1] = rest[i](); });
      while (committer_->queued() < i + 1) std::this_thread::sleep_for(1ms);
    }
    release = true;
    for (auto& t : threads) t.join();
    std::vector<Result<CommandOutcome>> out;
    for (size_t i = 1; i < results.size(); ++i) out.push_back(std::move(*results[i]));
    EXPECT_TRUE(results[0]->has_value());
    EXPECT_EQ(committer_->stats().batches, batches);
    return out;
  }

  // The aggregate of each event in the log, in seq order; the seqs gapless.
  static std::vector<std::string> aggregatesInLogOrder(pg::Connection& db) {
    auto events = EventStore::readAfter(db, 0, 100);
    EXPECT_TRUE(events.has_value());
    std::vector<std::string> order;
    if (!events) return order;
    for (size_t i = 0; i < events->size(); ++i) {
      EXPECT_EQ((*events)[i].seq, static_cast<int64_t>(i + 1));
      order.push_back((*events)[i].aggregate_id);
    }
    return order;
  }

  // 16 threads run 20 commands each, made by `run(app, n)`: the log ends
  // gapless, each answer names its own event, and one thread's commands
  // commit in the order it sent them.
  void checkConcurrentCommands(
      const std::function<Result<CommandOutcome>(const std::string&, size_t)>& run) {
    constexpr int kThreads = 16;
    constexpr int kEach = 20;
    std::vector<std::thread> threads;
    threads.reserve(kThreads);
    std::vector<std::vector<int64_t>> seqs(kThreads);
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kEach; ++i) {
          const std::string app = "app_" + std::to_string(t) + "_" + std::to_string(i);
          auto r = run(app, (static_cast<size_t>(t) * kEach) + static_cast<size_t>(i));
          ASSERT_TRUE(r.has_value()) << r.error().toString();
          seqs[static_cast<size_t>(t)].push_back(r->seq);
        }
      });
    }
    for (auto& t : threads) t.join();
    auto db = connect();
    auto events = EventStore::readAfter(db, 0, 1000);
    ASSERT_TRUE(events.has_value());
    ASSERT_EQ(events->size(), static_cast<size_t>(kThreads * kEach));
    for (size_t i = 0; i < events->size(); ++i) {
      EXPECT_EQ((*events)[i].seq, static_cast<int64_t>(i + 1));
    }
    // Each command's answer names its own event, and one client's commands
    // commit in the order it sent them.
    for (int t = 0; t < kThreads; ++t) {
      for (int i = 0; i < kEach; ++i) {
        const int64_t seq = seqs[static_cast<size_t>(t)][static_cast<size_t>(i)];
        EXPECT_EQ((*events)[static_cast<size_t>(seq - 1)].aggregate_id,
                  "app_" + std::to_string(t) + "_" + std::to_string(i));
        if (i > 0) {
          EXPECT_GT(seq, seqs[static_cast<size_t>(t)][static_cast<size_t>(i - 1)]);
        }
      }
    }
    EXPECT_LE(committer_->stats().batches, static_cast<uint64_t>(kThreads * kEach));
  }

  std::unique_ptr<GroupCommitter> committer_;
};

TEST_F(GroupCommitTest, AFailingCommandLeavesItsNeighboursCommitted) {
  auto db = connect();
  appendOk(db, {testsupport::orgCreated("org_gc", "gc")});
  const GroupCommitter::Body failing =
      [&](pg::Transaction& tx, Result<pg::ResultSet> /*opened*/) -> Result<CommandOutcome> {
    PLFM_TRY(
        tx.exec("INSERT INTO name_reservations (scope, name, owner_id) VALUES "
                "('app:org_gc', 'ghost', 'app_ghost')"));
    PLFM_TRY(store_.appendLocked(tx, {"usr_test", ""},
                                 {testsupport::appCreated("org_gc", "app_ghost", "ghost")}));
    return Error(plfm::errc::kFailedPrecondition, "refused after writing");
  };
  auto results = runAsOneBatch(appendApp("org_gc", "app_a"), {appendApp("org_gc", "app_b"), failing,
                                                              appendApp("org_gc", "app_c")});
  ASSERT_TRUE(results[0].has_value()) << results[0].error().toString();
  ASSERT_FALSE(results[1].has_value());
  EXPECT_TRUE(results[1].error().is(plfm::errc::kFailedPrecondition));
  ASSERT_TRUE(results[2].has_value()) << results[2].error().toString();
  // Commit order is queue order, and the failed command left no seq behind.
  EXPECT_EQ(results[2]->seq, results[0]->seq + 1);
  EXPECT_EQ(aggregatesInLogOrder(db),
            (std::vector<std::string>{"org_gc", "app_a", "app_b", "app_c"}));
  auto ghost = db.exec("SELECT count(*) FROM name_reservations WHERE owner_id = 'app_ghost'");
  ASSERT_TRUE(ghost.has_value());
  EXPECT_EQ(ghost->int64(0, 0).value_or(-1), 0);
}

// A write deferred to the command's next round trip (a name reservation
// goes with its append) fails that command with its own error, also when
// the command ends with the write still queued; the batch goes on.
TEST_F(GroupCommitTest, ADeferredWriteFailsItsOwnCommandAndNoOther) {
  auto db = connect();
  appendOk(db, {testsupport::orgCreated("org_gc", "gc")});
  auto reserve = [](pg::Transaction& tx, const std::string& name, const std::string& owner) {
    return tx.connection().execDeferred(
        "INSERT INTO name_reservations (scope, name, owner_id) VALUES ('app:org_gc', $1, $2)",
        {name, owner},
        pg::Connection::OnError{pg::errc::kUniqueViolation,
                                Error(plfm::errc::kAlreadyExists, "taken: " + name)});
  };
  auto reserveThenAppend = [&](const std::string& name, const std::string& app) {
    return [&, name, app](pg::Transaction& tx,
                          Result<pg::ResultSet> opened) -> Result<CommandOutcome> {
      PLFM_TRY(reserve(tx, name, app));
      EXPECT_EQ(tx.connection().deferredWrites(), 1U);  // queued, not sent
      return appendApp("org_gc", app)(tx, std::move(opened));
    };
  };
  const GroupCommitter::Body leftQueued =
      [&](pg::Transaction& tx, Result<pg::ResultSet> /*opened*/) -> Result<CommandOutcome> {
    PLFM_TRY(reserve(tx, "one", "app_late"));
    CommandOutcome out;
    out.status = 200;
    return out;
  };
  auto results =
      runAsOneBatch(appendApp("org_gc", "app_a"),
                    {reserveThenAppend("one", "app_one"), reserveThenAppend("one", "app_dup"),
                     leftQueued, reserveThenAppend("two", "app_two")});
  ASSERT_TRUE(results[0].has_value()) << results[0].error().toString();
  ASSERT_FALSE(results[1].has_value());
  EXPECT_TRUE(results[1].error().is(plfm::errc::kAlreadyExists)) << results[1].error().toString();
  EXPECT_EQ(results[1].error().message(), "taken: one");
  ASSERT_FALSE(results[2].has_value());
  EXPECT_TRUE(results[2].error().is(plfm::errc::kAlreadyExists)) << results[2].error().toString();
  ASSERT_TRUE(results[3].has_value()) << results[3].error().toString();
  EXPECT_EQ(results[3]->seq, results[0]->seq + 1);
  auto owners = db.exec("SELECT owner_id FROM name_reservations ORDER BY owner_id");
  ASSERT_TRUE(owners.has_value());
  ASSERT_EQ(owners->rows(), 2);
  EXPECT_EQ(owners->text(0, 0), "app_one");
  EXPECT_EQ(owners->text(1, 0), "app_two");
}

TEST_F(GroupCommitTest, TheSameKeyTwiceInOneBatchRunsOnceAndReplays) {
  auto db = connect();
  const IdempotencyKey k{"usr_test", "same-key", "hash-1"};
  std::atomic<int> ran{0};
  const GroupCommitter::Body keyed =
      [&](pg::Transaction& tx, Result<pg::ResultSet> /*opened*/) -> Result<CommandOutcome> {
    PLFM_ASSIGN_OR_RETURN(auto replay, claimIdempotencyKey(tx, k));
    if (replay) return std::move(*replay);
    ++ran;
    PLFM_ASSIGN_OR_RETURN(CommandOutcome out, appendApp("org_k", "app_once")(tx, pg::ResultSet()));
    out.body = R"({"id":"app_once"})";
    PLFM_TRY(saveIdempotencyRecord(tx, k, out, out.body));
    return out;
  };
  const IdempotencyKey other{"usr_test", "same-key", "hash-2"};
  const GroupCommitter::Body reused =
      [&](pg::Transaction& tx, Result<pg::ResultSet> /*opened*/) -> Result<CommandOutcome> {
    PLFM_ASSIGN_OR_RETURN(auto replay, claimIdempotencyKey(tx, other));
    if (replay) return std::move(*replay);
    return Error(plfm::errc::kInternal, "a reused key ran");
  };
  auto results = runAsOneBatch(appendApp("org_k", "app_first"), {keyed, keyed, reused});
  ASSERT_TRUE(results[0].has_value()) << results[0].error().toString();
  ASSERT_TRUE(results[1].has_value()) << results[1].error().toString();
  EXPECT_EQ(ran.load(), 1);
  EXPECT_FALSE(results[0]->replayed);
  EXPECT_TRUE(results[1]->replayed);
  EXPECT_EQ(results[1]->status, results[0]->status);
  EXPECT_EQ(results[1]->body, results[0]->body);
  EXPECT_EQ(results[1]->seq, results[0]->seq);
  // Another request under the same key is refused, and only itself.
  ASSERT_FALSE(results[2].has_value());
  EXPECT_EQ(results[2].error().code(), "idempotency_key_reused");
  auto n = db.exec("SELECT count(*) FROM events WHERE aggregate_id = 'app_once'");
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->int64(0, 0).value_or(-1), 1);
}

// A presumed claim (one round trip less): a fresh key runs at once; the
// same key again in the batch fails the presumed write and falls back to the
// usual claim, which replays; a body that fails before sending anything, and
// one that fails after, are run again the usual way without touching their
// neighbours' work.
TEST_F(GroupCommitTest, APresumedClaimFallsBackToTheUsualWayOnAnyFailure) {
  auto db = connect();
  std::atomic<int> ran{0};
  std::atomic<int> presumed_runs{0};
  auto keyedBody = [&](const IdempotencyKey& k, const std::string& app, int fail_presumed) {
    return [&, k, app, fail_presumed](pg::Transaction& tx,
                                      Result<pg::ResultSet> claim) -> Result<CommandOutcome> {
      const bool presumed = GroupCommitter::openingPresumed();
      if (presumed) {
        ++presumed_runs;
        if (fail_presumed == 1) return Error(plfm::errc::kInternal, "fails before any statement");
        if (fail_presumed == 2) {
          PLFM_TRY(tx.exec("SELECT 1"));  // the claim goes out with it
          return Error(plfm::errc::kInternal, "fails after a statement");
        }
      } else {
        PLFM_ASSIGN_OR_RETURN(auto replay, resolveClaim(tx, k, std::move(claim)));
        if (replay) return std::move(*replay);
      }
      ++ran;
      PLFM_ASSIGN_OR_RETURN(CommandOutcome out, appendApp("org_p", app)(tx, pg::ResultSet()));
      out.body = app;
      PLFM_TRY(saveIdempotencyRecord(tx, k, out, out.body, /*insert=*/presumed));
      return out;
    };
  };
  std::vector<GroupCommitter::Body> bodies;
  std::vector<IdempotencyKey> keys = {{"usr_test", "k1", "h1"},
                                      {"usr_test", "k1", "h1"},
                                      {"usr_test", "k2", "h2"},
                                      {"usr_test", "k3", "h3"}};
  bodies.emplace_back(keyedBody(keys[0], "app_one", 0));
  bodies.emplace_back(keyedBody(keys[1], "app_one_again", 0));
  bodies.emplace_back(keyedBody(keys[2], "app_two", 1));
  bodies.emplace_back(keyedBody(keys[3], "app_three", 2));
  auto results = runKeyedAsOneBatch(appendApp("org_p", "app_first"), bodies, keys);
  for (const auto& r : results) ASSERT_TRUE(r.has_value()) << r.error().toString();
  EXPECT_FALSE(results[0]->replayed);
  EXPECT_TRUE(results[1]->replayed);  // the presumed write failed: the usual way replays
  EXPECT_EQ(results[1]->body, "app_one");
  EXPECT_EQ(results[1]->seq, results[0]->seq);
  EXPECT_EQ(results[2]->body, "app_two");
  EXPECT_EQ(results[3]->body, "app_three");
  // app_one, app_two, app_three, and the duplicate's presumed run, whose
  // record's insert then failed on the taken key and was rolled back (events
  // below).
  EXPECT_EQ(ran.load(), 4);
  EXPECT_EQ(presumed_runs.load(), 4);  // every command tried the presumed way first
  EXPECT_EQ(aggregatesInLogOrder(db),
            (std::vector<std::string>{"app_first", "app_one", "app_two", "app_three"}));
  auto claimed = db.exec("SELECT key, status FROM idempotency_keys ORDER BY key");
  ASSERT_TRUE(claimed.has_value());
  ASSERT_EQ(claimed->rows(), 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(claimed->text(i, 1), "201") << claimed->text(i, 0);
}

TEST_F(GroupCommitTest, ACommandSeesWhichOrgsItsBatchAlreadyWrote) {
  std::optional<bool> saw_a;
  std::optional<bool> saw_b;
  const GroupCommitter::Body look =
      [&](pg::Transaction& /*tx*/, Result<pg::ResultSet> /*opened*/) -> Result<CommandOutcome> {
    saw_a = GroupCommitter::batchWrote("org_a");
    saw_b = GroupCommitter::batchWrote("org_b");
    return CommandOutcome{200, "{}", 0, false, false};
  };
  auto wrote = [&](pg::Transaction& tx,
                   Result<pg::ResultSet> /*opened*/) -> Result<CommandOutcome> {
    PLFM_ASSIGN_OR_RETURN(CommandOutcome out, appendApp("org_a", "app_x")(tx, pg::ResultSet()));
    GroupCommitter::noteAppended({testsupport::appCreated("org_a", "app_x", "x")});
    return out;
  };
  auto results = runAsOneBatch(appendApp("org_a", "app_w"), {wrote, look});
  ASSERT_TRUE(results[1].has_value());
  EXPECT_EQ(saw_a, std::optional<bool>(true));
  EXPECT_EQ(saw_b, std::optional<bool>(false));
  EXPECT_FALSE(GroupCommitter::batchWrote("org_a"));  // not in a batch here
}

// Pipelined commands (presumed, their writes queued for a later round trip)
// whose queued writes fail: a later command's read, or the COMMIT, reports
// the first failed write; the batch rolls back to that command's savepoint
// and runs it again the usual way, and every command after it again. Here
// the second command reuses the first one's key (its record's insert fails,
// and the usual way replays), and the third takes the first one's name (its
// reservation fails; the usual way answers already_exists). The fourth
// reads before it appends, so each failure surfaces in its round trip.
TEST_F(GroupCommitTest, APipelinedBatchRewindsToAFailedWriteAndRunsTheRestAgain) {
  auto db = connect();
  auto reserve = [](const std::string& name, const std::string& owner) {
    return [name, owner](pg::Transaction& tx) -> Result<void> {
      return tx.connection().execDeferred(
          "INSERT INTO name_reservations (scope, name, owner_id) VALUES ('app:org_q', $1, $2)",
          {name, owner},
          pg::Connection::OnError{pg::errc::kUniqueViolation,
                                  Error(plfm::errc::kAlreadyExists, "the name is taken")});
    };
  };
  std::atomic<int> reads{0};
  auto read = [&](pg::Transaction& tx) -> Result<void> {
    ++reads;
    PLFM_TRY(tx.exec("SELECT 1"));
    return ok();
  };
  const std::vector<IdempotencyKey> keys = {{"usr_test", "k1", "h1"},
                                            {"usr_test", "k1", "h1"},
                                            {"usr_test", "k2", "h2"},
                                            {"usr_test", "k3", "h3"}};
  const std::vector<GroupCommitter::Body> bodies = {
      keyedApp(keys[0], "org_q", "app_one", reserve("one", "app_one")),
      keyedApp(keys[1], "org_q", "app_one_again"),
      keyedApp(keys[2], "org_q", "app_two", reserve("one", "app_two")),
      keyedApp(keys[3], "org_q", "app_three", read)};
  auto results = runKeyedAsOneBatch(appendApp("org_q", "app_first"), bodies, keys);
  ASSERT_TRUE(results[0].has_value()) << results[0].error().toString();
  EXPECT_FALSE(results[0]->replayed);
  ASSERT_TRUE(results[1].has_value()) << results[1].error().toString();
  EXPECT_TRUE(results[1]->replayed);
  EXPECT_EQ(results[1]->body, "app_one");
  EXPECT_EQ(results[1]->seq, results[0]->seq);
  ASSERT_FALSE(results[2].has_value());
  EXPECT_TRUE(results[2].error().is(plfm::errc::kAlreadyExists)) << results[2].error().toString();
  ASSERT_TRUE(results[3].has_value()) << results[3].error().toString();
  EXPECT_EQ(results[3]->seq, results[0]->seq + 1);  // the seqs it was told are the log's
  // The fourth ran pipelined three times: each failure surfaced in its read.
  EXPECT_EQ(reads.load(), 3);
  EXPECT_EQ(aggregatesInLogOrder(db),
            (std::vector<std::string>{"app_first", "app_one", "app_three"}));
  auto claimed = db.exec("SELECT key, seq FROM idempotency_keys ORDER BY key");
  ASSERT_TRUE(claimed.has_value());
  ASSERT_EQ(claimed->rows(), 2);
  EXPECT_EQ(claimed->text(0, 0), "k1");
  EXPECT_EQ(claimed->int64(0, 1).value_or(0), results[0]->seq);
  EXPECT_EQ(claimed->text(1, 0), "k3");
  EXPECT_EQ(claimed->int64(1, 1).value_or(0), results[3]->seq);
  auto names = db.exec("SELECT owner_id FROM name_reservations WHERE scope = 'app:org_q'");
  ASSERT_TRUE(names.has_value());
  ASSERT_EQ(names->rows(), 1);
  EXPECT_EQ(names->text(0, 0), "app_one");
}

// A pipelined command that must wait for its org's views (lockOrg), which
// its batch already wrote to, goes first into the next batch, as a usual-way
// command does; nothing of it reached the database in the first one.
TEST_F(GroupCommitTest, APipelinedCommandDefersToTheNextBatch) {
  auto db = connect();
  std::atomic<int> tries{0};
  auto lockOrg = [&](pg::Transaction& /*tx*/) -> Result<void> {
    ++tries;
    if (GroupCommitter::batchWrote("org_d")) {
      return Error(errc::kDeferToNextBatch, "the batch holds uncommitted events of the org");
    }
    return ok();
  };
  const std::vector<IdempotencyKey> keys = {{"usr_test", "k1", "h1"}, {"usr_test", "k2", "h2"}};
  const std::vector<GroupCommitter::Body> bodies = {keyedApp(keys[0], "org_d", "app_one"),
                                                    keyedApp(keys[1], "org_d", "app_two", lockOrg)};
  auto results = runKeyedAsOneBatch(appendApp("org_x", "app_first"), bodies, keys, /*batches=*/3);
  for (const auto& r : results) ASSERT_TRUE(r.has_value()) << r.error().toString();
  EXPECT_EQ(results[1]->seq, results[0]->seq + 1);
  EXPECT_EQ(tries.load(), 2);  // deferred once, then run
  EXPECT_EQ(aggregatesInLogOrder(db),
            (std::vector<std::string>{"app_first", "app_one", "app_two"}));
}

// The committer numbers a pipelined command's events itself and checks the
// numbering once, in the COMMIT's round trip (events_expect_head): a batch
// whose seqs would leave a gap fails whole, and nothing of it is committed.
TEST_F(GroupCommitTest, ABatchThatWouldLeaveAGapInTheLogFailsWhole) {
  auto db = connect();
  const std::vector<IdempotencyKey> keys = {{"usr_test", "k1", "h1"}, {"usr_test", "k2", "h2"}};
  auto skipASeq = [](pg::Transaction& /*tx*/) -> Result<void> {
    if (int64_t* head = GroupCommitter::knownHead()) ++*head;  // a numbering bug
    return ok();
  };
  const std::vector<GroupCommitter::Body> bodies = {
      keyedApp(keys[0], "org_h", "app_one"), keyedApp(keys[1], "org_h", "app_two", skipASeq)};
  auto results = runKeyedAsOneBatch(appendApp("org_h", "app_first"), bodies, keys);
  for (const auto& r : results) {
    ASSERT_FALSE(r.has_value());
    EXPECT_TRUE(r.error().is(plfm::errc::kUnavailable)) << r.error().toString();
    EXPECT_NE(
        r.error().toString().find(
            "the batch numbered seqs 2 to 4, but the event log holds 2 of them and ends at seq 4"),
        std::string::npos)
        << r.error().toString();
  }
  EXPECT_EQ(aggregatesInLogOrder(db), (std::vector<std::string>{"app_first"}));
  auto claimed = db.exec("SELECT count(*) FROM idempotency_keys");
  ASSERT_TRUE(claimed.has_value());
  EXPECT_EQ(claimed->int64(0, 0).value_or(-1), 0);
}

// A seq handed out twice fails its insert on the primary key: the batch
// rewinds to that command, and the usual way numbers it from the log.
TEST_F(GroupCommitTest, ASeqHandedOutTwiceRewindsToItsCommand) {
  auto db = connect();
  const std::vector<IdempotencyKey> keys = {{"usr_test", "k1", "h1"}, {"usr_test", "k2", "h2"}};
  std::atomic<int> tries{0};
  auto reuseASeq = [&](pg::Transaction& /*tx*/) -> Result<void> {
    ++tries;
    if (int64_t* head = GroupCommitter::knownHead()) --*head;  // a numbering bug
    return ok();
  };
  const std::vector<GroupCommitter::Body> bodies = {
      keyedApp(keys[0], "org_h", "app_one"), keyedApp(keys[1], "org_h", "app_two", reuseASeq)};
  auto results = runKeyedAsOneBatch(appendApp("org_h", "app_first"), bodies, keys);
  for (const auto& r : results) ASSERT_TRUE(r.has_value()) << r.error().toString();
  EXPECT_EQ(tries.load(), 2);  // pipelined, then the usual way
  EXPECT_EQ(results[1]->seq, results[0]->seq + 1);
  EXPECT_EQ(aggregatesInLogOrder(db),
            (std::vector<std::string>{"app_first", "app_one", "app_two"}));
}

TEST_F(GroupCommitTest, ConcurrentCommandsGetGaplessSeqsInCommitOrder) {
  checkConcurrentCommands([&](const std::string& app, size_t /*n*/) {
    return committer_->run(appendApp("org_c", app));
  });
}

// The same with pipelined commands: each one's answer names the seq its
// event got, though it was numbered before it was sent.
TEST_F(GroupCommitTest, ConcurrentPipelinedCommandsGetTheSeqsTheyWereTold) {
  checkConcurrentCommands([&](const std::string& app, size_t n) {
    const IdempotencyKey k{"usr_test", "key_" + std::to_string(n), "h"};
    return runKeyed(keyedApp(k, "org_c", app), k);
  });
}

}  // namespace
}  // namespace plfm::cp
