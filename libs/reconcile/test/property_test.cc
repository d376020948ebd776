// Property test over random clusters (seeded, so every failure reproduces):
// reconcile, apply, let the agents report, and perturb (deploys, crashing
// releases, scale changes, nodes going away and coming back, crashes) for a
// while; then let it settle. Checked throughout:
//   - memory is never over-committed, and vCPUs stay within the overcommit;
//   - no two instances share an address, and each is in its node's /64;
// and at the fixpoint:
//   - every group runs exactly its count of healthy instances of the release
//     it should run, unless the plan says it waits for capacity and indeed
//     no node can take one more instance;
//   - every deploy has finished.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <set>

#include "cluster.h"
#include "plfm/reconcile/ipv6.h"

namespace plfm::reconcile {
namespace {

using testing::Cluster;

// PLFM_PROPERTY_SEEDS=N runs more (or fewer) seeds, e.g. for a soak run.
int seedCount() {
  const char* env = std::getenv("PLFM_PROPERTY_SEEDS");
  return env != nullptr && std::atoi(env) > 0 ? std::atoi(env) : 200;
}
constexpr int kChaosRounds = 40;

// What the random runs exercised, so a change that makes them trivial shows.
struct Coverage {
  int allocations = 0;
  int drains = 0;
  int restarts = 0;
  int lost = 0;
  int stops = 0;
  int failed = 0;
  int superseded = 0;
  int succeeded = 0;
  int rollbacks = 0;
  int capacity_waits = 0;  // fixpoints that wait for capacity

  void count(const Plan& p) {
    allocations += static_cast<int>(p.allocations.size());
    drains += static_cast<int>(p.drains.size());
    restarts += static_cast<int>(p.restarts.size());
    lost += static_cast<int>(p.lost.size());
    stops += static_cast<int>(p.stops.size());
    rollbacks += static_cast<int>(p.rollbacks.size());
    for (const DeployTransition& t : p.deploys) {
      failed += t.to == DeployStatus::kFailed ? 1 : 0;
      superseded += t.to == DeployStatus::kSuperseded ? 1 : 0;
      succeeded += t.to == DeployStatus::kSucceeded ? 1 : 0;
    }
  }
};

class World {
 public:
  World(std::uint64_t seed, Coverage& coverage) : rng_(seed), coverage_(coverage) {}

  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool chance(int percent) { return pick(1, 100) <= percent; }

  void build() {
    c_.in.config.cpu_overcommit = pick(1, 4);
    const int nodes = pick(1, 10);
    for (int n = 0; n < nodes; ++n) {
      c_.node(fmt::format("node-{:02}", n), pick(1, 8), 1024LL << pick(1, 4));
    }
    const int envs = pick(1, 3);
    for (int e = 0; e < envs; ++e) {
      const std::string env = fmt::format("env-{}", e);
      const std::string dep = fmt::format("dep-{}-1", e);
      for (int g = pick(1, 3); g > 0; --g) {
        c_.group(env, fmt::format("p{}", g), pick(0, 5), "rel-1", 128LL << pick(0, 3), pick(1, 2),
                 dep);
        c_.groupRef(env, fmt::format("p{}", g)).strategy = randomStrategy();
      }
      c_.deploy(env, dep, "rel-1", c_.in.now_ms);
    }
  }

  Strategy randomStrategy() {
    Strategy s = chance(20) ? Strategy{StrategyKind::kImmediate, 0, 0}
                            : Strategy{StrategyKind::kRolling, pick(0, 2), pick(0, 2)};
    s.auto_rollback = !chance(15);
    return s;
  }

  void perturb() {
    if (chance(15)) {  // a new deploy, sometimes of a release that crashes
      const auto& g =
          c_.in.groups[static_cast<size_t>(pick(0, static_cast<int>(c_.in.groups.size()) - 1))];
      const std::string env = g.env_id;
      const std::string rel = fmt::format("rel-{}", ++releases_);
      if (chance(30)) c_.agents.crashing_releases.insert(rel);
      c_.startDeploy(env, fmt::format("dep-x{}", releases_), rel, randomStrategy());
    }
    if (chance(15)) {
      auto& g =
          c_.in.groups[static_cast<size_t>(pick(0, static_cast<int>(c_.in.groups.size()) - 1))];
      g.count = pick(0, 6);
    }
    if (chance(10)) {  // a node goes quiet, or comes back
      Node& n = c_.in.nodes[static_cast<size_t>(pick(0, static_cast<int>(c_.in.nodes.size()) - 1))];
      if (n.state == NodeState::kActive) {
        n.state = NodeState::kUnreachable;
        n.unreachable_since_ms = c_.in.now_ms;
      } else {
        n.state = NodeState::kActive;
      }
    }
    if (chance(10) && !c_.in.instances.empty()) {  // a crash
      Instance& i = c_.in.instances[static_cast<size_t>(
          pick(0, static_cast<int>(c_.in.instances.size()) - 1))];
      if (i.phase == Phase::kHealthy) {
        i.phase = Phase::kExited;
        i.exit_code = 137;
        i.phase_since_ms = c_.in.now_ms;
      }
    }
  }

  // Memory and vCPUs per node, and addresses, over everything not stopped.
  void checkInvariants(const std::string& where) {
    std::map<std::string, std::pair<std::int64_t, std::int64_t>> used;
    std::set<std::string> addresses;
    std::map<std::string, const Node*> nodes;
    for (const Node& n : c_.in.nodes) nodes[n.id] = &n;
    for (const Instance& i : c_.in.instances) {
      if (i.phase == Phase::kStopped) continue;
      used[i.node_id].first += i.resources.memory_mb;
      used[i.node_id].second += i.resources.vcpus;
      ASSERT_TRUE(addresses.insert(i.address).second) << where << ": address reused: " << i.address;
      const Node* n = nodes[i.node_id];
      ASSERT_NE(n, nullptr) << where;
      auto a = parseIpv6(i.address);
      auto p = parseIpv6Prefix(n->prefix);
      ASSERT_TRUE(a && p && a->hi == p->address.hi && a->lo >= 2) << where << ": " << i.address;
    }
    for (const auto& [node, use] : used) {
      const Node* n = nodes[node];
      ASSERT_LE(use.first, n->memory_mb) << where << ": memory over-committed on " << node;
      ASSERT_LE(use.second, static_cast<std::int64_t>(n->cores) * c_.in.config.cpu_overcommit)
          << where << ": vCPUs over-committed on " << node;
    }
  }

  // True if some active, schedulable node could take `r` right now.
  bool anyNodeFits(const Resources& r) {
    std::map<std::string, std::pair<std::int64_t, std::int64_t>> used;
    for (const Instance& i : c_.in.instances) {
      if (i.phase == Phase::kStopped) continue;
      used[i.node_id].first += i.resources.memory_mb;
      used[i.node_id].second += i.resources.vcpus;
    }
    for (const Node& n : c_.in.nodes) {
      if (n.state != NodeState::kActive || n.cordoned || n.draining) continue;
      if (used[n.id].first + r.memory_mb <= n.memory_mb &&
          used[n.id].second + r.vcpus <=
              static_cast<std::int64_t>(n.cores) * c_.in.config.cpu_overcommit) {
        return true;
      }
    }
    return false;
  }

  DeployStatus statusOf(const std::string& deploy) {
    for (const Deploy& d : c_.in.deploys) {
      if (d.id == deploy) return d.status;
    }
    return DeployStatus::kSucceeded;
  }

  void checkConverged(const Plan& plan, const std::string& where) {
    std::map<std::pair<std::string, std::string>, const Pending*> pending;
    for (const Pending& p : plan.pending) pending[{p.env_id, p.process}] = &p;
    for (const Group& g : c_.in.groups) {
      const bool failed = statusOf(g.target.deploy_id) == DeployStatus::kFailed;
      // Without auto_rollback a failed deploy holds its group as it is.
      if (failed && !g.strategy.auto_rollback) continue;
      const Revision& r = failed ? g.stable : g.target;
      const int want = r.release_id.empty() ? 0 : g.count;
      const auto* p = pending[{g.env_id, g.process}];
      const int healthy = c_.healthy(g.env_id, g.process, r.release_id);
      const auto live = c_.live(g.env_id, g.process).size();
      if (healthy == want && live == static_cast<size_t>(want)) continue;
      ASSERT_NE(p, nullptr) << where << ": " << g.env_id << "/" << g.process << " has " << live
                            << " live, " << healthy << " healthy of " << want;
      ASSERT_NE(p->reason.find("waiting for capacity"), std::string::npos)
          << where << ": " << p->reason;
      ASSERT_FALSE(anyNodeFits(r.resources)) << where << ": claims no capacity: " << p->reason;
    }
    for (const Deploy& d : c_.in.deploys) {
      if (d.status != DeployStatus::kPending && d.status != DeployStatus::kInProgress) continue;
      // Only a rollout that waits for capacity may still be running.
      bool blocked = false;
      for (const Pending& p : plan.pending) {
        blocked = blocked || (p.env_id == d.env_id &&
                              p.reason.find("waiting for capacity") != std::string::npos);
      }
      ASSERT_TRUE(blocked) << where << ": deploy " << d.id << " still " << toString(d.status);
    }
  }

  void run(std::uint64_t seed) {
    build();
    for (int round = 0; round < 400; ++round) {
      const std::string where = fmt::format("seed {} round {}", seed, round);
      if (round < kChaosRounds) perturb();
      if (round == kChaosRounds) {  // calm: every node back, nothing crashes any more
        for (Node& n : c_.in.nodes) n.state = NodeState::kActive;
        c_.agents.crashing_releases.clear();
      }
      Plan plan = c_.reconcile();
      coverage_.count(plan);
      if (round > kChaosRounds && plan.noActions()) {
        checkConverged(plan, where);
        for (const Pending& p : plan.pending) {
          if (p.reason.find("waiting for capacity") != std::string::npos) {
            ++coverage_.capacity_waits;
            break;
          }
        }
        return;
      }
      c_.apply(plan);
      checkInvariants(where);
      c_.in.now_ms += std::int64_t{1000} * pick(1, 20);
      c_.agents.report(c_.in);
      if (::testing::Test::HasFatalFailure()) return;
    }
    FAIL() << "seed " << seed << ": no fixpoint after 400 rounds";
  }

 private:
  std::mt19937_64 rng_;
  Coverage& coverage_;
  Cluster c_;
  int releases_ = 1;
};

TEST(ReconcilePropertyTest, RandomClustersStayConsistentAndConverge) {
  Coverage cov;
  const auto seeds = static_cast<std::uint64_t>(seedCount());
  for (std::uint64_t seed = 1; seed <= seeds; ++seed) {
    World w(seed, cov);
    w.run(seed);
    if (HasFatalFailure()) return;
  }
  std::printf(
      "coverage: %d allocations, %d drains, %d restarts, %d lost, %d stops, deploys: %d "
      "succeeded, %d failed, %d superseded, %d rolled back; %d fixpoints wait for capacity\n",
      cov.allocations, cov.drains, cov.restarts, cov.lost, cov.stops, cov.succeeded, cov.failed,
      cov.superseded, cov.rollbacks, cov.capacity_waits);
  for (int n : {cov.allocations, cov.drains, cov.restarts, cov.lost, cov.stops, cov.succeeded,
                cov.failed, cov.superseded, cov.rollbacks, cov.capacity_waits}) {
    EXPECT_GT(n, 0);
  }
}

}  // namespace
}  // namespace plfm::reconcile
