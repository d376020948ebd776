#include "dev_formation.h"

#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>

#include <filesystem>

#include "dev_process.h"
#include "plfm/core/process.h"
#include "plfm/core/sha256.h"
#include "plfm/core/strings.h"

namespace plfm::vt::dev {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kHost = "127.0.0.1";
constexpr std::string_view kMonitorDb = "pg_auto_failover";

// The database superuser: pg_autoctl's initdb names it after the OS user it
// runs as (postgres as root, else whoever runs vt).
std::string superuser() {
  if (runsPostgresAsPostgres()) return "postgres";
  const passwd* pw = ::getpwuid(::geteuid());
  return pw != nullptr ? std::string(pw->pw_name) : std::string("postgres");
}

std::vector<std::string_view> fields(std::string_view line, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    const size_t at = line.find(sep);
    out.push_back(line.substr(0, at));
    if (at == std::string_view::npos) return out;
    line.remove_prefix(at + 1);
  }
}

bool isPrimaryState(std::string_view s) {
  return s == "primary" || s == "wait_primary" || s == "single";
}

}  // namespace

Formation::Formation(std::string state_dir, int base_port, std::string pg_bindir)
    : state_dir_(std::move(state_dir)),
      root_(formationRoot(state_dir_)),
      base_port_(base_port),
      bindir_(std::move(pg_bindir)),
      autoctl_bin_(onPath("pg_autoctl")) {}

std::string formationRoot(const std::string& state_dir) {
  if (!runsPostgresAsPostgres()) return state_dir + "/postgres";
  const passwd* pw = ::getpwnam("postgres");
  const std::string home = pw != nullptr && pw->pw_dir != nullptr && pw->pw_dir[0] == '/'
                               ? std::string(pw->pw_dir)
                               : std::string("/var/lib/postgresql");
  return home + "/plfm-dev/" + Sha256::hex(state_dir).substr(0, 16);
}

const std::vector<std::string>& Formation::components() {
  static const std::vector<std::string> kNames = {"pg-monitor", "pg-a", "pg-b"};
  return kNames;
}

int Formation::nodeOf(std::string_view component) {
  if (component == "pg-monitor") return kMonitor;
  if (component == "pg-a") return 0;
  if (component == "pg-b") return 1;
  return -2;
}

std::string Formation::nodeName(int node) { return node == 0 ? "a" : "b"; }

const char* Formation::component(int node) {
  if (node == kMonitor) return "pg-monitor";
  return node == 0 ? "pg-a" : "pg-b";
}

std::string Formation::pgdata(int node) const {
  return root_ + "/" + (node == kMonitor ? std::string("monitor") : nodeName(node));
}

int Formation::port(int node) const { return base_port_ + 1 + node; }

std::string Formation::address(int node) const {
  return std::string(kHost) + ":" + std::to_string(port(node));
}

std::string Formation::conninfo(std::string_view db) const {
  std::string out = "host=";
  out += kHost;
  out += ',';
  out += kHost;
  out += " port=" + std::to_string(port(0)) + "," + std::to_string(port(1));
  out += " user=" + superuser() + " dbname=";
  out += db;
  out += " target_session_attrs=read-write connect_timeout=5";
  return out;
}

std::string Formation::configFile(int node) const {
  // pg_autoctl keeps its config under XDG_CONFIG_HOME, by PGDATA's path.
  return root_ + "/autoctl/config/pg_autoctl" + pgdata(node) + "/pg_autoctl.cfg";
}

bool Formation::createStarted(int node) const { return fs::exists(configFile(node)); }

bool Formation::created(int node) const {
  // The init file says a create has not finished (pg_autoctl resumes it);
  // pg_control is written once initdb or the base backup is complete.
  const std::string init = root_ + "/autoctl/data/pg_autoctl" + pgdata(node) + "/pg_autoctl.init";
  return createStarted(node) && !fs::exists(init) &&
         fs::exists(pgdata(node) + "/global/pg_control");
}

bool Formation::accepting(int node) const {
  // postmaster.pid line 8: "ready" (a primary or the monitor), "standby" (a
  // hot standby that takes read-only connections).
  auto pidfile = readFile(pgdata(node) + "/postmaster.pid");
  if (!pidfile) return false;
  const auto lines = splitLines(*pidfile);
  if (lines.size() < 8) return false;
  // A postgres killed with -9 leaves its file: line 1 is its pid.
  const pid_t pid = std::atoi(std::string(lines[0]).c_str());
  if (pid <= 0 || (::kill(pid, 0) != 0 && errno != EPERM)) return false;
  const std::string_view status = trim(lines[7]);
  return status == "ready" || status == "standby";
}

std::vector<std::string> Formation::autoctl(const std::vector<std::string>& args) const {
  // `env -i`: none of vt's own PG* variables (PGSSLMODE, PGSERVICE, ...)
  // reach pg_autoctl, which would also store PGHOST in its config.
  std::vector<std::string> argv = {"/usr/bin/env", "-i"};
  for (const auto& e : autoctlEnv()) argv.push_back(e);
  argv.push_back(autoctl_bin_);
  argv.insert(argv.end(), args.begin(), args.end());
  return asPostgres(argv);
}

std::vector<std::string> Formation::autoctlEnv() const {
  const std::string home = root_ + "/autoctl";
  std::vector<std::string> env = {
      "PATH=" + bindir_ + ":/usr/bin:/bin", "PG_CONFIG=" + bindir_ + "/pg_config", "HOME=" + home,
      "XDG_CONFIG_HOME=" + home + "/config", "XDG_DATA_HOME=" + home + "/data",
      "XDG_RUNTIME_DIR=" + home + "/run", "PGUSER=" + superuser(),
      // Each postgres's Unix socket in ROOT/sock
      // (pg_autoctl passes it as -k), not in the
      // machine-wide /var/run/postgresql.
      "PGHOST=" + socketDir(), "PG_REGRESS_SOCK_DIR=" + socketDir()};
  for (const char* name : {"LANG", "LC_ALL", "TZ"}) {
    const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe)
    if (v != nullptr) env.push_back(std::string(name) + "=" + v);
  }
  return env;
}

std::vector<std::vector<std::string>> Formation::prepareRootArgvs() const {
  // As postgres: its own dirs, so that nothing in them is created, chmod-ed
  // or chown-ed by root, whom a symlink planted there could redirect.
  return {asPostgres({"/bin/mkdir", "-p", "-m", "0700", root_, root_ + "/autoctl",
                      root_ + "/autoctl/run", socketDir()}),
          asPostgres({"/bin/sh", "-c", R"(printf '%s\n' "$1" > "$2")", "plfm-state-dir", state_dir_,
                      root_ + "/state-dir"})};
}

std::vector<std::string> Formation::removeArgv(const std::string& path) const {
  return asPostgres({"/bin/rm", "-rf", "--", path});
}

std::vector<std::string> Formation::createMonitorArgv() const {
  return autoctl({"create", "monitor", "--pgdata", pgdata(kMonitor), "--pgport",
                  std::to_string(base_port_), "--hostname", std::string(kHost), "--listen",
                  std::string(kHost), "--auth", "trust", "--no-ssl", "--run"});
}

std::vector<std::string> Formation::createNodeArgv(int node) const {
  const std::string monitor_uri = "postgres://autoctl_node@" + std::string(kHost) + ":" +
                                  std::to_string(base_port_) + "/" + std::string(kMonitorDb) +
                                  "?sslmode=disable";
  return autoctl({"create",     "postgres",
                  "--pgdata",   pgdata(node),
                  "--pgport",   std::to_string(port(node)),
                  "--hostname", std::string(kHost),
                  "--listen",   std::string(kHost),
                  "--name",     nodeName(node),
                  "--auth",     "trust",
                  "--no-ssl",   "--monitor",
                  monitor_uri,  "--replication-quorum",
                  "true",       "--candidate-priority",
                  "50"});
}

std::vector<std::string> Formation::partitionTimeoutArgv(int node) const {
  // ADR 0020: a primary that sees neither the monitor nor its standby for
  // this long demotes itself (less than primary_demote_timeout).
  return autoctl(
      {"config", "set", "--pgdata", pgdata(node), "timeout.network_partition_timeout", "3"});
}

std::vector<std::string> Formation::runArgv(int node) const {
  return autoctl({"run", "--pgdata", pgdata(node)});
}

std::vector<std::string> Formation::monitorTimeoutsSql() {
  // ADR 0020, "Values": the values control_plane_pg_failover_test runs with.
  // One statement each: ALTER SYSTEM cannot run in a transaction block.
  return {"ALTER SYSTEM SET pgautofailover.health_check_period = 1000",
          "ALTER SYSTEM SET pgautofailover.health_check_timeout = 1000",
          "ALTER SYSTEM SET pgautofailover.health_check_max_retries = 1",
          "ALTER SYSTEM SET pgautofailover.health_check_retry_delay = 500",
          "ALTER SYSTEM SET pgautofailover.node_considered_unhealthy_timeout = 3000",
          "ALTER SYSTEM SET pgautofailover.primary_demote_timeout = 5000",
          "SELECT pg_reload_conf()"};
}

Result<std::string> Formation::psql(const std::string& target, const std::string& sql,
                                    const std::string& log) const {
  const std::string out = state_dir_ + "/run/psql-" + std::to_string(::getpid()) + ".out";
  SpawnOptions so;
  so.stdout_path = out;
  so.stderr_path = log;
  so.timeout = std::chrono::seconds(30);
  // Nothing of vt's environment (PGSSLMODE and such against a --no-ssl server).
  so.inherit_env = false;
  so.env = {"PATH=/usr/bin:/bin"};
  std::error_code ec;
  fs::remove(out, ec);
  auto r = runChecked(
      {bindir_ + "/psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", target, "-c", sql}, so);
  auto text = readFile(out);
  fs::remove(out, ec);
  if (!r) return Error(errc::kUnavailable, "psql failed: " + r.error().message());
  return text.value_or("");
}

Result<std::string> Formation::monitorSql(const std::string& sql, const std::string& log) const {
  std::string target = "host=";
  target += kHost;
  target += " port=" + std::to_string(base_port_) + " user=" + superuser() + " dbname=";
  target += kMonitorDb;
  target += " connect_timeout=5";
  return psql(target, sql, log);
}

Result<std::vector<FormationNode>> Formation::nodes(const std::string& log) const {
  PLFM_ASSIGN_OR_RETURN(auto out,
                        monitorSql("SELECT nodename, reportedstate, goalstate, health FROM "
                                   "pgautofailover.node ORDER BY nodename",
                                   log));
  return parseFormationNodes(out);
}

Result<void> Formation::ensureDatabase(const std::string& db, const std::string& log) const {
  // The database name is ours ("plfm"), never a user's: the quotes suffice.
  PLFM_ASSIGN_OR_RETURN(
      auto exists,
      psql(conninfo("postgres"), "SELECT 1 FROM pg_database WHERE datname = '" + db + "'", log));
  if (trim(exists) == "1") return ok();
  PLFM_TRY(psql(conninfo("postgres"), "CREATE DATABASE \"" + db + "\"", log));
  return ok();
}

std::vector<FormationNode> parseFormationNodes(std::string_view psql_out) {
  std::vector<FormationNode> out;
  for (const auto line : splitLines(psql_out)) {
    const auto f = fields(trim(line), '|');
    if (f.size() != 4) continue;
    out.push_back({.name = std::string(f[0]),
                   .reported = std::string(f[1]),
                   .goal = std::string(f[2]),
                   .healthy = f[3] == "1"});
  }
  return out;
}

std::string formationPrimary(const std::vector<FormationNode>& nodes) {
  std::string primary;
  for (const auto& n : nodes) {
    if (isPrimaryState(n.reported) && n.reported == n.goal) {
      if (!primary.empty()) return "";  // two: not settled
      primary = n.name;
    }
  }
  return primary;
}

bool formationHealthy(const std::vector<FormationNode>& nodes) {
  int primaries = 0;
  int secondaries = 0;
  for (const auto& n : nodes) {
    if (n.reported != n.goal) return false;
    primaries += n.reported == "primary" ? 1 : 0;
    secondaries += n.reported == "secondary" ? 1 : 0;
  }
  return primaries == 1 && secondaries == 1 && nodes.size() == 2;
}

}  // namespace plfm::vt::dev
