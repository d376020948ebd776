// Shared fixture for scheduler tests on a real PostgreSQL with an injected
// clock: a projection worker, enrolled nodes, and commits that wait for the
// views.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "cp_test_support.h"
#include "nodes.h"
#include "projections.h"
#include "scheduler.h"

namespace plfm::cp::testsupport {

using namespace std::chrono_literals;

class SchedulerTest : public testsupport::CpTest {
 protected:
  void SetUp() override {
    CpTest::SetUp();
    if (HasFatalFailure()) return;
    worker_ = std::make_unique<ProjectionWorker>(conninfo(), ProjectionWorker::Options{});
    ASSERT_TRUE(worker_->start().has_value());
  }
  void TearDown() override {
    if (worker_) worker_->stop();
    CpTest::TearDown();
  }

  Scheduler::Options options() {
    Scheduler::Options o;
    o.liveness.heartbeat_timeout = 30s;
    o.liveness.down_after = 600s;
    o.interval = 100ms;
    return o;
  }

  // Commits `fn`'s events in one transaction and waits for the views.
  template <class F>
  void commit(pg::Connection& conn, F fn) {
    auto tx = pg::Transaction::begin(conn);
    ASSERT_TRUE(tx.has_value());
    std::vector<NewEvent> events = fn(*tx);
    if (!events.empty()) {
      auto r = store_.append(*tx, {"system:test", ""}, events);
      ASSERT_TRUE(r.has_value()) << r.error().toString();
      ASSERT_TRUE(tx->commit().has_value());
      worker_->kick();
      ASSERT_TRUE(worker_->waitFor(r->last_seq, 10s));
    } else {
      ASSERT_TRUE(tx->commit().has_value());
    }
  }

  std::string enroll(pg::Connection& conn, const std::string& hostname) {
    std::string node;
    commit(conn, [&](pg::Transaction& tx) {
      auto e = createEnrollment(tx, fake_, "usr_test", 900s);
      EXPECT_TRUE(e.has_value());
      NodeFacts facts;
      facts.hostname = hostname;
      facts.cores = 4;
      facts.memory_mb = 4096;
      facts.wireguard_public_key = std::string(43, 'k') + "=";
      facts.underlay_address = "192.0.2.1";
      facts.runtimes = {"qemu"};
      auto n = redeemEnrollment(tx, fake_, e->first.token, facts, "fd7a:5c00::/48",
                                std::chrono::seconds(10));
      EXPECT_TRUE(n.has_value()) << n.error().toString();
      node = n->first.node_id;
      std::vector<NewEvent> events = {e->second};
      for (auto& ev : n->second) events.push_back(std::move(ev));
      return events;
    });
    return node;
  }

  std::string query(pg::Connection& conn, const std::string& sql) {
    auto rs = conn.exec(sql);
    EXPECT_TRUE(rs.has_value()) << rs.error().toString();
    return rs && rs->rows() > 0 ? std::string(rs->text(0, 0)) : std::string();
  }

  FakeClock fake_;
  EventStore store_{fake_};
  std::unique_ptr<ProjectionWorker> worker_;
};

}  // namespace plfm::cp::testsupport
