// A real PostgreSQL server for tests.
//
// PgCluster runs `initdb` into a temp dir and starts `postgres` listening on a
// Unix socket (and, when asked, also on TCP at one address), with fsync off. A test binary normally
// shares one cluster (PgCluster::shared()) and gives every test a fresh database cloned from a
// template, which takes milliseconds.
//
// No server outlives its test process:
//   - the destructor (run at exit for the shared cluster) stops the server
//     and removes the directory;
//   - a watchdog process holds one end of a pipe from the test process; when
//     the test process dies in any way (crash, abort, SIGKILL) the pipe
//     closes and the watchdog stops the server and removes the directory;
//   - every start first reaps directories whose owner process is gone.
//
// PostgreSQL refuses to run as root. When the tests run as root, the server
// runs as the `postgres` system user (created by Debian's postgresql package).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/process.h"
#include "plfm/core/result.h"
#include "plfm/pg/pg.h"

namespace plfm::testing {

struct PgClusterOptions {
  std::string base_dir;  // empty: $TMPDIR/plfm-pgtest (or /tmp/plfm-pgtest)
  bool watchdog = true;  // tests of the reaper turn it off
  std::chrono::seconds start_timeout{60};
  // Also listen on TCP at this address (IPv4 or IPv6, no brackets) on a
  // free port; empty: the Unix socket only. The address must exist.
  std::string tcp_listen;
  // Networks (CIDR) whose TCP clients pg_hba trusts; empty: the listen
  // address alone.
  std::vector<std::string> tcp_trust;
};

class PgCluster {
 public:
  [[nodiscard]] static Result<std::unique_ptr<PgCluster>> start(
      const PgClusterOptions& options = {});

  // The process-wide cluster, started on first use and stopped at exit.
  [[nodiscard]] static Result<PgCluster*> shared();

  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;
  ~PgCluster();

  [[nodiscard]] const std::string& dir() const { return dir_; }
  [[nodiscard]] std::string socketDir() const { return dir_ + "/s"; }
  [[nodiscard]] pid_t serverPid() const { return server_.pid(); }
  [[nodiscard]] std::string conninfo(std::string_view db = "postgres") const;
  // The same over TCP (PgClusterOptions::tcp_listen); empty without it.
  [[nodiscard]] std::string tcpConninfo(std::string_view db = "postgres") const;
  [[nodiscard]] int port() const { return port_; }

  // Creates a uniquely named database cloned from `template_db`; returns its name.
  [[nodiscard]] Result<std::string> createDatabase(std::string_view template_db = "template1");

  // Creates template database `name` once per cluster, running `init` on it
  // (e.g. applying migrations). Later calls with the same name do nothing.
  [[nodiscard]] Result<void> ensureTemplate(
      const std::string& name, const std::function<Result<void>(pg::Connection&)>& init);

  // Stops the server (fast shutdown, then immediate) and removes the dir.
  void stop();

  // Stops servers and removes directories under `base_dir` whose owner
  // process is gone. Returns how many were reaped.
  static int reapLeftovers(const std::string& base_dir);
  [[nodiscard]] static std::string defaultBaseDir();

 private:
  PgCluster() = default;
  Result<void> init(const PgClusterOptions& options);
  Result<void> startWatchdog();
  Result<void> trustTcp(const PgClusterOptions& options);
  Result<void> waitReady(std::chrono::seconds timeout);
  Result<pg::Connection> admin();

  std::string dir_;
  std::string bindir_;
  std::string superuser_ = "postgres";
  std::string tcp_host_;
  int port_ = 5432;  // names the socket file too
  std::optional<uid_t> uid_;
  std::optional<gid_t> gid_;
  Process server_;
  Process watchdog_;
  int watchdog_fd_ = -1;
  std::mutex mu_;
  int next_db_ = 0;
  std::set<std::string> templates_;
};

}  // namespace plfm::testing
