// The scheduler and volumes on a real PostgreSQL (docs/specs/runtime/
// volume-mounts.md, §Placement, §Deploys, "Who appends what"): a deploy of a
// process with [[volumes]] creates each slot's volumes on the node it
// allocates, a redeploy replaces slot by slot stop-then-start on the same
// node, a slot whose node is lost waits for it, and a slot that fits nowhere
// says how much room it needs.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <set>

#include "deploy_create.h"
#include "plfm/core/id.h"
#include "plfm/core/json.h"
#include "plfm/events/events.h"
#include "scheduler_test_support.h"

namespace plfm::cp {
namespace {

using namespace std::chrono_literals;

using testsupport::kGiB;
constexpr int64_t kMiB = int64_t{1} << 20;

struct Row {
  std::string instance_id;
  std::string node_id;
  std::string release_id;
  std::string desired;
  std::string phase;
  int64_t generation = 1;
};

class SchedulerVolumesTest : public testsupport::SchedulerTest {
 protected:
  // Two nodes with `capacity` bytes of volume space each, and an env whose
  // process "db" has one volume "uploads" of `size` bytes and `count`
  // instances.
  void setUpEnv(pg::Connection& conn, int64_t capacity, int64_t size, int count) {
    nodes_ = {enroll(conn, "n1"), enroll(conn, "n2")};
    std::sort(nodes_.begin(), nodes_.end());
    for (const std::string& n : nodes_) heartbeat(conn, n, capacity);
    size_ = size;
    commit(conn, [&](pg::Transaction&) {
      return std::vector<NewEvent>{
          testsupport::orgCreated(org_, "acme"), testsupport::appCreated(org_, app_, "shop"),
          NewEvent{
              "env", env_, 1, "env.created", 1, org_,
              json::dump({{"env_id", env_}, {"app_id", app_}, {"org_id", org_}, {"name", "prod"}})},
          NewEvent{
              "env", env_, 2, "env.scale_set", 1, org_,
              json::dump({{"env_id", env_}, {"org_id", org_}, {"processes", {{"db", count}}}})}};
    });
  }

  // A release of the manifest and a deploy of it.
  std::string deploy(pg::Connection& conn) {
    std::string rel = ReleaseId::generate().str();
    const json::Json manifest = {
        {"app", "shop"},
        {"image", "registry.local/shop:1"},
        {"processes",
         {{{"name", "db"},
           {"command", json::Json::array()},
           {"args", json::Json::array()},
           {"resources", {{"vcpus", 1}, {"memory_mb", 256}}}}}},
        {"volumes",
         {{{"name", "uploads"}, {"mount", "/data"}, {"process", "db"}, {"size_bytes", size_}}}},
        {"deploy", {{"strategy", "rolling"}, {"max_surge", 1}, {"max_unavailable", 0}}}};
    commit(conn, [&](pg::Transaction&) {
      return std::vector<NewEvent>{
          NewEvent{"release", rel, 1, "release.created", 1, org_,
                   json::dump({{"release_id", rel},
                               {"app_id", app_},
                               {"org_id", org_},
                               {"image_ref", "registry.local/shop:1"},
                               {"image_digest", "sha256:" + std::string(64, 'b')},
                               {"manifest", manifest}})},
          newDeploy({.org_id = org_,
                     .app_id = app_,
                     .env_id = env_,
                     .release_id = rel,
                     .secrets_version = std::nullopt},
                    toRfc3339(fake_.now()))
              .event};
    });
    return rel;
  }

  // Instances that have not stopped, by slot (a slot may have two while
  // one replaces the other, which the tests check it never does).
  std::multimap<int, Row> instances(pg::Connection& conn) {
    auto rs = conn.exec(
        "SELECT slot, instance_id, node_id, release_id, desired_state, current_state, generation "
        "FROM instances_view WHERE current_state <> 'stopped' ORDER BY slot, instance_id");
    EXPECT_TRUE(rs.has_value()) << rs.error().toString();
    std::multimap<int, Row> out;
    for (int i = 0; rs && i < rs->rows(); ++i) {
      out.emplace(static_cast<int>(rs->int64(i, 0).value_or(-1)),
                  Row{std::string(rs->text(i, 1)), std::string(rs->text(i, 2)),
                      std::string(rs->text(i, 3)), std::string(rs->text(i, 4)),
                      std::string(rs->text(i, 5)), rs->int64(i, 6).value_or(1)});
    }
    return out;
  }

  // "uploads-0 node_... placed", one per volume.
  std::vector<std::string> volumes(pg::Connection& conn) {
    auto rs = conn.exec(
        "SELECT full_name || ' ' || coalesce(node_id, '-') || ' ' || state || ' ' || size_bytes "
        "FROM volumes_view ORDER BY full_name");
    EXPECT_TRUE(rs.has_value()) << rs.error().toString();
    std::vector<std::string> out;
    for (int i = 0; rs && i < rs->rows(); ++i) out.emplace_back(rs->text(i, 0));
    return out;
  }

  // The agents on active nodes: allocated -> healthy, drained or stopped
  // -> stopped.
  void report(pg::Connection& conn, const std::set<std::string>& silent_nodes = {}) {
    commit(conn, [&](pg::Transaction& tx) {
      std::vector<NewEvent> out;
      const auto rows = instances(conn);
      std::vector<std::string> ids;
      for (const auto& [slot, r] : rows) ids.push_back(r.instance_id);
      auto seqs = EventStore::aggregateSeqs(tx, ids);
      EXPECT_TRUE(seqs.has_value());
      for (const auto& [slot, r] : rows) {
        if (silent_nodes.contains(r.node_id)) continue;
        std::string phase;
        if (r.desired != "run") {
          phase = "stopped";
        } else if (r.phase == "allocated") {
          phase = "healthy";
        } else {
          continue;
        }
        out.push_back(
            events::toNewEvent(events::InstanceStatusReported{.instance_id = r.instance_id,
                                                              .node_id = r.node_id,
                                                              .generation = r.generation,
                                                              .seq = ++report_seq_,
                                                              .phase = phase,
                                                              .exit_code = std::nullopt,
                                                              .reason = "",
                                                              .timings = json::Json::object()},
                               ++(*seqs)[r.instance_id], org_));
      }
      return out;
    });
  }

  // Scheduler rounds and agent reports until a round appends nothing,
  // checking after each round that no slot has two instances running.
  void settle(pg::Connection& conn, Scheduler& s) {
    for (int round = 0; round < 30; ++round) {
      auto r = s.runOnce(conn);
      ASSERT_TRUE(r.has_value()) << r.error().toString();
      expectOneInstancePerSlot(conn);
      report(conn);
      if (r->events == 0) return;
    }
    ADD_FAILURE() << "the scheduler did not settle";
  }

  void expectOneInstancePerSlot(pg::Connection& conn) {
    const auto rows = instances(conn);
    for (auto it = rows.begin(); it != rows.end(); it = rows.upper_bound(it->first)) {
      EXPECT_EQ(rows.count(it->first), 1U) << "slot " << it->first << " has two instances";
    }
  }

  // Slot -> node of the live instances.
  std::map<int, std::string> slotNodes(pg::Connection& conn) {
    std::map<int, std::string> out;
    for (const auto& [slot, r] : instances(conn)) {
      if (r.desired == "run") out[slot] = r.node_id;
    }
    return out;
  }

  // A heartbeat, with the node's volume capacity when given.
  void heartbeat(pg::Connection& conn, const std::string& node,
                 std::optional<int64_t> capacity = std::nullopt) {
    commit(conn, [&](pg::Transaction& tx) {
      auto hb = recordHeartbeat(tx, fake_, node, "0.1.0", {}, capacity);
      EXPECT_TRUE(hb.has_value());
      return hb && hb->transition ? std::vector<NewEvent>{*hb->transition}
                                  : std::vector<NewEvent>{};
    });
  }

  std::string reason(pg::Connection& conn) {
    return query(conn, "SELECT reason FROM scheduler_status WHERE process_type = 'db'");
  }

  std::string org_ = OrgId::generate().str();
  std::string app_ = AppId::generate().str();
  std::string env_ = EnvId::generate().str();
  std::vector<std::string> nodes_;
  int64_t size_ = 0;
  int64_t report_seq_ = 0;
};

TEST_F(SchedulerVolumesTest, ADeployCreatesEachSlotsVolumesOnItsNodeAndARedeployKeepsThem) {
  auto conn = connect();
  setUpEnv(conn, 10 * kGiB, kGiB, 2);
  deploy(conn);
  Scheduler s(conninfo(), store_, *worker_, fake_, options());
  auto round = s.runOnce(conn);
  ASSERT_TRUE(round.has_value()) << round.error().toString();
  EXPECT_EQ(round->allocations, 2U);
  const auto placed = slotNodes(conn);
  ASSERT_EQ(placed.size(), 2U);
  EXPECT_NE(placed.at(0), placed.at(1));  // spread
  EXPECT_EQ(volumes(conn), (std::vector<std::string>{
                               "uploads-0 " + placed.at(0) + " placed " + std::to_string(kGiB),
                               "uploads-1 " + placed.at(1) + " placed " + std::to_string(kGiB)}));
  EXPECT_EQ(query(conn,
                  "SELECT string_agg((payload->>'origin') || ':' || (payload->>'slot'), ',' "
                  "ORDER BY seq) FROM events WHERE event_type = 'volume.created'"),
            "manifest:0,manifest:1");
  // Each volume's events come before its instance's allocation.
  EXPECT_EQ(query(conn,
                  "SELECT string_agg(event_type, ',' ORDER BY seq) FROM events WHERE "
                  "event_type LIKE 'volume.%' OR event_type = 'instance.allocated'"),
            "volume.created,volume.placed,volume.created,volume.placed,instance.allocated,"
            "instance.allocated");
  settle(conn, s);

  // The nodes' free space now counts the volumes: a second deploy's round
  // reads 9 GiB free on each.
  const std::string rel2 = deploy(conn);
  round = s.runOnce(conn);
  ASSERT_TRUE(round.has_value()) << round.error().toString();
  EXPECT_EQ(round->allocations, 0U);  // stop first: no surge for volumes
  EXPECT_EQ(query(conn, "SELECT count(*) FROM instances_view WHERE desired_state = 'drain'"), "1");
  report(conn);
  settle(conn, s);
  EXPECT_EQ(slotNodes(conn), placed);
  for (const auto& [slot, r] : instances(conn)) EXPECT_EQ(r.release_id, rel2) << slot;
  EXPECT_EQ(query(conn, "SELECT count(*) FROM events WHERE event_type LIKE 'volume.%'"), "4");
  EXPECT_EQ(volumes(conn).size(), 2U);
}

TEST_F(SchedulerVolumesTest, ASlotWhoseNodeIsLostWaitsForIt) {
  auto conn = connect();
  setUpEnv(conn, 10 * kGiB, kGiB, 2);
  deploy(conn);
  Scheduler s(conninfo(), store_, *worker_, fake_, options());
  settle(conn, s);
  const auto placed = slotNodes(conn);
  ASSERT_EQ(placed.size(), 2U);
  const std::string gone = placed.at(1);
  const std::string stays = placed.at(0);
  // `gone` stops heartbeating: unreachable after 30 s, lost 60 s later.
  for (int i = 0; i < 10; ++i) {
    fake_.advance(10s);
    heartbeat(conn, stays);
    ASSERT_TRUE(s.runOnce(conn).has_value());
  }
  EXPECT_EQ(query(conn, "SELECT count(*) FROM instances_view WHERE lost"), "1");
  EXPECT_EQ(reason(conn),
            "waiting for node " + gone + " (holds volume uploads-1): it is unreachable");
  // Not replaced elsewhere: slot 1 has no live instance.
  EXPECT_EQ(query(conn, "SELECT count(*) FROM instances_view WHERE slot = 1 AND NOT lost"), "0");
  EXPECT_EQ(query(conn, "SELECT count(*) FROM events WHERE event_type = 'volume.created'"), "2");
}

TEST_F(SchedulerVolumesTest, NoNodeWithRoomForTheVolumesSaysHowMuchIsNeededAndFree) {
  auto conn = connect();
  setUpEnv(conn, 512 * kMiB, kGiB, 1);
  deploy(conn);
  Scheduler s(conninfo(), store_, *worker_, fake_, options());
  auto round = s.runOnce(conn);
  ASSERT_TRUE(round.has_value()) << round.error().toString();
  EXPECT_EQ(round->allocations, 0U);
  EXPECT_EQ(reason(conn),
            "waiting for volume space: no node has 1 GiB free for a slot's volumes (2 nodes "
            "checked; the most any node has is 512 MiB, on " +
                nodes_.front() + ")");
  EXPECT_TRUE(volumes(conn).empty());
}

}  // namespace
}  // namespace plfm::cp

namespace plfm::cp {
namespace {

// Scaling a process with volumes to 0 drains every slot; the volumes stay.
TEST_F(SchedulerVolumesTest, ScaleToZeroStopsEverySlotAndKeepsTheVolumes) {
  auto conn = connect();
  setUpEnv(conn, 10 * kGiB, kGiB, 1);
  deploy(conn);
  Scheduler s(conninfo(), store_, *worker_, fake_, options());
  settle(conn, s);
  ASSERT_EQ(slotNodes(conn).size(), 1U);
  commit(conn, [&](pg::Transaction&) {
    return std::vector<NewEvent>{
        NewEvent{"env", env_, 3, "env.scale_set", 1, org_,
                 json::dump({{"env_id", env_}, {"org_id", org_}, {"processes", {{"db", 0}}}})}};
  });
  settle(conn, s);
  EXPECT_TRUE(slotNodes(conn).empty());
  EXPECT_EQ(volumes(conn).size(), 1U);
}

}  // namespace
}  // namespace plfm::cp
