// scheduler_bench: the pure scheduling logic (libs/reconcile) on a simulated
// cluster of 5,000 nodes and 100,000 instances. Prints:
//   - placements/s of the Placer alone (filter, spread, least loaded, address);
//   - placements/s of a full reconcile from an empty cluster (diff, placement,
//     reasons, ids): the batch of instance.allocated the control plane writes;
//   - the time of a steady-state reconcile of the full cluster with nothing
//     to do, which the control plane runs after every change;
//   - the time of a reconcile after one node is lost (its instances replaced),
//     and of the first round of a rolling deploy of every env.
// Each figure is the best of --repeat runs, as wall time and as process CPU
// time (the machines are shared: CPU time moves less with other load).
//
//   bench/scheduler_bench [--nodes N] [--instances N] [--seed N] [--repeat N]
//
// makeCluster() and placeAll() are the pieces an end-to-end variant reuses:
// the batch placeAll() returns is what gets appended as events.
// Figures go to docs/benchmarks.md; nothing here asserts on time.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/reconcile/placement.h"
#include "plfm/reconcile/reconcile.h"

using namespace plfm::reconcile;
using Steady = std::chrono::steady_clock;

namespace {

struct Shape {
  int nodes = 5000;
  int instances = 100'000;
  unsigned seed = 1;
};

// Typed-ID-like strings of production length ("inst_" + 26 characters), so
// string costs match the real thing.
std::string fakeId(std::string_view prefix, long n) {
  std::string id(prefix.size() + 27, '0');
  std::copy(prefix.begin(), prefix.end(), id.begin());
  id[prefix.size()] = '_';
  for (size_t i = id.size() - 1; n > 0; --i, n /= 10) id[i] = static_cast<char>('0' + n % 10);
  return id;
}

// A cluster with `shape.nodes` nodes (4 to 32 cores, 2 GiB per core) and
// groups of 1 to 50 instances (256 MiB to 2 GiB, 1 or 2 vCPUs) adding up to
// `shape.instances`, all at release 1, nothing running yet. About 60% of
// the memory is asked for.
Input makeCluster(const Shape& shape) {
  std::mt19937 rng(shape.seed);
  auto pick = [&](std::initializer_list<int> xs) {
    return *(xs.begin() + std::uniform_int_distribution<size_t>(0, xs.size() - 1)(rng));
  };
  Input in;
  in.now_ms = 1'700'000'000'000;
  for (int n = 0; n < shape.nodes; ++n) {
    Node node;
    node.id = fakeId("node", n);
    node.cores = pick({4, 8, 16, 32});
    node.memory_mb = static_cast<std::int64_t>(node.cores) * 2048;
    node.prefix = "fd7a:115c:" + std::to_string(n / 65536 + 1) + ":" +
                  std::to_string(n % 65536 + 1) + "::/64";
    in.nodes.push_back(std::move(node));
  }
  int placed = 0;
  for (long g = 0; placed < shape.instances; ++g) {
    Group group;
    group.env_id = fakeId("env", g / 3);
    group.process = "p" + std::to_string(g % 3);
    group.count = std::min(shape.instances - placed, pick({1, 2, 3, 5, 10, 20, 50}));
    group.target.release_id = fakeId("rel", g / 3);
    group.target.deploy_id = fakeId("dep", g / 3);
    group.target.resources = Resources{pick({1, 1, 2}), pick({256, 512, 1024, 2048})};
    placed += group.count;
    in.groups.push_back(std::move(group));
  }
  return in;
}

// One reconcile of `in`: with nothing running, the batch of placements for
// every desired instance.
Plan placeAll(const Input& in, long& next_id) {
  auto plan = reconcile(in, [&] { return fakeId("inst", next_id++); });
  if (!plan) {
    std::fprintf(stderr, "scheduler_bench: %s\n", plan.error().toString().c_str());
    std::exit(1);
  }
  return std::move(*plan);
}

double seconds(Steady::time_point a, Steady::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Process CPU time: on a shared 2-core machine it moves less than wall time
// when other work competes for the cores.
double cpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Timing {
  double wall = 1e9;
  double cpu = 1e9;
};

// Runs `f` `repeat` times and keeps the best wall and CPU times.
template <class F>
Timing best(int repeat, F f) {
  Timing t;
  for (int r = 0; r < repeat; ++r) {
    const double c0 = cpuSeconds();
    const auto w0 = Steady::now();
    f();
    t.wall = std::min(t.wall, seconds(w0, Steady::now()));
    t.cpu = std::min(t.cpu, cpuSeconds() - c0);
  }
  return t;
}

// The Placer alone: every group's instances, in group order.
void placerOnly(const Input& in, size_t& placements) {
  Placer placer(in.nodes, in.config.cpu_overcommit);
  placements = 0;
  for (const Group& g : in.groups) {
    Placer::Spread spread;
    for (int i = 0; i < g.count; ++i) {
      if (placer.place(g.target.resources, spread)) ++placements;
    }
  }
}

void markAllHealthy(Input& in) {
  for (Instance& i : in.instances) i.phase = Phase::kHealthy;
}

void row(const char* what, const Timing& t, size_t n, const char* unit) {
  auto rate = [n](double secs) { return secs > 0 ? static_cast<double>(n) / secs : 0.0; };
  std::printf("| %-50s | %8.1f | %8.1f | %7zu %-10s | %10.0f | %10.0f |\n", what, t.wall * 1e3,
              t.cpu * 1e3, n, unit, rate(t.wall), rate(t.cpu));
}

}  // namespace

int main(int argc, char** argv) {
  Shape shape;
  int repeat = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    const int value = std::atoi(argv[i + 1]);
    if (flag == "--nodes") {
      shape.nodes = value;
    } else if (flag == "--instances") {
      shape.instances = value;
    } else if (flag == "--seed") {
      shape.seed = static_cast<unsigned>(value);
    } else if (flag == "--repeat") {
      repeat = std::max(1, value);
    } else {
      std::fprintf(stderr,
                   "usage: scheduler_bench [--nodes N] [--instances N] [--seed N] [--repeat N]\n");
      return 2;
    }
  }
  Input in = makeCluster(shape);
  std::printf("scheduler_bench: %zu nodes, %zu groups, %d instances, best of %d\n\n",
              in.nodes.size(), in.groups.size(), shape.instances, repeat);
  std::printf("| %-50s | %8s | %8s | %18s | %10s | %10s |\n", "what", "wall ms", "CPU ms", "work",
              "per s", "per CPU s");
  std::printf("|%s|%s|%s|%s|%s|%s|\n", std::string(52, '-').c_str(), std::string(10, '-').c_str(),
              std::string(10, '-').c_str(), std::string(20, '-').c_str(),
              std::string(12, '-').c_str(), std::string(12, '-').c_str());

  size_t placements = 0;
  const Timing placer = best(repeat, [&] { placerOnly(in, placements); });
  row("Placer only (filter, spread, score, address)", placer, placements, "placements");

  long next_id = 0;
  Plan plan;
  const Timing full = best(repeat, [&] {
    plan = Plan{};  // freeing the previous run's plan is not part of this one
    next_id = 0;
    plan = placeAll(in, next_id);
  });
  row("reconcile from empty (diff, place, reasons, ids)", full, plan.allocations.size(),
      "placements");
  if (plan.allocations.size() != static_cast<size_t>(shape.instances)) {
    std::printf("note: %zu instances wait for capacity\n",
                static_cast<size_t>(shape.instances) - plan.allocations.size());
  }

  applyPlan(in, plan);
  markAllHealthy(in);
  Plan steady;
  const Timing t_steady = best(repeat, [&] {
    steady = Plan{};
    steady = placeAll(in, next_id);
  });
  row("steady state, nothing to do", t_steady, in.instances.size(), "instances");
  if (!steady.noActions()) std::printf("note: the steady state produced actions\n");

  Input lost = in;
  lost.nodes[lost.nodes.size() / 2].state = NodeState::kDown;
  Plan replaced;
  const Timing t_lost = best(repeat, [&] {
    replaced = Plan{};
    replaced = placeAll(lost, next_id);
  });
  row("one node down: write off, replace its instances", t_lost, replaced.allocations.size(),
      "placements");

  Input deploy = in;
  for (Group& g : deploy.groups) {
    g.stable = g.target;
    g.target.release_id += "-2";
    g.target.deploy_id += "-2";
  }
  Plan rollout;
  const Timing t_deploy = best(repeat, [&] {
    rollout = Plan{};
    rollout = placeAll(deploy, next_id);
  });
  row("rolling deploy of every env, first round (surge 1)", t_deploy, rollout.allocations.size(),
      "placements");
  return 0;
}
