// control_plane_bench: drives the real plfm-control-plane binary on loopback
// against a real PostgreSQL (started like the test harness does) and prints:
//   - mutation latency with read-your-writes (p50/p99) at concurrency 1 and 32,
//     and the sustained mutation rate;
//   - raw event appends/s through EventStore, unbatched and batched.
//
//   bench/control_plane_bench [--mutations N] [--appends N] [--concurrency 1,32]
//
// Figures go to docs/benchmarks.md; nothing here asserts on time.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "event_store.h"
#include "plfm/core/json.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"
#include "plfm/http/http.h"
#include "plfm/testing/pg_cluster.h"
#include "plfm/testing/temp_dir.h"
#include "schema.h"

using namespace plfm;
using Steady = std::chrono::steady_clock;

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "control_plane_bench: %s\n", what.c_str());
  std::exit(1);
}

double pct(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

struct Server {
  Process proc;
  std::string base;
  std::string token;
};

Server startServer(const std::string& bin, const std::string& conninfo,
                   const plfm::testing::TempDir& dir) {
  SpawnOptions o;
  o.stdout_path = dir.file("cp.out");
  o.stderr_path = dir.file("cp.log");
  o.env = {"PLFM_CP_LOG_LEVEL=warn"};
  auto p = spawn(
      {bin, "serve", "--listen", "[::1]:0", "--database", conninfo, "--state-dir", dir.path()}, o);
  if (!p) die(p.error().toString());
  Server s{std::move(*p), "", ""};
  for (int i = 0; i < 300 && s.base.empty(); ++i) {
    auto out = readFile(dir.file("cp.out"));
    if (out && out->find("listening ") != std::string::npos) {
      std::string line = std::string(trim(out->substr(out->find("listening ") + 10)));
      s.base = "http://" + line.substr(0, line.find(','));
    }
    if (s.proc.poll()) die("control plane exited:\n" + tailFile(dir.file("cp.log"), 20));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (s.base.empty()) die("control plane did not start");
  s.token = std::string(trim(readFile(dir.file("admin-token")).value_or("")));
  return s;
}

// A counter's value from the server's /metrics (0 when absent).
double metric(http::Client& client, const std::string& name) {
  auto r = client.send("GET", "/metrics", http::Headers{}, "");
  if (!r || r->status != 200) return 0;
  const std::string key = "\n" + name + " ";
  const size_t at = r->body.find(key);
  return at == std::string::npos ? 0 : std::atof(r->body.c_str() + at + key.size());
}

http::Headers authHeaders(const std::string& token, const std::string& key) {
  http::Headers h;
  h.set("Authorization", "Bearer " + token);
  h.set("Content-Type", "application/json");
  if (!key.empty()) h.set("Idempotency-Key", key);
  return h;
}

struct MutationResult {
  std::vector<double> latencies_ms;
  double seconds = 0;
  int errors = 0;
};

// `concurrency` clients each create `per_client` apps in one org.
MutationResult runMutations(const Server& s, const std::string& org, int concurrency,
                            int per_client, const std::string& tag) {
  MutationResult res;
  std::vector<std::vector<double>> lat(static_cast<size_t>(concurrency));
  std::atomic<int> errors{0};
  const auto start = Steady::now();
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(concurrency));
  for (int c = 0; c < concurrency; ++c) {
    threads.emplace_back([&, c] {
      http::Client client(s.base);
      for (int i = 0; i < per_client; ++i) {
        const std::string name = tag + "-" + std::to_string(c) + "-" + std::to_string(i);
        const auto t0 = Steady::now();
        auto r =
            client.send("POST", "/v1/orgs/" + org + "/apps", authHeaders(s.token, "bench-" + name),
                        R"({"name":")" + name + R"("})");
        const auto t1 = Steady::now();
        if (!r || r->status != 201) {
          ++errors;
          continue;
        }
        lat[static_cast<size_t>(c)].push_back(
            std::chrono::duration<double, std::milli>(t1 - t0).count());
      }
    });
  }
  for (auto& t : threads) t.join();
  res.seconds = std::chrono::duration<double>(Steady::now() - start).count();
  for (auto& v : lat) res.latencies_ms.insert(res.latencies_ms.end(), v.begin(), v.end());
  res.errors = errors;
  return res;
}

// Appends `total` events from `threads` writers, `batch` events per transaction.
double runAppends(const std::string& conninfo, int threads, int total, int batch) {
  static int run = 0;  // each run appends to fresh aggregates
  const std::string prefix = "app_bench" + std::to_string(++run) + "_";
  RealClock clock;
  cp::EventStore store(clock);
  std::atomic<int> next{0};
  const auto start = Steady::now();
  std::vector<std::thread> ts;
  ts.reserve(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&] {
      auto conn = pg::Connection::connect(conninfo);
      if (!conn) die(conn.error().toString());
      for (;;) {
        const int first = next.fetch_add(batch);
        if (first >= total) break;
        std::vector<cp::NewEvent> evs;
        for (int k = 0; k < batch; ++k) {
          const std::string id = prefix + std::to_string(first + k);
          evs.push_back(cp::NewEvent{
              "app", id, 1, "app.created", 1, "org_bench",
              R"({"app_id":")" + id + R"(","org_id":"org_bench","name":"n","description":""})"});
        }
        auto tx = pg::Transaction::begin(*conn);
        if (!tx) die(tx.error().toString());
        if (auto r = store.append(*tx, {"usr_bench", ""}, evs); !r) die(r.error().toString());
        if (auto c = tx->commit(); !c) die(c.error().toString());
      }
    });
  }
  for (auto& t : ts) t.join();
  return total / std::chrono::duration<double>(Steady::now() - start).count();
}

// The peer: plain single-row INSERT transactions through pgbench on the same
// server, the ceiling for any one-event-per-transaction store on it.
double pgbenchInsertTps(const std::string& conninfo, const plfm::testing::TempDir& dir, int clients,
                        int txPerClient) {
  auto conn = pg::Connection::connect(conninfo);
  if (!conn) die(conn.error().toString());
  if (auto r = conn->execScript("CREATE TABLE IF NOT EXISTS bench_peer (id bigserial PRIMARY "
                                "KEY, actor text, payload jsonb)");
      !r) {
    die(r.error().toString());
  }
  if (!writeFileAtomic(dir.file("peer.sql"),
                       "INSERT INTO bench_peer (actor, payload) VALUES ('usr_bench', "
                       "'{\"app_id\":\"app_x\",\"name\":\"n\"}');\n")) {
    die("cannot write the pgbench script");
  }
  SpawnOptions o;
  o.stdout_path = dir.file("pgbench.out");
  auto p = spawn({"/usr/lib/postgresql/15/bin/pgbench", "-n", "-f", dir.file("peer.sql"), "-c",
                  std::to_string(clients), "-j", std::to_string(std::min(clients, 2)), "-t",
                  std::to_string(txPerClient), conninfo},
                 o);
  if (!p || exitCodeOf(p->wait()) != 0) die("pgbench failed:\n" + tailFile(o.stdout_path, 10));
  const std::string out = readFile(o.stdout_path).value_or("");
  const size_t at = out.rfind("tps = ");  // the file accumulates runs
  return at == std::string::npos ? 0 : std::atof(out.c_str() + at + 6);
}

}  // namespace

int main(int argc, char** argv) {
  int mutations = 2000;
  int appends = 20000;
  std::vector<int> levels = {1, 32};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--mutations") mutations = std::atoi(argv[i + 1]);
    if (a == "--appends") appends = std::atoi(argv[i + 1]);
    if (a == "--concurrency") {
      levels.clear();
      for (const char* c = argv[i + 1]; *c != '\0';) {
        levels.push_back(std::atoi(c));
        while (*c != '\0' && *c != ',') ++c;
        if (*c == ',') ++c;
      }
    }
  }
  auto cluster = testing::PgCluster::start();
  if (!cluster) die(cluster.error().toString());
  auto db = (*cluster)->createDatabase();
  if (!db) die(db.error().toString());
  const std::string conninfo = (*cluster)->conninfo(*db);
  plfm::testing::TempDir dir("plfm-bench");
  Server s = startServer(PLFM_CONTROL_PLANE_BIN, conninfo, dir);

  http::Client admin(s.base);
  auto org =
      admin.send("POST", "/v1/orgs", authHeaders(s.token, "bench-org"), R"({"name":"bench"})");
  if (!org || org->status != 201) die("cannot create the bench org");
  const std::string orgId = json::parse(org->body).value_or(json::Json())["id"];

  std::printf("control_plane_bench: PostgreSQL 15 (fsync off, Unix socket), server on %s\n",
              s.base.c_str());
  std::printf("%-34s %10s %10s %10s %12s\n", "mutation (POST app, RYW)", "requests", "p50 ms",
              "p99 ms", "mutations/s");
  runMutations(s, orgId, 4, 25, "warm");  // warm connections and caches
  std::vector<std::string> batching;
  for (int conc : levels) {
    const int per = std::max(1, mutations / conc);
    const double commands = metric(admin, "plfm_group_commit_commands_total");
    const double batches = metric(admin, "plfm_group_commit_batches_total");
    auto r = runMutations(s, orgId, conc, per, "c" + std::to_string(conc));
    std::printf("%-34s %10zu %10.2f %10.2f %12.0f%s\n",
                ("concurrency " + std::to_string(conc)).c_str(), r.latencies_ms.size(),
                pct(r.latencies_ms, 0.5), pct(r.latencies_ms, 0.99),
                static_cast<double>(r.latencies_ms.size()) / r.seconds,
                r.errors > 0 ? (" (" + std::to_string(r.errors) + " errors)").c_str() : "");
    const double b = metric(admin, "plfm_group_commit_batches_total") - batches;
    if (b > 0) {
      batching.push_back(
          "concurrency " + std::to_string(conc) + ": " +
          std::to_string((metric(admin, "plfm_group_commit_commands_total") - commands) / b)
              .substr(0, 4) +
          " commands per group commit");
    }
  }
  for (const auto& line : batching) std::printf("  (%s)\n", line.c_str());
  s.proc.signal(SIGTERM);
  s.proc.wait();

  std::printf("\n%-34s %10s\n", "raw appends (EventStore)", "events/s");
  for (auto [threads, batch] :
       {std::pair{1, 1}, std::pair{8, 1}, std::pair{1, 100}, std::pair{4, 100}}) {
    const double rate = runAppends(conninfo, threads, batch == 1 ? appends / 4 : appends, batch);
    std::printf(
        "%-34s %10.0f\n",
        (std::to_string(threads) + " writer(s), " + std::to_string(batch) + " event(s)/tx").c_str(),
        rate);
  }
  std::printf("\n%-34s %10s\n", "peer: pgbench INSERT (same server)", "rows/s");
  for (int clients : {1, 8}) {
    std::printf("%-34s %10.0f\n", (std::to_string(clients) + " client(s), 1 row/tx").c_str(),
                pgbenchInsertTps(conninfo, dir, clients, 5000 / clients));
  }
  return 0;
}
