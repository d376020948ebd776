// libpq wrapper against a real PostgreSQL: parameters, typed results, error
// mapping, transactions and LISTEN/NOTIFY.
#include "plfm/pg/pg.h"

#include <gtest/gtest.h>

#include <thread>

#include "plfm/pg/pipeline.h"
#include "plfm/pg/pool.h"
#include "plfm/pg/prepared.h"
#include "plfm/testing/pg_test.h"

namespace plfm::pg {
namespace {

class PgTest : public testing::PgTest {
 protected:
  void SetUp() override {
    testing::PgTest::SetUp();
    if (HasFatalFailure()) return;
    conn_ = connect();
    ASSERT_TRUE(conn_
                    .execScript("CREATE TABLE kv (k text PRIMARY KEY, v text, n bigint, "
                                "b boolean, CHECK (n IS NULL OR n >= 0))")
                    .has_value());
  }
  Connection conn_;
};

TEST_F(PgTest, ParametersNullsAndTypedGetters) {
  ASSERT_TRUE(
      conn_.exec("INSERT INTO kv VALUES ($1, $2, $3, $4)", {"a", std::nullopt, int64_t{42}, true})
          .has_value());
  // A value that would break string-built SQL is just data here.
  const std::string tricky = "x'); DROP TABLE kv; --";
  ASSERT_TRUE(conn_.exec("INSERT INTO kv (k, v) VALUES ($1, $2)", {"b", tricky}).has_value());
  auto rs = conn_.exec("SELECT k, v, n, b FROM kv ORDER BY k");
  ASSERT_TRUE(rs.has_value());
  ASSERT_EQ(rs->rows(), 2);
  EXPECT_EQ(rs->columns(), 4);
  EXPECT_EQ(rs->columnIndex("n"), 2);
  EXPECT_EQ(rs->columnIndex("zz"), -1);
  EXPECT_TRUE(rs->isNull(0, 1));
  EXPECT_EQ(rs->optText(0, 1), std::nullopt);
  EXPECT_EQ(*rs->int64(0, 2), 42);
  EXPECT_EQ(*rs->boolean(0, 3), true);
  EXPECT_EQ(rs->text(1, 1), tricky);
  auto bad = rs->int64(1, 2);  // NULL is not an integer
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), errc::kBadResult);
  std::optional<int> none;
  auto upd = conn_.exec("UPDATE kv SET n = $1 WHERE k = 'a'", {none});
  ASSERT_TRUE(upd.has_value());
  EXPECT_EQ(upd->affected(), 1);
}

TEST_F(PgTest, ColumnKindsSayHowJsonCarriesAValue) {
  auto rs = conn_.exec(
      "SELECT true AS b, 1::int2 AS i2, 2::int4 AS i4, 3::int8 AS i8, '{}'::json AS j, "
      "'[]'::jsonb AS jb, 1.5::numeric AS num, 'x'::text AS t, now() AS ts");
  ASSERT_TRUE(rs.has_value());
  using K = ResultSet::Kind;
  const std::vector<K> want = {K::kBool, K::kInteger, K::kInteger, K::kInteger, K::kJson,
                               K::kJson, K::kText,    K::kText,    K::kText};
  ASSERT_EQ(rs->columns(), static_cast<int>(want.size()));
  for (int c = 0; c < rs->columns(); ++c) {
    EXPECT_EQ(rs->columnKind(c), want[static_cast<std::size_t>(c)]) << rs->columnName(c);
  }
}

TEST_F(PgTest, UniqueViolationHasItsOwnCodeAndNamesTheConstraint) {
  ASSERT_TRUE(conn_.exec("INSERT INTO kv (k) VALUES ($1)", {"dup"}).has_value());
  auto r = conn_.exec("INSERT INTO kv (k) VALUES ($1)", {"dup"});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), errc::kUniqueViolation);
  EXPECT_EQ(r.error().detail("sqlstate"), "23505");
  EXPECT_EQ(r.error().detail("constraint"), "kv_pkey");
  EXPECT_EQ(r.error().detail("table"), "kv");
  EXPECT_FALSE(isRetryable(r.error()));
}

TEST_F(PgTest, OtherConstraintAndRaiseCodes) {
  auto chk = conn_.exec("INSERT INTO kv (k, n) VALUES ('c', -1)");
  ASSERT_FALSE(chk.has_value());
  EXPECT_EQ(chk.error().code(), errc::kCheckViolation);
  auto nn = conn_.exec("INSERT INTO kv (k) VALUES (NULL)");
  ASSERT_FALSE(nn.has_value());
  EXPECT_EQ(nn.error().code(), errc::kNotNullViolation);
  auto raised = conn_.exec("DO $$ BEGIN RAISE EXCEPTION 'nope'; END $$");
  ASSERT_FALSE(raised.has_value());
  EXPECT_EQ(raised.error().code(), errc::kRaised);
  EXPECT_EQ(raised.error().message(), "nope");
  auto syntax = conn_.exec("SELEC 1");
  ASSERT_FALSE(syntax.has_value());
  EXPECT_EQ(syntax.error().code(), errc::kError);
  EXPECT_EQ(syntax.error().detail("sqlstate"), "42601");
}

TEST_F(PgTest, SerializationFailureHasItsOwnCodeAndIsRetryable) {
  ASSERT_TRUE(conn_.exec("INSERT INTO kv (k, n) VALUES ('ctr', 0)").has_value());
  auto other = connect();
  auto tx1 = Transaction::begin(conn_, Isolation::kRepeatableRead);
  ASSERT_TRUE(tx1.has_value());
  ASSERT_TRUE(tx1->exec("SELECT n FROM kv WHERE k = 'ctr'").has_value());  // takes snapshot
  ASSERT_TRUE(other.exec("UPDATE kv SET n = n + 1 WHERE k = 'ctr'").has_value());
  auto r = tx1->exec("UPDATE kv SET n = n + 1 WHERE k = 'ctr'");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), errc::kSerializationFailure);
  EXPECT_EQ(r.error().detail("sqlstate"), "40001");
  EXPECT_TRUE(isRetryable(r.error()));
}

TEST_F(PgTest, TransactionRollsBackUnlessCommitted) {
  {
    auto tx = Transaction::begin(conn_);
    ASSERT_TRUE(tx.has_value());
    ASSERT_TRUE(tx->exec("INSERT INTO kv (k) VALUES ('gone')").has_value());
  }  // destroyed without commit
  {
    auto tx = Transaction::begin(conn_, Isolation::kSerializable);
    ASSERT_TRUE(tx.has_value());
    ASSERT_TRUE(tx->exec("INSERT INTO kv (k) VALUES ('kept')").has_value());
    ASSERT_TRUE(tx->commit().has_value());
  }
  auto rs = conn_.exec("SELECT k FROM kv ORDER BY k");
  ASSERT_TRUE(rs.has_value());
  ASSERT_EQ(rs->rows(), 1);
  EXPECT_EQ(rs->text(0, 0), "kept");
}

TEST_F(PgTest, CommitAfterAFailedStatementIsAnError) {
  auto tx = Transaction::begin(conn_);
  ASSERT_TRUE(tx.has_value());
  ASSERT_TRUE(tx->exec("INSERT INTO kv (k) VALUES ('x')").has_value());
  ASSERT_FALSE(tx->exec("INSERT INTO kv (k) VALUES ('x')").has_value());
  auto c = tx->commit();
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message().find("rolled back"), std::string::npos);
  auto rs = conn_.exec("SELECT count(*) FROM kv");
  ASSERT_TRUE(rs.has_value());
  EXPECT_EQ(*rs->int64(0, 0), 0);
}

TEST_F(PgTest, ListenNotify) {
  auto listener = connect();
  ASSERT_TRUE(listener.listen("plfm events").has_value());  // quoted identifier
  auto none = listener.waitNotification(std::chrono::milliseconds(20));
  ASSERT_TRUE(none.has_value());
  EXPECT_FALSE(none->has_value());
  std::thread sender([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_TRUE(conn_.exec("SELECT pg_notify($1, $2)", {"plfm events", "42"}).has_value());
  });
  auto n = listener.waitNotification(std::chrono::seconds(10));
  sender.join();
  ASSERT_TRUE(n.has_value());
  ASSERT_TRUE(n->has_value());
  EXPECT_EQ((*n)->channel, "plfm events");
  EXPECT_EQ((*n)->payload, "42");
  EXPECT_EQ((*n)->backend_pid, conn_.backendPid());
}

TEST_F(PgTest, ConnectionFailureIsAClearError) {
  auto c = Connection::connect("host=/nonexistent-dir port=1 dbname=x connect_timeout=1");
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code(), errc::kConnection);
  EXPECT_NE(c.error().message().find("cannot connect to PostgreSQL"), std::string::npos);
}

// A primary demoted to standby by a failover answers writes with 25006 on
// sessions that survived: such a session is lost, so pools and workers
// reconnect (and find the new primary) instead of reusing it.
TEST_F(PgTest, ReadOnlyServerEndsTheSession) {
  auto conn = connect();
  ASSERT_TRUE(conn.execScript("SET default_transaction_read_only = on").has_value());
  auto w = conn.exec("INSERT INTO kv (k) VALUES ($1)", {"ro"});
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code(), errc::kConnection) << w.error().toString();
  EXPECT_FALSE(conn.healthy());
  EXPECT_FALSE(conn.idle());

  auto piped = connect();
  ASSERT_TRUE(piped.execScript("SET default_transaction_read_only = on").has_value());
  const Statement write[] = {{"INSERT INTO kv (k) VALUES ($1)", {"ro"}}};
  auto r = execPipeline(piped, write);
  ASSERT_TRUE(r.has_value()) << r.error().toString();
  ASSERT_FALSE((*r)[0].has_value());
  EXPECT_EQ((*r)[0].error().code(), errc::kConnection);
  EXPECT_FALSE(piped.healthy());
}

TEST_F(PgTest, PipelineRunsInOrderAndSkipsWhatFollowsAFailure) {
  const Statement ok[] = {{"INSERT INTO kv (k, v) VALUES ($1, $2)", {"a", "1"}},
                          {"SELECT v FROM kv WHERE k = $1", {"a"}}};
  auto r = execPipeline(conn_, ok);
  ASSERT_TRUE(r.has_value()) << r.error().toString();
  ASSERT_EQ(r->size(), 2U);
  ASSERT_TRUE((*r)[1].has_value());
  EXPECT_EQ((*r)[1]->text(0, 0), "1");

  auto tx = Transaction::begin(conn_);
  ASSERT_TRUE(tx.has_value());
  const Statement bad[] = {{"INSERT INTO kv (k, v) VALUES ($1, $2)", {"b", "2"}},
                           {"INSERT INTO kv (k, v) VALUES ($1, $2)", {"a", "dup"}},
                           {"INSERT INTO kv (k, v) VALUES ($1, $2)", {"c", "3"}}};
  auto f = execPipeline(conn_, bad);
  ASSERT_TRUE(f.has_value()) << f.error().toString();
  EXPECT_TRUE((*f)[0].has_value());
  ASSERT_FALSE((*f)[1].has_value());
  EXPECT_TRUE((*f)[1].error().is(errc::kUniqueViolation));
  EXPECT_EQ((*f)[1].error().detail("constraint"), "kv_pkey");
  EXPECT_FALSE((*f)[2].has_value());
  EXPECT_FALSE(tx->commit().has_value());  // the block was aborted
  auto n = conn_.exec("SELECT count(*) FROM kv");
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->int64(0, 0).value_or(-1), 1);
}

TEST_F(PgTest, PreparedPipelineStatementsAreReusedAndSurviveAFailedParse) {
  PreparedStatements prepared(conn_);
  const UsePrepared use(prepared);
  for (int i = 0; i < 3; ++i) {
    const Statement s[] = {{"INSERT INTO kv (k, n) VALUES ($1, $2)", {"k" + std::to_string(i), i}},
                           {"SELECT count(*) FROM nope", {}},
                           {"SELECT 1", {}}};
    auto r = execPipeline(conn_, s);
    ASSERT_TRUE(r.has_value()) << r.error().toString();
    EXPECT_TRUE((*r)[0].has_value()) << (*r)[0].error().toString();
    ASSERT_FALSE((*r)[1].has_value());  // no such table: not prepared, tried again next time
    EXPECT_EQ((*r)[1].error().detail("sqlstate"), "42P01") << (*r)[1].error().toString();
    EXPECT_FALSE((*r)[2].has_value());  // skipped
  }
  auto n = conn_.exec("SELECT count(*) FROM pg_prepared_statements");
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->int64(0, 0).value_or(-1), 1);  // the INSERT, once
  // Another connection on this thread does not use this one's statements.
  auto other = connect();
  const Statement s[] = {{"INSERT INTO kv (k, n) VALUES ($1, $2)", {"x", 9}}};
  auto r = execPipeline(other, s);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE((*r)[0].has_value()) << (*r)[0].error().toString();
}

// A pooled connection whose session the server ended while it sat idle is
// replaced when it is next acquired, not handed out to fail.
TEST_F(PgTest, APoolReplacesAConnectionTheServerClosedWhileIdle) {
  Pool pool(conninfo(), 1);
  int first_pid = 0;
  {
    auto lease = pool.acquire(std::chrono::seconds(1));
    ASSERT_TRUE(lease.has_value());
    first_pid = (*lease)->backendPid();
  }
  auto admin = connect();
  ASSERT_TRUE(admin.exec("SELECT pg_terminate_backend($1)", {first_pid}).has_value());
  bool gone = false;  // the FATAL and the close reach the idle socket
  for (int i = 0; i < 100 && !gone; ++i) {
    auto check = admin.exec("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", {first_pid});
    gone = check && check->int64(0, 0).value_or(1) == 0;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(gone);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto lease = pool.acquire(std::chrono::seconds(1));
  ASSERT_TRUE(lease.has_value()) << lease.error().toString();
  auto rs = (*lease)->exec("SELECT 1");
  ASSERT_TRUE(rs.has_value()) << rs.error().toString();
  EXPECT_NE((*lease)->backendPid(), first_pid);
}

// Deferred writes: queued under BatchedWrites (the BEGIN too), sent with the
// next statement in one pipeline, their errors returned by it; dropped by a
// rollback; sent at once without BatchedWrites; flushed when it ends.
TEST_F(PgTest, DeferredWritesRideOnTheNextStatementAndReportTheirErrors) {
  const std::string_view insert = "INSERT INTO kv (k, n) VALUES ($1, $2)";
  auto count = [this](std::string_view k) {
    auto other = connect();
    auto rs = other.exec("SELECT count(*) FROM kv WHERE k = $1", {k});
    return rs ? rs->int64(0, 0).value_or(-1) : -1;
  };
  {
    const BatchedWrites batch(conn_);
    auto tx = Transaction::begin(conn_);
    ASSERT_TRUE(tx.has_value());
    EXPECT_EQ(conn_.deferredWrites(), 1U);  // the BEGIN
    ASSERT_TRUE(conn_.execDeferred(insert, {"a", int64_t{1}}).has_value());
    ASSERT_TRUE(conn_.execDeferred(insert, {"b", int64_t{2}}).has_value());
    EXPECT_EQ(conn_.deferredWrites(), 3U);
    auto seen = tx->exec("SELECT count(*) FROM kv");  // reads what was queued before it
    ASSERT_TRUE(seen.has_value()) << seen.error().toString();
    EXPECT_EQ(seen->int64(0, 0).value_or(-1), 2);
    EXPECT_EQ(conn_.deferredWrites(), 0U);
    EXPECT_EQ(count("a"), 0);  // inside the transaction
    ASSERT_TRUE(conn_.execDeferred(insert, {"c", int64_t{3}}).has_value());
    ASSERT_TRUE(tx->commit().has_value());
    EXPECT_EQ(count("a"), 1);
    EXPECT_EQ(count("c"), 1);

    // A queued write's error is the next statement's, and the block aborts.
    auto tx2 = Transaction::begin(conn_);
    ASSERT_TRUE(tx2.has_value());
    ASSERT_TRUE(conn_.execDeferred(insert, {"d", int64_t{4}}).has_value());
    ASSERT_TRUE(conn_.execDeferred(insert, {"a", int64_t{5}}).has_value());
    ASSERT_TRUE(conn_.execDeferred(insert, {"e", int64_t{6}}).has_value());
    auto failed = tx2->exec("SELECT 1");
    ASSERT_FALSE(failed.has_value());
    EXPECT_TRUE(failed.error().is(errc::kUniqueViolation)) << failed.error().toString();
    EXPECT_EQ(failed.error().detail("constraint"), "kv_pkey");
    EXPECT_FALSE(tx2->commit().has_value());
    EXPECT_EQ(count("d"), 0);
    EXPECT_EQ(count("e"), 0);

    // The same error at commit, when no statement came before it.
    auto tx3 = Transaction::begin(conn_);
    ASSERT_TRUE(tx3.has_value());
    ASSERT_TRUE(conn_.execDeferred(insert, {"neg", int64_t{-1}}).has_value());
    auto commit = tx3->commit();
    ASSERT_FALSE(commit.has_value());
    EXPECT_TRUE(commit.error().is(errc::kCheckViolation)) << commit.error().toString();

    // A rollback drops what is queued.
    {
      auto tx4 = Transaction::begin(conn_);
      ASSERT_TRUE(tx4.has_value());
      ASSERT_TRUE(conn_.execDeferred(insert, {"f", int64_t{7}}).has_value());
    }
    EXPECT_EQ(conn_.deferredWrites(), 0U);
    EXPECT_EQ(count("f"), 0);
    EXPECT_TRUE(conn_.idle());

    // Queued writes are prepared once per connection.
    auto prepared = conn_.exec("SELECT count(*) FROM pg_prepared_statements WHERE statement = $1",
                               {std::string(insert)});
    ASSERT_TRUE(prepared.has_value());
    EXPECT_EQ(prepared->int64(0, 0).value_or(-1), 1);

    // Outside a transaction, sent when the batch ends.
    ASSERT_TRUE(conn_.execDeferred(insert, {"g", int64_t{8}}).has_value());
    EXPECT_EQ(count("g"), 0);
  }
  EXPECT_EQ(count("g"), 1);
  EXPECT_FALSE(conn_.batchingWrites());
  // Without BatchedWrites a write runs at once, and fails at once.
  auto dup = conn_.execDeferred(insert, {"g", int64_t{9}});
  ASSERT_FALSE(dup.has_value());
  EXPECT_TRUE(dup.error().is(errc::kUniqueViolation));
}

// execPrepared: parsed once per connection, the same results and typed
// errors as exec, a failed Parse not kept, and beside the group
// committer's own statements on the same connection.
TEST_F(PgTest, ExecPreparedParsesOncePerConnectionAndMapsErrorsLikeExec) {
  const std::string_view insert = "INSERT INTO kv (k, n) VALUES ($1, $2)";
  const std::string_view select = "SELECT n FROM kv WHERE k = $1";
  for (int i = 0; i < 7; ++i) {  // past the five custom plans
    auto in = execPrepared(conn_, insert, {"k" + std::to_string(i), int64_t{i}});
    ASSERT_TRUE(in.has_value()) << in.error().toString();
    auto rs = execPrepared(conn_, select, {"k" + std::to_string(i)});
    ASSERT_TRUE(rs.has_value()) << rs.error().toString();
    ASSERT_EQ(rs->rows(), 1);
    EXPECT_EQ(rs->int64(0, 0).value_or(-1), i);
  }
  auto missing = execPrepared(conn_, select, {"nope"});
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(missing->rows(), 0);
  auto dup = execPrepared(conn_, insert, {"k1", int64_t{1}});
  ASSERT_FALSE(dup.has_value());
  EXPECT_TRUE(dup.error().is(errc::kUniqueViolation));
  EXPECT_EQ(dup.error().detail("constraint"), "kv_pkey");
  auto check = execPrepared(conn_, insert, {"neg", int64_t{-1}});
  ASSERT_FALSE(check.has_value());
  EXPECT_TRUE(check.error().is(errc::kCheckViolation)) << check.error().toString();
  for (int i = 0; i < 2; ++i) {  // no such table: not kept, the same error again
    auto bad = execPrepared(conn_, "SELECT count(*) FROM nope WHERE x = $1", {"a"});
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error().detail("sqlstate"), "42P01") << bad.error().toString();
  }
  // Inside a transaction, and rolled back with it (the statement stays).
  {
    auto tx = Transaction::begin(conn_);
    ASSERT_TRUE(tx.has_value());
    ASSERT_TRUE(execPrepared(conn_, insert, {"tx", int64_t{1}}).has_value());
  }
  EXPECT_EQ(execPrepared(conn_, select, {"tx"})->rows(), 0);
  // The committer's cache on the same connection uses other names.
  PreparedStatements committer(conn_);
  {
    const UsePrepared use(committer);
    const Statement s[] = {{"SELECT count(*) FROM kv WHERE n >= $1", {int64_t{0}}}};
    auto r = execPipeline(conn_, s);
    ASSERT_TRUE(r.has_value());
    ASSERT_TRUE((*r)[0].has_value()) << (*r)[0].error().toString();
  }
  auto names = conn_.exec("SELECT name FROM pg_prepared_statements ORDER BY name");
  ASSERT_TRUE(names.has_value());
  std::vector<std::string> got(static_cast<size_t>(names->rows()));
  for (int r = 0; r < names->rows(); ++r) got[static_cast<size_t>(r)] = names->text(r, 0);
  EXPECT_EQ(got, (std::vector<std::string>{"plfm_p1", "plfm_s1", "plfm_s2"}));
  // A new connection starts with none, whatever handle it gets.
  for (int i = 0; i < 3; ++i) {
    Connection fresh = connect();
    auto rs = execPrepared(fresh, select, {"k3"});
    ASSERT_TRUE(rs.has_value()) << rs.error().toString();
    EXPECT_EQ(rs->int64(0, 0).value_or(-1), 3);
    auto mine = fresh.exec("SELECT count(*) FROM pg_prepared_statements");
    EXPECT_EQ(mine->int64(0, 0).value_or(-1), 1);
  }
}

}  // namespace
}  // namespace plfm::pg
