#include "plfm/testing/pg_cluster.h"

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
#include "plfm/core/sha256.h"
#include "plfm/core/strings.h"
#include "plfm/pg/migrate.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::testing {
namespace fs = std::filesystem;
namespace {

bool isPostgresProcess(pid_t pid) {
  auto cmd = readFile("/proc/" + std::to_string(pid) + "/cmdline");
  return cmd && cmd->find("postgres") != std::string::npos;
}

void stopPid(pid_t pid) {
  if (pid <= 0 || !processAlive(pid) || !isPostgresProcess(pid)) return;
  ::kill(pid, SIGQUIT);  // immediate shutdown
  for (int i = 0; i < 100 && processAlive(pid); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (processAlive(pid)) ::kill(pid, SIGKILL);
}

Result<void> chownTo(const std::string& path, std::optional<uid_t> uid, std::optional<gid_t> gid) {
  if (!uid) return ok();
  if (::chown(path.c_str(), *uid, gid.value_or(static_cast<gid_t>(-1))) != 0) {
    return errnoError("chown " + path, errno);
  }
  return ok();
}

}  // namespace

std::string PgCluster::defaultBaseDir() {
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/plfm-pgtest";
}

int PgCluster::reapLeftovers(const std::string& base_dir) {
  std::error_code ec;
  int reaped = 0;
  for (const auto& entry : fs::directory_iterator(base_dir, ec)) {
    if (!entry.is_directory()) continue;
    const std::string dir = entry.path().string();
    auto owner = readFile(dir + "/owner");
    if (!owner) {
      // Created but not yet claimed, or claimed by nobody for an hour.
      auto age = fs::file_time_type::clock::now() - fs::last_write_time(entry.path(), ec);
      if (ec || age < std::chrono::hours(1)) continue;
    } else {
      if (pgdirs::ownerAlive(*owner)) continue;  // still live
    }
    if (auto pidfile = readFile(dir + "/data/postmaster.pid")) {
      stopPid(static_cast<pid_t>(std::atoi(pidfile->c_str())));
    }
    fs::remove_all(dir, ec);
    ++reaped;
  }
  return reaped;
}

Result<std::unique_ptr<PgCluster>> PgCluster::start(const PgClusterOptions& options) {
  std::unique_ptr<PgCluster> c(new PgCluster());
  if (auto r = c->init(options); !r) {
    c->stop();
    return unexpected(std::move(r).error());
  }
  return c;
}

Result<void> PgCluster::init(const PgClusterOptions& options) {
  bindir_ = pgdirs::findBindir("initdb");
  if (bindir_.empty()) {
    return Error(errc::kFailedPrecondition,
                 "PostgreSQL server binaries (initdb, postgres) not found; run 'make deps' or "
                 "set PLFM_PG_BINDIR");
  }
  if (::geteuid() == 0) {
    const passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) {
      return Error(errc::kFailedPrecondition,
                   "running as root, but PostgreSQL refuses root and there is no 'postgres' "
                   "user to run it as; run 'make deps' (package postgresql-15 creates it)");
    }
    uid_ = pw->pw_uid;
    gid_ = pw->pw_gid;
  } else {
    const passwd* pw = ::getpwuid(::geteuid());
    if (pw != nullptr) superuser_ = pw->pw_name;
  }
  superuser_ = uid_ ? "postgres" : superuser_;

  const std::string base = options.base_dir.empty() ? defaultBaseDir() : options.base_dir;
  std::error_code ec;
  fs::create_directories(base, ec);
  ::chmod(base.c_str(), 01777);  // shared by every user's test runs, like /tmp
  reapLeftovers(base);

  std::string tmpl = base + "/c-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return errnoError("mkdtemp " + tmpl, errno);
  dir_ = tmpl;
  PLFM_TRY(writeFileAtomic(
      dir_ + "/owner",
      std::to_string(::getpid()) + " " + std::to_string(processStartTime(::getpid())) + "\n"));
  for (const char* sub : {"/data", "/s"}) {
    if (::mkdir((dir_ + sub).c_str(), 0700) != 0) return errnoError("mkdir " + dir_ + sub, errno);
    PLFM_TRY(chownTo(dir_ + sub, uid_, gid_));
  }
  PLFM_TRY(chownTo(dir_, uid_, gid_));
  if (options.watchdog) PLFM_TRY(startWatchdog());

  SpawnOptions so;
  so.uid = uid_;
  so.gid = gid_;
  so.stdout_path = dir_ + "/initdb.log";
  if (auto r = runChecked({bindir_ + "/initdb", "-D", dir_ + "/data", "-U", superuser_, "-A",
                           "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"},
                          so);
      !r) {
    return Error(errc::kInternal, "initdb failed: " + r.error().message());
  }

  PLFM_TRY(trustTcp(options));

  so.stdout_path = dir_ + "/server.log";
  PLFM_ASSIGN_OR_RETURN(server_, spawn({bindir_ + "/postgres",
                                        "-D",
                                        dir_ + "/data",
                                        "-k",
                                        dir_ + "/s",
                                        "-p",
                                        std::to_string(port_),
                                        "-c",
                                        "listen_addresses=" + tcp_host_,
                                        "-c",
                                        "fsync=off",
                                        "-c",
                                        "synchronous_commit=off",
                                        "-c",
                                        "full_page_writes=off",
                                        "-c",
                                        "max_connections=200",
                                        "-c",
                                        "shared_buffers=64MB",
                                        "-c",
                                        "log_min_messages=warning"},
                                       so));
  return waitReady(options.start_timeout);
}

// With a TCP listener: a free port, and pg_hba lines trusting its clients
// (initdb's own trust only loopback).
Result<void> PgCluster::trustTcp(const PgClusterOptions& options) {
  if (options.tcp_listen.empty()) return ok();
  const bool v6 = options.tcp_listen.find(':') != std::string::npos;
  tcp_host_ = options.tcp_listen;
  port_ = freeTcpPort();
  std::string hba;
  for (const std::string& net : options.tcp_trust) hba += "host all all " + net + " trust\n";
  if (options.tcp_trust.empty()) {
    hba += "host all all " + tcp_host_ + (v6 ? "/128" : "/32") + " trust\n";
  }
  const std::string path = dir_ + "/data/pg_hba.conf";
  PLFM_ASSIGN_OR_RETURN(std::string conf, readFile(path));
  conf += hba;
  PLFM_TRY(writeFileAtomic(path, conf, 0600));
  return chownTo(path, uid_, gid_);
}

Result<void> PgCluster::startWatchdog() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return errnoError("pipe2", errno);
  // The script blocks until every writer is gone, i.e. until this process
  // has exited in any way, then stops the server and removes the directory.
  const std::string script =
      "while read -r _; do :; done\n"
      "pid=$(head -n1 \"$1/data/postmaster.pid\" 2>/dev/null)\n"
      "if [ -n \"$pid\" ] && kill -0 \"$pid\" 2>/dev/null; then\n"
      "  kill -QUIT \"$pid\" 2>/dev/null; i=0\n"
      "  while kill -0 \"$pid\" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done\n"
      "  kill -KILL \"$pid\" 2>/dev/null\n"
      "fi\n"
      "rm -rf \"$1\"\n";
  SpawnOptions so;
  so.stdin_fd = fds[0];
  auto p = spawn({"/bin/sh", "-c", script, "plfm-pg-watchdog", dir_}, so);
  ::close(fds[0]);
  if (!p) {
    ::close(fds[1]);
    return unexpected(std::move(p).error());
  }
  watchdog_ = std::move(*p);
  watchdog_fd_ = fds[1];
  return ok();
}

Result<void> PgCluster::waitReady(std::chrono::seconds timeout) {
  const std::string ci = conninfo("postgres") + " connect_timeout=2";
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (PQping(ci.c_str()) == PQPING_OK) return ok();
    if (auto st = server_.poll()) {
      return Error(errc::kInternal, "postgres " + describeWaitStatus(*st) + " during startup:\n" +
                                        tailFile(dir_ + "/server.log", 20));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Error(errc::kDeadlineExceeded, "postgres did not accept connections within " +
                                            std::to_string(timeout.count()) + "s:\n" +
                                            tailFile(dir_ + "/server.log", 20));
}

PgCluster::~PgCluster() { stop(); }

void PgCluster::stop() {
  if (server_.valid() && !server_.poll()) {
    server_.signal(SIGINT);  // fast shutdown: abort sessions, checkpoint, exit
    if (!server_.waitFor(std::chrono::seconds(10))) {
      server_.signal(SIGQUIT);
      if (!server_.waitFor(std::chrono::seconds(5))) server_.signal(SIGKILL);
      server_.wait();
    }
  }
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    dir_.clear();
  }
  if (watchdog_fd_ >= 0) {
    ::close(watchdog_fd_);  // the watchdog finds nothing left to do and exits
    watchdog_fd_ = -1;
    watchdog_.waitFor(std::chrono::seconds(5));
  }
}

std::string PgCluster::conninfo(std::string_view db) const {
  return "host=" + socketDir() + " port=" + std::to_string(port_) + " user=" + superuser_ +
         " dbname=" + std::string(db);
}

std::string PgCluster::tcpConninfo(std::string_view db) const {
  if (tcp_host_.empty()) return "";
  return "host=" + tcp_host_ + " port=" + std::to_string(port_) + " user=" + superuser_ +
         " dbname=" + std::string(db);
}

Result<pg::Connection> PgCluster::admin() { return pg::Connection::connect(conninfo("postgres")); }

Result<std::string> PgCluster::createDatabase(std::string_view template_db) {
  std::string name;
  {
    std::lock_guard lock(mu_);
    name = "t" + std::to_string(++next_db_);
  }
  PLFM_ASSIGN_OR_RETURN(auto conn, admin());
  PLFM_TRY(conn.execScript("CREATE DATABASE " + pg::quoteIdentifier(name) + " TEMPLATE " +
                           pg::quoteIdentifier(template_db)));
  return name;
}

Result<void> PgCluster::ensureTemplate(const std::string& name,
                                       const std::function<Result<void>(pg::Connection&)>& init) {
  std::lock_guard lock(mu_);
  if (templates_.contains(name)) return ok();
  {
    PLFM_ASSIGN_OR_RETURN(auto conn, admin());
    PLFM_TRY(conn.execScript("DROP DATABASE IF EXISTS " + pg::quoteIdentifier(name)));
    PLFM_TRY(conn.execScript("CREATE DATABASE " + pg::quoteIdentifier(name)));
  }
  {
    PLFM_ASSIGN_OR_RETURN(auto conn, pg::Connection::connect(conninfo(name)));
    PLFM_TRY(init(conn));
  }  // closed: a template must have no open connections to be cloned
  templates_.insert(name);
  return ok();
}

Result<PgCluster*> PgCluster::shared() {
  static std::mutex mu;
  static std::unique_ptr<PgCluster> cluster;
  static std::optional<Error> failure;
  std::lock_guard lock(mu);
  if (cluster) return cluster.get();
  if (failure) return *failure;
  auto c = start();
  if (!c) {
    failure = c.error();
    return c.error();
  }
  cluster = std::move(*c);
  return cluster.get();
}

}  // namespace plfm::testing
