// `vt dev up --ha`: PostgreSQL as a pg_auto_failover formation (ADR 0020) on
// this machine, so that anyone can try a failover: a monitor and two data
// nodes, a and b, each run by `pg_autoctl` on 127.0.0.1 (TCP: keepalives and
// tcp_user_timeout need it), with the replication quorum on (a commit
// returns once the standby has it) and the failover timeouts of ADR 0020.
//
//   ROOT/monitor, ROOT/a, ROOT/b    their PGDATA
//   ROOT/autoctl/                   pg_autoctl's HOME and XDG dirs (config,
//                                   state and runtime files), not the
//                                   postgres user's own dirs or /tmp
//   ROOT/sock/                      the Unix sockets of the three postgres
//   ROOT/state-dir                  the state dir it belongs to
//
// ROOT (formationRoot()) is STATE/postgres, except as root: then PostgreSQL
// runs as `postgres`, and pg_autoctl checks files with access(2), which
// ignores the CAP_DAC_READ_SEARCH that lets a plain postgres reach a state
// dir under a 0700 home (/root/.local/state). So ROOT is then
// ~postgres/plfm-dev/<16 hex of the SHA-256 of the state dir's path>, owned
// by postgres, and `vt dev down --purge` removes it with the state dir.
// Everything vt does in ROOT (mkdir, the state-dir file, rm) it does as the
// formation's user, never as root.
//
// Local TCP connections are trusted (pg_autoctl --auth trust): any user of
// this machine can reach these databases as superuser. It is a developer's
// single-user platform; docs/security.md says so.
//
// This class builds command lines and reads state; Platform (dev_platform.h)
// starts and stops the processes as components pg-monitor, pg-a and pg-b.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::vt::dev {

// One row of the monitor's pgautofailover.node.
struct FormationNode {
  std::string name;  // "a", "b"
  std::string reported;
  std::string goal;
  bool healthy = false;  // the monitor's last health check passed
};

class Formation {
 public:
  static constexpr int kMonitor = -1;
  static constexpr int kDataNodes = 2;

  // The monitor listens on `base_port`, data node a on base_port + 1, b on
  // base_port + 2, all on 127.0.0.1.
  Formation(std::string state_dir, int base_port, std::string pg_bindir);

  // ROOT, above.
  [[nodiscard]] const std::string& root() const { return root_; }
  // pg_autoctl's path on vt's PATH, "" when it is not installed.
  [[nodiscard]] const std::string& autoctlBinary() const { return autoctl_bin_; }

  // "pg-monitor", "pg-a", "pg-b": the start order.
  [[nodiscard]] static const std::vector<std::string>& components();
  // kMonitor, 0 or 1 for a component of components(); -2 for anything else.
  [[nodiscard]] static int nodeOf(std::string_view component);
  [[nodiscard]] static std::string nodeName(int node);  // "a", "b"
  // The component of kMonitor, 0 or 1: "pg-monitor", "pg-a", "pg-b".
  [[nodiscard]] static const char* component(int node);

  [[nodiscard]] std::string pgdata(int node) const;
  [[nodiscard]] std::string socketDir() const { return root_ + "/sock"; }
  [[nodiscard]] int port(int node) const;
  [[nodiscard]] std::string address(int node) const;  // "127.0.0.1:PORT"

  // The control plane's database setting: both data nodes,
  // target_session_attrs=read-write, as docs/operations/ha.md configures it.
  [[nodiscard]] std::string conninfo(std::string_view db = "plfm") const;

  // pg_autoctl's config file for the node, and whether it exists: a create
  // has at least started (re-running the same create resumes it).
  [[nodiscard]] std::string configFile(int node) const;
  [[nodiscard]] bool createStarted(int node) const;
  // A create finished: config, no pending init file, PGDATA complete.
  [[nodiscard]] bool created(int node) const;
  // postmaster.pid says the server accepts connections ("ready", or
  // "standby" for a hot standby).
  [[nodiscard]] bool accepting(int node) const;

  // pg_autoctl argv with exactly autoctlEnv() as its environment (env -i),
  // run as `postgres` when vt runs as root. `args` follow "pg_autoctl".
  [[nodiscard]] std::vector<std::string> autoctl(const std::vector<std::string>& args) const;
  [[nodiscard]] std::vector<std::string> autoctlEnv() const;
  // The argvs that make ROOT's dirs and its state-dir file, as the
  // formation's user; and one that removes `path` as that user.
  [[nodiscard]] std::vector<std::vector<std::string>> prepareRootArgvs() const;
  [[nodiscard]] std::vector<std::string> removeArgv(const std::string& path) const;
  // The monitor, created and then run (`create monitor ... --run`).
  [[nodiscard]] std::vector<std::string> createMonitorArgv() const;
  // A data node, created without running it (runArgv() runs it).
  [[nodiscard]] std::vector<std::string> createNodeArgv(int node) const;
  // The keeper's network_partition_timeout, set before it first runs.
  [[nodiscard]] std::vector<std::string> partitionTimeoutArgv(int node) const;
  [[nodiscard]] std::vector<std::string> runArgv(int node) const;

  // psql on the monitor's database (-X -At, one statement); its output.
  [[nodiscard]] Result<std::string> monitorSql(const std::string& sql,
                                               const std::string& log) const;
  // The monitor's failover timeouts (ADR 0020, "Values"), one statement each.
  [[nodiscard]] static std::vector<std::string> monitorTimeoutsSql();
  // Every data node the monitor knows, by name.
  [[nodiscard]] Result<std::vector<FormationNode>> nodes(const std::string& log) const;
  // Creates database `db` on the primary unless it exists.
  [[nodiscard]] Result<void> ensureDatabase(const std::string& db, const std::string& log) const;

 private:
  // psql -X -At on the database `target` (a conninfo): its output.
  [[nodiscard]] Result<std::string> psql(const std::string& target, const std::string& sql,
                                         const std::string& log) const;

  std::string state_dir_;
  std::string root_;
  int base_port_;
  std::string bindir_;
  std::string autoctl_bin_;  // found on PATH; "" when missing
};

// Where the formation of `state_dir` (an absolute, normal path) keeps its
// data (ROOT, above).
[[nodiscard]] std::string formationRoot(const std::string& state_dir);

// One node whose reported and goal states agree on primary (or wait_primary,
// single) and none in another state: "a" or "b"; "" otherwise.
[[nodiscard]] std::string formationPrimary(const std::vector<FormationNode>& nodes);
// One primary and one secondary, both settled.
[[nodiscard]] bool formationHealthy(const std::vector<FormationNode>& nodes);
// Parses `psql -At` output of Formation::nodes()' query ("name|reported|goal|health").
[[nodiscard]] std::vector<FormationNode> parseFormationNodes(std::string_view psql_out);

}  // namespace plfm::vt::dev
