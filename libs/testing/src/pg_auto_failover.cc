#include "plfm/testing/pg_auto_failover.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "pg_dirs.h"
#include "plfm/core/strings.h"
#include "plfm/pg/pg.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::testing {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kHost = "127.0.0.1";
constexpr std::string_view kMonitorDb = "pg_auto_failover";

std::string findAutoctl() {
  for (const char* p : {"/usr/bin/pg_autoctl", "/usr/local/bin/pg_autoctl"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "";
}

// The sh script both the watchdog and reapLeftovers() run on a formation dir
// ($1): kill every recorded process group and every postmaster, remove it.
constexpr std::string_view kKillScript =
    "for g in $(cat \"$1/pgids\" 2>/dev/null); do kill -KILL \"-$g\" 2>/dev/null; done\n"
    "for f in \"$1\"/*/postmaster.pid; do\n"
    "  pid=$(head -n1 \"$f\" 2>/dev/null)\n"
    "  [ -n \"$pid\" ] && kill -KILL \"$pid\" 2>/dev/null\n"
    "done\n"
    "rm -rf \"$1\"\n";

bool ownerAlive(const std::string& dir) {
  auto owner = readFile(dir + "/owner");
  return owner && pgdirs::ownerAlive(*owner);
}

bool isPrimaryState(std::string_view s) {
  return s == "primary" || s == "wait_primary" || s == "single";
}

}  // namespace

std::string PgFormation::defaultBaseDir() {
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/plfm-pgaf";
}

int PgFormation::reapLeftovers(const std::string& base_dir) {
  std::error_code ec;
  int reaped = 0;
  for (const auto& entry : fs::directory_iterator(base_dir, ec)) {
    if (!entry.is_directory()) continue;
    const std::string dir = entry.path().string();
    if (ownerAlive(dir)) continue;
    if (!fs::exists(dir + "/owner")) {
      auto age = fs::file_time_type::clock::now() - fs::last_write_time(entry.path(), ec);
      if (ec || age < std::chrono::hours(1)) continue;  // being created
    }
    (void)runChecked({"/bin/sh", "-c", std::string(kKillScript), "plfm-pgaf-reap", dir}, {});
    ++reaped;
  }
  return reaped;
}

Result<std::unique_ptr<PgFormation>> PgFormation::start(const PgFormationOptions& options) {
  std::unique_ptr<PgFormation> f(new PgFormation());
  if (auto r = f->init(options); !r) {
    f->stop();
    return unexpected(std::move(r).error());
  }
  return f;
}

Result<void> PgFormation::init(const PgFormationOptions& options) {
  bindir_ = pgdirs::findBindir("pg_ctl");
  if (bindir_.empty() || findAutoctl().empty()) {
    return Error(errc::kFailedPrecondition,
                 "pg_autoctl or the PostgreSQL server binaries not found; run 'make deps' "
                 "(packages pg-auto-failover-cli, postgresql-15-auto-failover)");
  }
  if (::geteuid() == 0) {
    const passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) {
      return Error(errc::kFailedPrecondition,
                   "running as root, but there is no 'postgres' user to run PostgreSQL as");
    }
    uid_ = pw->pw_uid;
    gid_ = pw->pw_gid;
  } else if (const passwd* pw = ::getpwuid(::geteuid()); pw != nullptr) {
    user_ = pw->pw_name;
  }
  timeouts_ = options.timeouts;

  const std::string base = options.base_dir.empty() ? defaultBaseDir() : options.base_dir;
  std::error_code ec;
  fs::create_directories(base, ec);
  ::chmod(base.c_str(), 01777);
  reapLeftovers(base);
  std::string tmpl = base + "/f-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return errnoError("mkdtemp " + tmpl, errno);
  dir_ = tmpl;
  PLFM_TRY(writeFileAtomic(
      dir_ + "/owner",
      std::to_string(::getpid()) + " " + std::to_string(processStartTime(::getpid())) + "\n"));
  if (uid_ && ::chown(dir_.c_str(), *uid_, *gid_) != 0) return errnoError("chown " + dir_, errno);
  // pg_autoctl's runtime dir (XDG_RUNTIME_DIR below) must exist, or its pid
  // files go to a /tmp/pg_autoctl shared by everything on the machine.
  for (const char* sub : {"/x", "/x/run"}) {
    const std::string d = dir_ + sub;
    if (::mkdir(d.c_str(), 0700) != 0) return errnoError("mkdir " + d, errno);
    if (uid_ && ::chown(d.c_str(), *uid_, *gid_) != 0) return errnoError("chown " + d, errno);
  }
  if (options.watchdog) PLFM_TRY(startWatchdog());

  monitor_port_ = freeTcpPort();
  for (int i = 0; i < kNodes; ++i) ports_.push_back(freeTcpPort());
  keepers_.resize(kNodes);
  const auto deadline = std::chrono::steady_clock::now() + options.start_timeout;
  PLFM_TRY(startMonitor(deadline));
  // One node at a time: the first registers as `single` and is the primary;
  // the second is cloned from it and becomes its synchronous standby.
  for (int i = 0; i < kNodes; ++i) PLFM_TRY(createNode(i, deadline));
  return waitHealthy(std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now()));
}

Result<void> PgFormation::startWatchdog() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return errnoError("pipe2", errno);
  std::string script = "while read -r _; do :; done\n";
  script += kKillScript;
  SpawnOptions so;
  so.stdin_fd = fds[0];
  auto p = spawn({"/bin/sh", "-c", script, "plfm-pgaf-watchdog", dir_}, so);
  ::close(fds[0]);
  if (!p) {
    ::close(fds[1]);
    return unexpected(std::move(p).error());
  }
  watchdog_ = std::move(*p);
  watchdog_fd_ = fds[1];
  return ok();
}

std::string PgFormation::pgdata(int node) const {
  return dir_ + (node < 0 ? std::string("/mon") : "/n" + std::to_string(node + 1));
}

// pg_autoctl as the postgres user (as root), in a session of its own, with
// its config, state and pid files inside the dir.
Result<Process> PgFormation::runAutoctl(const std::vector<std::string>& args,
                                        const std::string& log) {
  std::vector<std::string> argv{findAutoctl()};
  argv.insert(argv.end(), args.begin(), args.end());
  SpawnOptions so;
  so.uid = uid_;
  so.gid = gid_;
  so.stdout_path = dir_ + "/" + log;
  so.cwd = dir_;
  so.env = {"PATH=" + bindir_ + ":/usr/bin:/bin",
            "PG_CONFIG=" + bindir_ + "/pg_config",
            "HOME=" + dir_,
            "XDG_CONFIG_HOME=" + dir_ + "/x/config",
            "XDG_DATA_HOME=" + dir_ + "/x/data",
            "XDG_RUNTIME_DIR=" + dir_ + "/x/run",
            "PGUSER=" + user_};
  PLFM_ASSIGN_OR_RETURN(auto p, spawn(argv, so));
  // Recorded before anything else can happen: the watchdog kills this group.
  auto pgids = readFile(dir_ + "/pgids").value_or("");
  pgids += std::to_string(p.pid()) + "\n";
  PLFM_TRY(writeFileAtomic(dir_ + "/pgids", pgids));
  return p;
}

Result<void> PgFormation::autoctlChecked(const std::vector<std::string>& args,
                                         const std::string& log) {
  PLFM_ASSIGN_OR_RETURN(auto p, runAutoctl(args, log));
  const pid_t group = p.pid();
  const auto st = p.waitOrKill(std::chrono::seconds(90), true);
  // `create` leaves its postgres supervisor behind; the node's keeper
  // (restartNode) runs its own.
  ::kill(-group, SIGKILL);
  if (!st || exitCodeOf(*st) != 0) {
    return Error(errc::kInternal, "pg_autoctl " + args.front() + " " + args[1] + " failed (" +
                                      (st ? describeWaitStatus(*st) : "timed out") + "):\n" +
                                      tailFile(dir_ + "/" + log, 15));
  }
  return ok();
}

Result<void> PgFormation::startMonitor(std::chrono::steady_clock::time_point deadline) {
  PLFM_ASSIGN_OR_RETURN(
      monitor_, runAutoctl({"create", "monitor", "--pgdata", pgdata(-1), "--pgport",
                            std::to_string(monitor_port_), "--hostname", std::string(kHost),
                            "--listen", std::string(kHost), "--auth", "trust", "--no-ssl", "--run"},
                           "monitor.log"));
  // Ready once the extension is there and its role can connect.
  const std::string node_ci = "host=" + std::string(kHost) +
                              " port=" + std::to_string(monitor_port_) +
                              " user=autoctl_node dbname=pg_auto_failover connect_timeout=2";
  for (;;) {
    if (auto c = pg::Connection::connect(node_ci)) {
      auto rs = c->exec("SELECT count(*) FROM pg_extension WHERE extname = 'pgautofailover'");
      if (rs && rs->text(0, 0) == "1") break;
    }
    if (monitor_.poll()) {
      return Error(errc::kInternal,
                   "the monitor exited during startup:\n" + tailFile(dir_ + "/monitor.log", 20));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Error(errc::kDeadlineExceeded,
                   "the monitor did not start in time:\n" + tailFile(dir_ + "/monitor.log", 20));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  PLFM_ASSIGN_OR_RETURN(auto mon, pg::Connection::connect(monitorConninfo()));
  const std::pair<std::string_view, int> gucs[] = {
      {"health_check_period", timeouts_.health_check_period_ms},
      {"health_check_timeout", timeouts_.health_check_timeout_ms},
      {"health_check_max_retries", timeouts_.health_check_max_retries},
      {"health_check_retry_delay", timeouts_.health_check_retry_delay_ms},
      {"node_considered_unhealthy_timeout", timeouts_.node_considered_unhealthy_timeout_ms},
      {"primary_demote_timeout", timeouts_.primary_demote_timeout_ms}};
  for (const auto& [name, value] : gucs) {
    std::string sql = "ALTER SYSTEM SET pgautofailover.";
    sql += name;
    sql += " = ";
    sql += std::to_string(value);
    PLFM_TRY(mon.execScript(sql));
  }
  PLFM_TRY(mon.execScript("SELECT pg_reload_conf()"));
  return ok();
}

Result<void> PgFormation::createNode(int node, std::chrono::steady_clock::time_point deadline) {
  const std::string name = "n" + std::to_string(node + 1);
  const std::string monitor_uri = "postgres://autoctl_node@" + std::string(kHost) + ":" +
                                  std::to_string(monitor_port_) +
                                  "/pg_auto_failover?sslmode=disable";
  // Created without --run, so the keeper's timeouts are set before it runs.
  PLFM_TRY(autoctlChecked({"create",     "postgres",
                           "--pgdata",   pgdata(node),
                           "--pgport",   std::to_string(ports_[static_cast<size_t>(node)]),
                           "--hostname", std::string(kHost),
                           "--listen",   std::string(kHost),
                           "--name",     name,
                           "--auth",     "trust",
                           "--no-ssl",   "--monitor",
                           monitor_uri,  "--replication-quorum",
                           "true",       "--candidate-priority",
                           "50"},
                          name + "-create.log"));
  PLFM_TRY(autoctlChecked(
      {"config", "set", "--pgdata", pgdata(node), "timeout.network_partition_timeout",
       std::to_string(timeouts_.network_partition_timeout_s)},
      name + "-create.log"));
  PLFM_TRY(restartNode(node));
  return waitNodeState(node, node == 0 ? "single" : "secondary", deadline);
}

Result<void> PgFormation::waitNodeState(int node, std::string_view state,
                                        std::chrono::steady_clock::time_point deadline) {
  const std::string name = "n" + std::to_string(node + 1);
  for (;;) {
    if (auto mon = pg::Connection::connect(monitorConninfo())) {
      auto rs = mon->exec(
          "SELECT reportedstate::text = $2 AND goalstate::text = $2 FROM pgautofailover.node "
          "WHERE nodename = $1",
          {name, std::string(state)});
      if (rs && rs->rows() == 1 && rs->text(0, 0) == "t") return ok();
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Error(errc::kDeadlineExceeded, "node " + name + " did not reach state " +
                                                std::string(state) + " in time:\n" +
                                                tailFile(dir_ + "/" + name + ".log", 20));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

std::string PgFormation::conninfo(std::string_view db) const {
  std::string hosts;
  std::string ports;
  for (int p : ports_) {
    if (!hosts.empty()) {
      hosts += ',';
      ports += ',';
    }
    hosts += kHost;
    ports += std::to_string(p);
  }
  std::string out =
      "host=" + hosts + " port=" + ports + " user=" + user_ + " connect_timeout=5 dbname=";
  out += db;
  out += " target_session_attrs=read-write";
  return out;
}

std::string PgFormation::nodeConninfo(int node, std::string_view db) const {
  std::string out = "host=" + std::string(kHost) +
                    " port=" + std::to_string(ports_.at(static_cast<size_t>(node))) +
                    " user=" + user_ + " connect_timeout=2 dbname=";
  out += db;
  return out;
}

std::string PgFormation::monitorConninfo() const {
  std::string out = "host=" + std::string(kHost) + " port=" + std::to_string(monitor_port_) +
                    " user=" + user_ + " connect_timeout=2 dbname=";
  out += kMonitorDb;
  return out;
}

Result<std::optional<int>> PgFormation::primary() {
  PLFM_ASSIGN_OR_RETURN(auto mon, pg::Connection::connect(monitorConninfo()));
  PLFM_ASSIGN_OR_RETURN(auto rs, mon.exec("SELECT nodename, reportedstate::text, goalstate::text "
                                          "FROM pgautofailover.node ORDER BY nodeid"));
  for (int r = 0; r < rs.rows(); ++r) {
    const std::string_view reported = rs.text(r, 1);
    if (isPrimaryState(reported) && reported == rs.text(r, 2)) {
      const std::string_view name = rs.text(r, 0);  // "n1", "n2"
      return std::optional<int>(std::atoi(std::string(name.substr(1)).c_str()) - 1);
    }
  }
  return std::optional<int>();
}

Result<int> PgFormation::waitForPrimary(int not_node, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last = "no primary yet";
  for (;;) {
    auto p = primary();
    if (p && *p && **p != not_node) {
      auto c = pg::Connection::connect(nodeConninfo(**p));
      auto rs = c ? c->exec("SELECT pg_is_in_recovery()") : Result<pg::ResultSet>(c.error());
      if (rs && rs->text(0, 0) == "f") return **p;
      last = rs ? "the new primary is still in recovery" : rs.error().toString();
    } else if (!p) {
      last = p.error().toString();
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Error(errc::kDeadlineExceeded,
                   "no new primary within " + std::to_string(timeout.count()) + " ms: " + last);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

Result<void> PgFormation::waitHealthy(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto mon = pg::Connection::connect(monitorConninfo())) {
      auto rs = mon->exec(
          "SELECT count(*) FILTER (WHERE reportedstate = 'primary' AND goalstate = 'primary'), "
          "count(*) FILTER (WHERE reportedstate = 'secondary' AND goalstate = 'secondary') "
          "FROM pgautofailover.node");
      if (rs && rs->text(0, 0) == "1" && rs->text(0, 1) == "1") return ok();
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Error(errc::kDeadlineExceeded, "the formation did not become healthy in time:\n" +
                                                tailFile(dir_ + "/n1.log", 10) +
                                                tailFile(dir_ + "/n2.log", 10));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

Result<void> PgFormation::killNode(int node) {
  Process& keeper = keepers_.at(static_cast<size_t>(node));
  if (!keeper.valid()) return Error(errc::kFailedPrecondition, "the node is not running");
  // The keeper leads its process group, postgres included.
  if (::kill(-keeper.pid(), SIGKILL) != 0) return errnoError("kill", errno);
  (void)keeper.waitFor(std::chrono::seconds(10));
  keeper = Process();
  return ok();
}

Result<void> PgFormation::restartNode(int node) {
  const std::string name = "n" + std::to_string(node + 1);
  PLFM_ASSIGN_OR_RETURN(keepers_.at(static_cast<size_t>(node)),
                        runAutoctl({"run", "--pgdata", pgdata(node)}, name + ".log"));
  return ok();
}

PgFormation::~PgFormation() { stop(); }

void PgFormation::stop() {
  if (!dir_.empty()) {
    // Data is throwaway: kill -9 every group, then reap our children.
    (void)runChecked({"/bin/sh", "-c", std::string(kKillScript), "plfm-pgaf-stop", dir_}, {});
    dir_.clear();
  }
  for (auto& k : keepers_) {
    if (k.valid()) (void)k.waitFor(std::chrono::seconds(5));
  }
  if (monitor_.valid()) (void)monitor_.waitFor(std::chrono::seconds(5));
  if (watchdog_fd_ >= 0) {
    ::close(watchdog_fd_);
    watchdog_fd_ = -1;
    watchdog_.waitFor(std::chrono::seconds(5));
  }
}

}  // namespace plfm::testing
