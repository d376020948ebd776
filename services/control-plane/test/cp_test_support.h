// Shared fixture for control-plane tests: a fresh, fully migrated database
// per test on the real PostgreSQL test cluster.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "event_store.h"
#include "plfm/core/json.h"
#include "plfm/testing/pg_test.h"

namespace plfm::cp::testsupport {

inline constexpr int64_t kGiB = int64_t{1} << 30;

// The body of POST /v1/nodes/enroll for a node of 8 cores and 16 GiB at
// `underlay_address` (docs/specs/api/v1.md).
inline json::Json nodeEnrollBody(const std::string& hostname, const std::string& underlay_address) {
  return {{"hostname", hostname},
          {"cores", 8},
          {"memory_mb", 16'384},
          {"disk_mb", 100'000},
          {"labels", json::Json::object()},
          {"wireguard_public_key", std::string(43, 'k') + "="},
          {"underlay_address", underlay_address},
          {"runtimes", {"qemu"}}};
}

class CpTest : public plfm::testing::PgTest {
 protected:
  std::string templateDatabase() override {
    return migratedTemplate(std::string(PLFM_TEST_DIR) + "/migrations");
  }

  // Appends `events` in one transaction; fails the test on error.
  AppendResult appendOk(pg::Connection& conn, const std::vector<NewEvent>& events,
                        const AppendContext& ctx = {"usr_test", "req_test"}) {
    auto tx = pg::Transaction::begin(conn);
    EXPECT_TRUE(tx.has_value());
    auto r = store_.append(*tx, ctx, events);
    EXPECT_TRUE(r.has_value()) << r.error().toString();
    auto c = tx->commit();
    EXPECT_TRUE(c.has_value()) << c.error().toString();
    return r.value_or(AppendResult{});
  }

  // Every view table's rows as text, in primary-key order.
  std::string dumpViews(pg::Connection& conn);

  // Applies the whole log again on top of the current views (as a crashed
  // worker might), then rebuilds them from seq 0: both leave every view as
  // it was.
  void expectReplayAndRebuildIdentical(pg::Connection& conn);

  RealClock clock_;
  EventStore store_{clock_};
};

inline NewEvent appCreated(const std::string& org, const std::string& app,
                           const std::string& name) {
  return events::toNewEvent(
      events::AppCreated{.app_id = app, .org_id = org, .name = name, .description = ""}, 1, org);
}

inline NewEvent orgCreated(const std::string& org, const std::string& name) {
  return events::toNewEvent(events::OrgCreated{.org_id = org, .name = name}, 1, org);
}

}  // namespace plfm::cp::testsupport
