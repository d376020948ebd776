// kill -9 under load: 1,000 idempotent mutations from concurrent clients
// against the real `plfm-control-plane` binary, which is killed with SIGKILL
// midway and restarted; every client retries with its key until it gets an
// answer. Nothing acknowledged may be lost, nothing may run twice, every
// replay must be the saved answer byte for byte, and the log has no gap
// (docs/specs/state/event-log.md, "Group commit").
#include <gtest/gtest.h>

#include "cp_test_support.h"
#include "keyed_load_support.h"
#include "plfm/core/json.h"
#include "plfm/pg/pg.h"

namespace plfm::cp {
namespace {

using json::Json;

class GroupCommitCrashTest : public testsupport::CpTest {};

TEST_F(GroupCommitCrashTest, KillNineMidwayLosesNothingAcknowledgedAndRunsNothingTwice) {
  plfm::testing::TempDir dir("cp-gc-crash");
  testsupport::CpProcess cp(PLFM_CONTROL_PLANE_BIN, conninfo(), dir);
  ASSERT_TRUE(cp.start()) << cp.log();
  const auto [url, token] = cp.target();
  http::ClientRequest mk;
  mk.method = "POST";
  mk.url = url + "/v1/orgs";
  mk.body = R"({"name":"crash"})";
  mk.headers.set("Authorization", "Bearer " + token);
  mk.headers.set("Idempotency-Key", "crash-org");
  mk.headers.set("Content-Type", "application/json");
  auto org_reply = http::request(mk);
  ASSERT_TRUE(org_reply.has_value() && org_reply->status == 201) << cp.log();
  const std::string org = json::parse(org_reply->body).value_or(Json())["id"];

  const auto requests = testsupport::createAppRequests(org, 1000, "crash-key-");
  auto target = [&] { return cp.target(); };
  auto fault = [&] {
    cp.kill9();
    ASSERT_TRUE(cp.start()) << cp.log();
  };
  const auto report =
      testsupport::runKeyedLoad(requests, target, fault, {.clients = 48, .fault_after = 300});
  EXPECT_TRUE(report.fault_ran);
  EXPECT_GT(report.transient, 0U) << "the kill interrupted nothing";
  pg::Connection db = connect();
  testsupport::expectEachAppCreatedOnce(db, org, "crash-key-", requests, report, target);
}

}  // namespace
}  // namespace plfm::cp
