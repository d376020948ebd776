// A PostgreSQL formation with automatic failover, for tests (ADR 0020).
//
// PgFormation starts, with `pg_autoctl` (pg_auto_failover), a monitor, a
// primary and a synchronous standby on 127.0.0.1 (TCP, free ports), in a
// temp dir, with fsync on (pg_autoctl's initdb defaults). The replication
// quorum is on, so a commit returns only once the standby has its WAL
// (synchronous_standby_names = 'ANY 1 (...)'). A test connects with
// conninfo(): both hosts and target_session_attrs=read-write, as the control
// plane is configured in production (docs/operations/ha.md).
//
// Faults: killNode() kills -9 a node's keeper and postgres (a node loss),
// waitForPrimary() waits until the monitor has promoted another node and it
// takes writes, restartNode() runs the lost node's keeper again, which
// rejoins as a standby.
//
// Nothing outlives the test process, as with PgCluster: each pg_autoctl runs
// in a process group of its own, whose ids are listed in `<dir>/pgids`; a
// watchdog holding a pipe from the test process kills those groups and every
// postmaster and removes the dir when the test process dies in any way; the
// destructor does the same; every start first reaps formations whose owner
// is gone. As root, everything runs as the `postgres` user.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/process.h"
#include "plfm/core/result.h"

namespace plfm::testing {

// The failover timeouts (the values ADR 0020 records): the monitor's GUCs and
// the keepers' network partition timeout.
struct PgFailoverTimeouts {
  int health_check_period_ms = 1000;
  int health_check_timeout_ms = 1000;
  int health_check_max_retries = 1;
  int health_check_retry_delay_ms = 500;
  int node_considered_unhealthy_timeout_ms = 3000;
  // The monitor waits this long for a lost primary to demote itself before
  // it promotes the standby; it must exceed network_partition_timeout_s, by
  // which a partitioned primary has demoted itself.
  int primary_demote_timeout_ms = 5000;
  int network_partition_timeout_s = 3;
};

struct PgFormationOptions {
  std::string base_dir;  // empty: $TMPDIR/plfm-pgaf (or /tmp/plfm-pgaf)
  bool watchdog = true;
  std::chrono::seconds start_timeout{120};
  PgFailoverTimeouts timeouts;
};

class PgFormation {
 public:
  static constexpr int kNodes = 2;

  [[nodiscard]] static Result<std::unique_ptr<PgFormation>> start(
      const PgFormationOptions& options = {});

  PgFormation(const PgFormation&) = delete;
  PgFormation& operator=(const PgFormation&) = delete;
  ~PgFormation();

  [[nodiscard]] const std::string& dir() const { return dir_; }
  [[nodiscard]] const PgFailoverTimeouts& timeouts() const { return timeouts_; }
  // "host=127.0.0.1,127.0.0.1 port=P1,P2 ... target_session_attrs=read-write".
  [[nodiscard]] std::string conninfo(std::string_view db = "postgres") const;
  // One data node (0 or 1), or the monitor's database.
  [[nodiscard]] std::string nodeConninfo(int node, std::string_view db = "postgres") const;
  [[nodiscard]] std::string monitorConninfo() const;

  // The node the monitor has as primary now (reported and assigned state
  // agree on primary, wait_primary or single); nullopt while none is.
  [[nodiscard]] Result<std::optional<int>> primary();
  // Waits until a node other than `not_node` (-1: any) is primary and takes
  // writes; returns it.
  [[nodiscard]] Result<int> waitForPrimary(int not_node, std::chrono::milliseconds timeout);
  // Waits until one node is primary and the other a caught-up secondary.
  [[nodiscard]] Result<void> waitHealthy(std::chrono::milliseconds timeout);

  // kill -9 of the node's keeper and postgres: the whole process group.
  [[nodiscard]] Result<void> killNode(int node);
  // Runs the node's keeper again (`pg_autoctl run`); it rejoins as standby.
  // Does not wait: see waitHealthy().
  [[nodiscard]] Result<void> restartNode(int node);

  // Kills everything and removes the dir.
  void stop();

  // Kills the processes of formations under `base_dir` whose owner process
  // is gone and removes their dirs. Returns how many were reaped.
  static int reapLeftovers(const std::string& base_dir);
  [[nodiscard]] static std::string defaultBaseDir();

 private:
  PgFormation() = default;
  Result<void> init(const PgFormationOptions& options);
  Result<void> startWatchdog();
  Result<Process> runAutoctl(const std::vector<std::string>& args, const std::string& log);
  Result<void> autoctlChecked(const std::vector<std::string>& args, const std::string& log);
  Result<void> startMonitor(std::chrono::steady_clock::time_point deadline);
  Result<void> createNode(int node, std::chrono::steady_clock::time_point deadline);
  Result<void> waitNodeState(int node, std::string_view state,
                             std::chrono::steady_clock::time_point deadline);
  std::string pgdata(int node) const;  // node -1: the monitor

  std::string dir_;
  std::string bindir_;
  std::string user_ = "postgres";
  std::optional<uid_t> uid_;
  std::optional<gid_t> gid_;
  PgFailoverTimeouts timeouts_;
  int monitor_port_ = 0;
  std::vector<int> ports_;
  Process monitor_;
  std::vector<Process> keepers_;
  Process watchdog_;
  int watchdog_fd_ = -1;
};

}  // namespace plfm::testing
