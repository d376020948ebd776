// scheduler_bench_e2e: the control plane's scheduler end to end on a real
// PostgreSQL, 5,000 nodes and 100,000 instances (the shape of
// scheduler_bench). One scheduler round (Scheduler::runOnce, the code the
// control plane runs) loads the views into the reconciler's Input, places
// every instance, and appends the instance.allocated events in batches in
// one transaction; then the projection worker applies them. Prints:
//   - placements/s end to end up to the commit of the events (load, reconcile,
//     append), and including the projection into instances_view;
//   - the reconcile alone on the same Input (the pure logic, same run);
//   - a steady-state round afterwards (nothing to do), which the control
//     plane runs after changes.
// Each figure is the best of --repeat runs on a fresh copy of the seeded
// database (a template clone), as wall time and as CPU time: this process
// plus every process of the PostgreSQL cluster (its backends, including the
// scheduler's and the projection worker's). The machines are shared, and CPU
// time moves less than wall time when other work competes for the cores.
//
//   bench/scheduler_bench_e2e [--nodes N] [--instances N] [--repeat N] [--batch N]
//
// Figures go to docs/benchmarks.md; nothing here asserts on time.
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "plfm/core/id.h"
#include "plfm/core/json.h"
#include "plfm/core/log.h"
#include "plfm/reconcile/reconcile.h"
#include "plfm/testing/pg_cluster.h"
#include "projections.h"
#include "scheduler.h"
#include "scheduler_input.h"
#include "schema.h"

using namespace plfm;
using Steady = std::chrono::steady_clock;

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "scheduler_bench_e2e: %s\n", what.c_str());
  std::exit(1);
}

template <class T>
T orDie(Result<T> r, const char* what) {
  if (!r) die(std::string(what) + ": " + r.error().toString());
  return std::move(*r);
}
void orDie(Result<void> r, const char* what) {
  if (!r) die(std::string(what) + ": " + r.error().toString());
}

double processCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// CPU seconds (user + system) of the postmaster `server` and its children.
double clusterCpuSeconds(pid_t server) {
  const auto tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  double total = 0;
  DIR* d = opendir("/proc");
  if (d == nullptr) return 0;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in("/proc/" + name + "/stat");
    std::string line;
    if (!std::getline(in, line)) continue;
    // Fields after the command name (in parentheses): state ppid ... utime stime.
    std::istringstream rest(line.substr(line.rfind(')') + 2));
    std::string state;
    long ppid = 0;
    rest >> state >> ppid;
    if (std::stol(name) != server && ppid != server) continue;
    std::string skip;
    for (int i = 0; i < 9; ++i) rest >> skip;  // pgrp .. cmajflt
    double utime = 0;
    double stime = 0;
    rest >> utime >> stime;
    total += (utime + stime) / tick;
  }
  closedir(d);
  return total;
}

double cpuNow(pid_t server) { return processCpuSeconds() + clusterCpuSeconds(server); }

struct Shape {
  int nodes = 5000;
  int instances = 100'000;
  unsigned seed = 1;
};

std::string hex(long n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lx", n);
  return buf;
}

// The desired state as events: nodes (4 to 32 cores, 2 GiB per core), and
// envs of three process types with 1 to 50 instances each (256 MiB to 2 GiB,
// 1 or 2 vCPUs), each env deployed (its deploy succeeded) and scaled, adding
// up to `shape.instances`. Nothing runs yet.
std::vector<cp::NewEvent> desiredState(const Shape& shape) {
  std::mt19937 rng(shape.seed);
  auto pick = [&](std::initializer_list<int> xs) {
    return *(xs.begin() + std::uniform_int_distribution<size_t>(0, xs.size() - 1)(rng));
  };
  std::vector<cp::NewEvent> out;
  for (int n = 0; n < shape.nodes; ++n) {
    const std::string node = NodeId::generate().str();
    const int cores = pick({4, 8, 16, 32});
    json::Json p = {{"node_id", node},
                    {"enrollment_id", EnrollmentId::generate().str()},
                    {"hostname", "n" + std::to_string(n) + ".bench"},
                    {"cores", cores},
                    {"memory_mb", cores * 2048},
                    {"disk_mb", 100'000},
                    {"labels", json::Json::object()},
                    {"wireguard_public_key", std::string(43, 'k') + "="},
                    {"underlay_address", "192.0.2.1"},
                    {"runtimes", {"qemu"}},
                    {"ipv6_prefix", "fd7a:5c00:0:" + hex(n + 1) + "::/64"}};
    out.push_back({"node", node, 1, "node.enrolled", 1, "", json::dump(p)});
  }
  const std::string org = OrgId::generate().str();
  const std::string app = AppId::generate().str();
  out.push_back(
      {"org", org, 1, "org.created", 1, org, json::dump({{"org_id", org}, {"name", "bench"}})});
  out.push_back(
      {"app", app, 1, "app.created", 1, org,
       json::dump({{"app_id", app}, {"org_id", org}, {"name", "bench"}, {"description", ""}})});
  int placed = 0;
  for (long e = 0; placed < shape.instances; ++e) {
    const std::string env = EnvId::generate().str();
    const std::string rel = ReleaseId::generate().str();
    const std::string dep = DeployId::generate().str();
    json::Json processes = json::Json::array();
    json::Json counts = json::Json::object();
    for (int p = 0; p < 3 && placed < shape.instances; ++p) {
      const int count = std::min(shape.instances - placed, pick({1, 2, 3, 5, 10, 20, 50}));
      const std::string name = "p" + std::to_string(p);
      processes.push_back(
          {{"name", name},
           {"command", json::Json::array()},
           {"args", json::Json::array()},
           {"resources",
            {{"vcpus", pick({1, 1, 2})}, {"memory_mb", pick({256, 512, 1024, 2048})}}}});
      counts[name] = count;
      placed += count;
    }
    json::Json manifest = {
        {"app", "bench"},
        {"image", "registry.local/bench:1"},
        {"processes", processes},
        {"deploy", {{"strategy", "rolling"}, {"max_surge", 1}, {"max_unavailable", 0}}}};
    out.push_back({"env", env, 1, "env.created", 1, org,
                   json::dump({{"env_id", env},
                               {"app_id", app},
                               {"org_id", org},
                               {"name", "e" + std::to_string(e)}})});
    out.push_back({"release", rel, 1, "release.created", 1, org,
                   json::dump({{"release_id", rel},
                               {"app_id", app},
                               {"org_id", org},
                               {"image_ref", "registry.local/bench:1"},
                               {"image_digest", "sha256:" + std::string(64, 'b')},
                               {"manifest", manifest}})});
    out.push_back({"deploy", dep, 1, "deploy.created", 1, org,
                   json::dump({{"deploy_id", dep},
                               {"app_id", app},
                               {"env_id", env},
                               {"org_id", org},
                               {"release_id", rel},
                               {"strategy", "rolling"}})});
    out.push_back({"deploy", dep, 2, "deploy.status_changed", 1, org,
                   json::dump({{"deploy_id", dep}, {"status", "succeeded"}, {"reason", ""}})});
    out.push_back({"env", env, 2, "env.scale_set", 1, org,
                   json::dump({{"env_id", env}, {"org_id", org}, {"processes", counts}})});
  }
  return out;
}

// Migrates and seeds the template database, projected.
Result<void> seed(pg::Connection& conn, const Shape& shape) {
  PLFM_TRY(cp::migrateSchema(conn));
  RealClock clock;
  cp::EventStore store(clock);
  const auto events = desiredState(shape);
  for (size_t i = 0; i < events.size(); i += 5000) {
    std::vector<cp::NewEvent> chunk(
        events.begin() + static_cast<long>(i),
        events.begin() + static_cast<long>(std::min(events.size(), i + 5000)));
    PLFM_ASSIGN_OR_RETURN(auto tx, pg::Transaction::begin(conn));
    PLFM_TRY(store.append(tx, {"system:bench", ""}, chunk));
    PLFM_TRY(tx.commit());
  }
  PLFM_TRY(cp::catchUp(conn, 5000));
  // Fresh statistics, as autovacuum would have after a load like this.
  PLFM_TRY(conn.execScript("ANALYZE"));
  return ok();
}

struct Best {
  double e2e_ms = 1e18;  // load + reconcile + write
  double e2e_cpu_ms = 1e18;
  double total_ms = 1e18;  // ... + projection
  double total_cpu_ms = 1e18;
  double pure_ms = 1e18;  // reconcile alone on the same Input
  double pure_cpu_ms = 1e18;
  double steady_ms = 1e18;  // a round with nothing to do
  double steady_cpu_ms = 1e18;
  cp::Scheduler::Round round;
};

void row(const char* what, double ms, double cpu_ms, size_t n, const char* unit) {
  auto rate = [n](double t) { return t > 0 ? static_cast<double>(n) * 1000.0 / t : 0.0; };
  std::printf("| %-58s | %8.0f | %8.0f | %7zu %-10s | %9.0f | %9.0f |\n", what, ms, cpu_ms, n, unit,
              rate(ms), rate(cpu_ms));
}

}  // namespace

int main(int argc, char** argv) {
  Shape shape;
  int repeat = 3;
  size_t batch = 5000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const int value = std::atoi(argv[i + 1]);
    if (flag == "--nodes") {
      shape.nodes = value;
    } else if (flag == "--instances") {
      shape.instances = value;
    } else if (flag == "--repeat") {
      repeat = std::max(1, value);
    } else if (flag == "--batch") {
      batch = static_cast<size_t>(std::max(1, value));
    } else {
      std::fprintf(stderr,
                   "usage: scheduler_bench_e2e [--nodes N] [--instances N] [--repeat N] "
                   "[--batch N]\n");
      return 2;
    }
  }
  log::setLevel(log::Level::kWarn);
  auto* cluster = orDie(testing::PgCluster::shared(), "starting PostgreSQL");
  const std::string tmpl =
      "sched_bench_" + std::to_string(shape.nodes) + "_" + std::to_string(shape.instances);
  const auto seed0 = Steady::now();
  orDie(cluster->ensureTemplate(tmpl, [&](pg::Connection& c) { return seed(c, shape); }),
        "seeding the template");
  std::printf(
      "scheduler_bench_e2e: %d nodes, %d instances, events batched %zu per INSERT, "
      "best of %d (seeded in %.1f s)\n\n",
      shape.nodes, shape.instances, batch, repeat,
      std::chrono::duration<double>(Steady::now() - seed0).count());

  Best best;
  RealClock clock;
  for (int r = 0; r < repeat; ++r) {
    const std::string db = orDie(cluster->createDatabase(tmpl), "cloning the template");
    const std::string conninfo = cluster->conninfo(db);
    cp::ProjectionWorker worker(conninfo, cp::ProjectionWorker::Options{});
    orDie(worker.start(), "starting the projection worker");
    cp::EventStore store(clock);
    cp::Scheduler::Options o;
    o.append_batch = batch;
    double committed_cpu = 0;
    const pid_t server = cluster->serverPid();
    o.on_committed = [&] { committed_cpu = cpuNow(server); };
    o.projection_wait = std::chrono::minutes(10);
    cp::Scheduler scheduler(conninfo, store, worker, clock, o);
    auto conn = orDie(pg::Connection::connect(conninfo), "connecting");

    // The pure reconcile on the very Input the round will load.
    auto state = orDie(cp::sched::loadState(conn, o.reconcile, 1'700'000'000'000), "loading");
    double c0 = cpuNow(server);
    auto p0 = Steady::now();
    auto plan =
        orDie(reconcile::reconcile(state.input, [] { return InstanceId::generate().str(); }),
              "reconciling");
    best.pure_ms = std::min(best.pure_ms,
                            std::chrono::duration<double, std::milli>(Steady::now() - p0).count());
    best.pure_cpu_ms = std::min(best.pure_cpu_ms, (cpuNow(server) - c0) * 1000);
    state = cp::sched::LoadedState{};
    plan = reconcile::Plan{};

    // The round, with its CPU time up to the commit (the projection runs
    // concurrently once the events are committed; its CPU is in the total).
    c0 = cpuNow(server);
    auto round = orDie(scheduler.runOnce(conn), "the scheduler round");
    const double round_cpu = (cpuNow(server) - c0) * 1000;
    const double e2e = round.load_ms + round.reconcile_ms + round.write_ms;
    const double e2e_cpu = (committed_cpu - c0) * 1000;
    if (e2e < best.e2e_ms) {
      best.e2e_ms = e2e;
      best.round = round;
    }
    best.e2e_cpu_ms = std::min(best.e2e_cpu_ms, e2e_cpu);
    best.total_ms = std::min(best.total_ms, e2e + round.project_ms);
    best.total_cpu_ms = std::min(best.total_cpu_ms, round_cpu);
    c0 = cpuNow(server);
    auto steady = orDie(scheduler.runOnce(conn), "the steady round");
    if (steady.events != 0)
      std::printf("note: the steady round appended %zu events\n", steady.events);
    best.steady_ms =
        std::min(best.steady_ms, steady.load_ms + steady.reconcile_ms + steady.write_ms);
    best.steady_cpu_ms = std::min(best.steady_cpu_ms, (cpuNow(server) - c0) * 1000);
    worker.stop();
  }

  const size_t n = best.round.allocations;
  std::printf("| %-58s | %8s | %8s | %18s | %9s | %9s |\n", "what", "wall ms", "CPU ms", "work",
              "per s", "per CPU s");
  std::printf("|%s|%s|%s|%s|%s|%s|\n", std::string(60, '-').c_str(), std::string(10, '-').c_str(),
              std::string(10, '-').c_str(), std::string(20, '-').c_str(),
              std::string(11, '-').c_str(), std::string(11, '-').c_str());
  row("reconcile alone, same Input (pure logic)", best.pure_ms, best.pure_cpu_ms, n, "placements");
  row("round: load views + reconcile + append events, committed", best.e2e_ms, best.e2e_cpu_ms, n,
      "placements");
  row("round + projection into instances_view", best.total_ms, best.total_cpu_ms, n, "placements");
  row("steady round afterwards (load + reconcile, nothing to do)", best.steady_ms,
      best.steady_cpu_ms, n, "instances");
  std::printf(
      "\nbest round: load %.1f ms, reconcile %.1f ms, append+commit %.1f ms, "
      "projection %.1f ms; %zu events, %zu groups pending\n",
      best.round.load_ms, best.round.reconcile_ms, best.round.write_ms, best.round.project_ms,
      best.round.events, best.round.pending);
  if (n != static_cast<size_t>(shape.instances)) {
    std::printf("note: %zu instances wait for capacity\n",
                static_cast<size_t>(shape.instances) - n);
  }
  return 0;
}
