// `vt dev`: a local plfm-vt platform under one state dir: one host, or N
// hosts in network namespaces on this machine (--nodes, dev_hosts.h).
//
// `Platform::up()` starts, in order and each in the background with its own
// log file: PostgreSQL (as the unprivileged `postgres` user when run as
// root), the control plane, a docker-registry on loopback, the node agent
// (qemu driver) and the ingress. Every process runs in its own session with
// a pid file, so `vt` can exit. `down()` stops them in reverse order and
// sweeps what is left (processes mentioning the state dir, sockets, mounts).
// docs/engineering/vt-dev.md describes the layout and the flags.
//
//   STATE/dev.json                 ports and settings of the last `up`
//   STATE/logs/<component>.log     each component's stdout and stderr
//   STATE/run/<component>.pid      "PID STARTTIME" (a recycled pid is not ours)
//   STATE/postgres/{data,run}      the cluster and its Unix socket
//   STATE/postgres/{monitor,a,b}   --ha: the formation (dev_formation.h)
//   STATE/control-plane/           its state dir, admin-token, master.key
//   STATE/registry/                config.yml and storage/
//   STATE/node-agent/              the agent's state dir (VMs, images)
//   STATE/node-agent-b/, ...       hosts B... agents' (--nodes N > 1)
//   STATE/ingress/                 its state dir and edge-token
//   STATE/backups/{repo,password}  the node's restic repository and its password
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "dev_formation.h"
#include "dev_hosts.h"
#include "plfm/core/result.h"
#include "plfm/http/pki.h"

namespace plfm::vt::dev {

struct Settings {
  std::string state_dir;
  int control_plane_port = 8080;       // on [::1]
  int control_plane_node_port = 8081;  // its node listener (agent, ingress), on [::1]
  int registry_port = 5000;            // on 127.0.0.1
  int agent_port = 9102;               // agent /healthz on [::1]
  int ingress_port = 8443;             // [::1] and 127.0.0.1
  int ingress_metrics_port = 9443;
  std::string accel = "auto";  // qemu: auto, kvm or tcg
  std::string org = "dev";
  std::string context = "dev";
  // Hosts (1..kMaxNodes): above 1, hosts B... run in network namespaces and
  // the node listener and the registry are on host A's underlay address.
  int nodes = 1;
  // --ha: PostgreSQL as a pg_auto_failover formation (dev_formation.h) on
  // 127.0.0.1 pg_port (its monitor), pg_port + 1 and + 2 (data nodes a and
  // b), and a second control-plane replica on the two ports below. Every
  // client (agents, the ingress, the vt context) gets both replicas' URLs.
  bool ha = false;
  int pg_port = 5440;
  int control_plane_2_port = 8082;       // on [::1]
  int control_plane_2_node_port = 8083;  // on [::1]

  // How many control-plane replicas run: 2 with --ha, else 1.
  [[nodiscard]] int replicas() const { return ha ? 2 : 1; }
  // Replica `r`'s API and node-listener ports.
  [[nodiscard]] int apiPort(int r) const {
    return r == 0 ? control_plane_port : control_plane_2_port;
  }
  [[nodiscard]] int nodePort(int r) const {
    return r == 0 ? control_plane_node_port : control_plane_2_node_port;
  }
  // Every replica's API URL, replica 1 first (the vt context's urls).
  [[nodiscard]] std::vector<std::string> controlPlaneUrls() const;
  // Every replica's node listener: on [::1], or on host A's underlay address
  // for the agents of hosts B... (`underlay`).
  [[nodiscard]] std::vector<std::string> controlPlaneNodeUrls(bool underlay = false) const;

  // The control plane speaks TLS with a certificate from the dev CA
  // (STATE/tls, made by `vt dev up`); every client verifies it with caFile().
  [[nodiscard]] std::string controlPlaneUrl() const {
    return "https://[::1]:" + std::to_string(control_plane_port);
  }
  // Where the agent and the ingress reach the control plane: its node
  // listener, so that `vt` traffic cannot take their connections.
  [[nodiscard]] std::string controlPlaneNodeUrl() const {
    return "https://[::1]:" + std::to_string(control_plane_node_port);
  }
  [[nodiscard]] std::string tlsDir() const { return state_dir + "/tls"; }
  [[nodiscard]] std::string caFile() const { return tlsDir() + "/ca.pem"; }
  // Image references name it, so it must be the same from every host: on
  // loopback for one host, on host A's underlay IPv4 address for several.
  [[nodiscard]] std::string registryHost() const {
    return (nodes > 1 ? underlayAddress4(0) : std::string("127.0.0.1")) + ":" +
           std::to_string(registry_port);
  }
};

// The default state dir: $XDG_STATE_HOME/plfm-dev, else ~/.local/state/plfm-dev.
[[nodiscard]] std::string defaultStateDir();

// Reads STATE/dev.json over `s` (missing file: `s` unchanged).
[[nodiscard]] Result<Settings> loadSettings(const std::string& state_dir);
[[nodiscard]] Result<void> saveSettings(const Settings& s);

// `plfm-control-plane serve` as `up` runs replica `replica` (0, or 1 with
// --ha): listeners, database, state dir and TLS from `s`, and `--config
// STATE/control-plane/config.toml` when that file exists (the user's own
// settings; these flags win over it). Both replicas share the state dir: its
// secrets master key, relay signing key and admin token must be the same.
[[nodiscard]] std::vector<std::string> controlPlaneArgv(const std::string& bin, const Settings& s,
                                                        const std::string& conninfo,
                                                        const http::LocalPki& pki, int replica = 0);

// Where the platform's programs are. Each is looked up in this order: its
// environment variable (PLFM_CONTROL_PLANE_BIN, PLFM_NODE_AGENT_BIN,
// PLFM_INGRESS_BIN, PLFM_VT_INIT_BIN, PLFM_FETCH_KERNEL), --bin-dir, the
// build tree the running `vt` belongs to, next to `vt`, then PATH.
struct Binaries {
  std::string control_plane;
  std::string node_agent;
  std::string ingress;
  std::string vt_init;
  std::string fetch_kernel;
  std::string registry;   // docker-registry
  std::string pg_bindir;  // initdb, postgres, createdb
};
[[nodiscard]] Result<Binaries> findBinaries(const std::string& bin_dir);
// Only plfm-node-agent, looked up the same way, "" when not found: `down` and
// `status` need no other binary, and `down` asks the agents what their
// records still hold (`plfm-node-agent leftovers`).
[[nodiscard]] std::string findNodeAgent(const std::string& bin_dir);
// PostgreSQL's bin dir: PLFM_PG_BINDIR, else Debian's for version 15.
[[nodiscard]] std::string defaultPgBindir();

struct ComponentStatus {
  std::string name;
  pid_t pid = -1;  // -1: not running
  std::string address;
  std::string health;  // "healthy", "unhealthy", "stopped"
  std::string log;
};

struct HostStatus {
  char letter = 'a';
  std::string netns;  // "" for host A (vt dev's own namespace)
  std::string underlay;
  std::string agent;         // its component name
  std::string agent_health;  // as ComponentStatus::health
  int instances = -1;        // placed on it (the control plane's view); -1: unknown
};

struct PlatformStatus {
  std::vector<ComponentStatus> components;
  // --ha: the data nodes as the formation's monitor sees them (empty when it
  // does not answer).
  std::vector<FormationNode> formation;
  std::vector<HostStatus> hosts;  // nodes > 1 only
  int instances_running = -1;     // -1: unknown (agent not answering)
  int instances_total = -1;
};

[[nodiscard]] nlohmann::json toJson(const Settings& s, const PlatformStatus& st);

// The names, in start order, of a one-host platform; Platform::components()
// adds hosts B...'s agents after node-agent, and with --ha has pg-monitor,
// pg-a and pg-b for postgres and control-plane-2 after control-plane.
[[nodiscard]] const std::vector<std::string>& componentNames();
// The control plane's component names: "control-plane", "control-plane-2".
[[nodiscard]] std::string controlPlaneComponent(int replica);

class Platform {
 public:
  // `progress` receives one finished line per step (for stderr).
  Platform(Settings settings, Binaries bins, std::function<void(const std::string&)> progress);

  // Starts what is not running and healthy. An error names the step
  // (detail "step") and its log file (detail "log").
  [[nodiscard]] Result<void> up();
  // Stops everything in reverse order and sweeps leftovers. Returns what was
  // still found afterwards (empty when clean).
  [[nodiscard]] Result<std::vector<std::string>> down();
  [[nodiscard]] PlatformStatus status() const;
  // `down --purge` (after down): the state dir and, with --ha as root, the
  // formation's ROOT outside it (dev_formation.h).
  [[nodiscard]] Result<void> purge();
  // `vt dev host add`: one more host, the next letter, on a running
  // multi-host platform: its namespace and veth, its agent (enrolled). The
  // node count in STATE/dev.json grows with it. Returns the new host.
  [[nodiscard]] Result<Host> addHost();
  // `vt dev host stop LETTER`: its agent, VMMs and wireguard-go killed, its
  // underlay link down (Hosts::stop). `up` starts it again.
  [[nodiscard]] Result<std::vector<std::string>> stopHost(char letter);

  [[nodiscard]] const Settings& settings() const { return s_; }
  // The components, in start order: componentNames() plus node-agent-b, ...
  [[nodiscard]] std::vector<std::string> components() const;
  [[nodiscard]] std::string logPath(const std::string& component) const;

 private:
  [[nodiscard]] Result<void> step(const std::string& name,
                                  const std::function<Result<std::string>()>& run);
  // The "already running" line when `component` runs and is healthy;
  // nullopt when it is not running; an error when it runs but is unhealthy.
  [[nodiscard]] Result<std::optional<std::string>> alreadyRunning(
      const std::string& component) const;
  [[nodiscard]] Result<std::string> startPostgres();
  // --ha: one formation component (pg-monitor, pg-a, pg-b), then the wait
  // for a primary and a synchronous standby and the plfm database.
  [[nodiscard]] Result<std::string> startFormationNode(int node);
  [[nodiscard]] Result<std::string> settleFormation();
  // Stops what an earlier run of formation `component` left (its session,
  // a postgres of `data`), so that its ports are free again.
  [[nodiscard]] Result<void> stopOrphans(const std::string& component, const std::string& data);
  [[nodiscard]] Result<http::LocalPki> ensureDevPki() const;
  [[nodiscard]] Result<std::string> startControlPlane(int replica);
  [[nodiscard]] Result<std::string> startRegistry();
  [[nodiscard]] Result<std::string> startAgent(const Host& host);
  [[nodiscard]] std::vector<std::string> agentArgv(const Host& host,
                                                   const std::string& kernel_dir) const;
  // Agent A's node's host address as a /128 (nodes > 1; agent A enrolled).
  [[nodiscard]] Result<std::string> ingressHostAddress() const;
  // The agent of `component`'s host, nullptr when it is not an agent.
  [[nodiscard]] const Host* agentHost(const std::string& component) const;
  // GET of the agent's `target` (TLS pinned to its certificate on an
  // underlay address); the status and body, status 0 on failure.
  [[nodiscard]] std::pair<int, std::string> agentGet(const Host& host,
                                                     const std::string& target) const;
  [[nodiscard]] Result<std::vector<std::string>> devBackupArgs();
  [[nodiscard]] Result<std::string> startIngress();
  [[nodiscard]] Result<std::string> writeContext();

  [[nodiscard]] std::string path(const std::string& rel) const { return s_.state_dir + "/" + rel; }
  [[nodiscard]] std::string conninfo() const;
  [[nodiscard]] std::string address(const std::string& component) const;
  [[nodiscard]] bool healthy(const std::string& component) const;
  // What the agents' instance records (every STATE/node-agent* dir) still
  // hold on this host, as `plfm-node-agent leftovers` reports it: "tap NAME"
  // and "cgroup PATH". With `remove`, the agent releases them first. The
  // records are the agent's own format: only the agent reads them.
  [[nodiscard]] std::vector<std::string> agentLeftovers(bool remove) const;
  // The dev agent's guest network filter (nftables) is still installed.
  [[nodiscard]] bool agentFilterInstalled() const;
  [[nodiscard]] pid_t runningPid(const std::string& component) const;
  [[nodiscard]] Result<pid_t> launch(const std::string& component,
                                     const std::vector<std::string>& argv,
                                     const std::vector<std::string>& env = {},
                                     const std::string& cwd = {});
  [[nodiscard]] Result<void> waitHealthy(const std::string& component, pid_t pid,
                                         std::chrono::seconds timeout);

  Settings s_;
  Formation formation_;
  Hosts hosts_;
  Binaries bins_;
  std::function<void(const std::string&)> progress_;
};

}  // namespace plfm::vt::dev
