// The node agent: it learns its desired instances from the NodePlan (a
// long-poll on the control plane, or a plan file when run standalone),
// converges each one into a running microVM, reports status, and heartbeats.
//
//   Agent agent(options, std::make_unique<runtime::QemuRuntime>(qemu));
//   PLFM_TRY(agent.start());   // enroll or load the credential, adopt VMs, threads
//   ...
//   agent.stop();              // VMs keep running unless stop_instances_on_exit
//
// Every instance has a worker thread that walks it through the state machine
// (instance_fsm.h) and then supervises its VM over the host channel. All state
// lives in files under state_dir (docs/specs/runtime/node-agent.md):
//   node.json             the node credential (0600)
//   instances/<id>.json   one record per instance (instance_record.h)
//   vms/<id>/             the VMM's run dir: sockets, pid file, console, scratch disk
//   templates/            the formatted scratch disk instances copy
//   logs/<id>.log         the workload's output (instance_log.h)
//   images/               the image cache (image/image_cache.h)
//   firewall/             the last nft script of the guest filter, nft's output
//   volumes/<vol_id>.ext4 one file per volume placed on this node (volume_store.h)
//   snapshots/            volume snapshots and their records; volume-ops/ (volume_ops.h)
// so a restart after kill -9 adopts running VMs, rolls back half-done boots,
// removes orphaned VMMs, taps and disks, and rewrites the guest filter
// (nftables table inet plfm_agent) from the records.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "agent/cp_client.h"
#include "agent/dns_feed.h"
#include "agent/dns_responder.h"
#include "agent/exec_endpoint.h"
#include "agent/guest_channel.h"
#include "agent/guest_config.h"
#include "agent/image_gc.h"
#include "agent/instance_host.h"
#include "agent/instance_record.h"
#include "agent/log_endpoint.h"
#include "agent/mesh_member.h"
#include "agent/node_egress.h"
#include "agent/volume_backup.h"
#include "agent/volume_ops.h"
#include "agent/volume_snapshot.h"
#include "agent/volume_store.h"
#include "agent/workload_check.h"
#include "image/image_cache.h"
#include "netdev/egress.h"
#include "netdev/firewall.h"
#include "plfm/core/metrics.h"
#include "plfm/core/result.h"
#include "runtime/microvm_runtime.h"

namespace plfm::http {
class Server;
}

namespace plfm::agent {

struct AgentOptions {
  std::string state_dir = "/var/lib/plfm-agent";
  // Control plane mode: the URLs (one per replica, tried in order; they
  // replace those in node.json) and, for the first start, an enrollment token
  // (or a file holding it). Plan-file mode: plan_file instead (no reports).
  std::vector<std::string> control_planes;
  // How the control plane is verified (--ca, --pinned-cert, --unsafe-plain-http).
  http::ClientTlsOptions control_plane_tls;
  std::string enroll_token;
  std::string plan_file;
  NodeFacts facts;

  std::string kernel;     // vmlinux for the guests
  std::string initramfs;  // the vt-init initramfs (guest-init-delivery.md)
  // Or let the agent build (and cache by content hash) the initramfs from the
  // static vt-init and the kernel's modules (scripts/fetch-kernel's
  // <release>/modules): used when `initramfs` is empty.
  std::string vt_init;
  std::string kernel_modules;
  std::string image_cache_dir;  // empty: STATE/images
  image::CacheOptions image;
  // The cache's size budget, a size or a share of its filesystem
  // (image_gc.h); when set, it replaces image.size_budget_bytes at start.
  std::string image_budget = "50%";
  // How often the agent collects images on its own (also after an instance
  // lets go of its image, and after a pull).
  std::chrono::seconds image_gc_interval{300};
  uint64_t scratch_mb = 1024;  // per-instance writable disk (sparse)
  bool manage_network = true;  // taps and routes (needs CAP_NET_ADMIN)
  // The guest network filter (netdev/firewall.h) is installed with taps.
  // When it cannot be (no nft, rules refused), instances with a network fail
  // to start; this lets them run unfiltered instead, with a warning.
  bool unsafe_allow_unfiltered_guests = false;
  std::string nft_binary = "nft";
  // Inbound sources and egress destinations outside the platform
  // (netdev/firewall.h); run_command's defaults deny egress to fc00::/7.
  netdev::FirewallPolicy firewall_policy;
  // Egress (netdev/egress.h, mesh.md "Egress"): the IPv6 mode; the interface
  // guest traffic leaves by (empty: each family's default route's at start);
  // the guest IPv4 subnet flag ("": 10.42.N.0/24 from the plan's node
  // number, "off": no guest IPv4).
  netdev::Egress6Mode egress6 = netdev::Egress6Mode::kNat66;
  std::string egress_interface;
  std::string guest_ipv4_subnet;

  std::chrono::seconds plan_wait{30};
  std::chrono::milliseconds boot_timeout{90'000};  // VMM start to READY
  uint32_t shutdown_grace_ms = 10'000;
  // How long one send to a guest may wait for it to read; past it the VM is
  // killed and reported failed ("channel stalled").
  std::chrono::milliseconds channel_send_timeout = GuestChannel::kSendTimeout;
  bool stop_instances_on_exit = false;
  uint64_t log_max_bytes = uint64_t{8} << 20;
  // /healthz, /metrics, /v1/instances, the log endpoint (log_endpoint.h) and
  // the exec endpoint (exec_endpoint.h), e.g. "[::1]:9102"; empty: none.
  std::string listen;
  // The URL the control plane reaches `listen` at (reported in heartbeats);
  // empty: derived from the bound address (a wildcard: the underlay address).
  std::string advertise_url;
  // TLS on `listen` (a key and self-signed certificate made at each start,
  // reported by SHA-256 in heartbeats, pinned by the control plane's relay).
  // Always on for a listener other nodes can reach; this turns it on for a
  // loopback one too.
  bool listen_tls = false;
  std::string agent_version = "0.1.0";
  // Off-node volume backups (volume_backup.h, volume-mounts.md "Agent"):
  // no repository, no scheduled snapshots, backups or drills. cache_dir is
  // STATE/restic-cache unless set.
  BackupOptions backup;
  // How often the restore drill of each volume's newest backup runs.
  std::chrono::seconds verify_every{86400};
  // The WireGuard mesh (mesh_member.h): off unless set (`run` turns it on
  // unless --no-mesh). facts.role "edge": no instances run here.
  bool mesh_enabled = false;
  MeshMemberOptions mesh;
  // The DNS responder for internal names (dns_responder.h): runs with the
  // mesh unless --no-dns; upstreams from --dns-upstream, else resolv.conf.
  bool dns_enabled = true;
  std::vector<std::string> dns_upstreams;
};

// True when `remote` (http::Request::remote: "[::1]:53211", "127.0.0.1:80",
// "unix") is this host: the agent's /v1/instances is served only there.
[[nodiscard]] bool fromLoopback(std::string_view remote);

// A snapshot of one instance, for tests, `plfm-node-agent status` and logs.
struct InstanceStatus {
  std::string instance_id;
  int generation = 0;
  Phase phase = Phase::kAllocated;
  std::optional<int> exit_code;
  std::string reason;
  std::string last_reported;         // the last status sent: "healthy", "exited", ...
  std::string last_reported_reason;  // and its reason (since this agent started)
  pid_t vmm_pid = -1;
  Timings timings;
};

class InstanceWorker;

// MemTotal of this host in MiB.
[[nodiscard]] int64_t hostMemoryMb();

// The guest filter entry of an instance on `tap`: its address, and its org
// (an instance without an org id is an org of its own).
[[nodiscard]] Result<netdev::GuestFilter> guestFilterFor(const Workload& w, const std::string& tap,
                                                         const std::string& ipv4 = {});

class Agent final : public InstanceHost {
 public:
  // `backups`: the volume backup repository; null: restic as
  // options.backup says (tests pass a fake).
  Agent(AgentOptions options, std::unique_ptr<runtime::MicroVmRuntime> runtime,
        std::unique_ptr<VolumeBackups> backups = nullptr);
  ~Agent() override;
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  [[nodiscard]] Result<void> start();
  void stop();

  // Converges on `plan` (what the long-poll or the plan file delivered).
  void applyPlan(const NodePlan& plan);

  // The mesh part of the guest filter (mesh.md, "Isolation across hosts"):
  // the plan's `mesh.cluster_prefix` and the --mesh-interface and
  // --mesh-interface2 names (a key rotation's two slots; empty: none), given
  // at every plan before the mesh itself is applied (an empty prefix: no
  // mesh). Rewrites the table when they changed; an invalid value or a
  // failed rewrite is logged and counted, and the next rewrite retries.
  void filterMesh(std::string_view cluster_prefix, std::string_view mesh_interface,
                  std::string_view mesh_interface2 = {});
  // POST /v1/nodes/{id}/mesh-key on its own connection (the mesh thread's).
  [[nodiscard]] MeshKeyReporter meshKeyReporter() const;
  // Starts the DNS responder on the plan's host address (once; plan thread).
  void startDns(const netdev::MeshPlan& plan);

  [[nodiscard]] std::vector<InstanceStatus> instances() const;
  [[nodiscard]] const std::string& nodeId() const { return credential_.node_id; }
  [[nodiscard]] std::vector<std::string> endpoints() const;
  // Where the control plane reaches the listener (https:// when it speaks
  // TLS) and the SHA-256 of its certificate; empty without --listen (the
  // certificate also for a plain loopback listener).
  [[nodiscard]] std::string agentUrl() const;
  [[nodiscard]] const std::string& listenCertSha256() const { return listen_cert_sha256_; }
  // The exec endpoint's view of an instance on this node (nullopt: none).
  [[nodiscard]] std::optional<ExecTarget> execTarget(const std::string& instance_id) const;

  // A snapshot of `volume_id` at STATE/snapshots/<snapshot_id>.ext4
  // (volume_snapshot.h): through the running instance that holds it
  // (FREEZE, copy, THAW), or a plain copy when no instance does. An
  // existing snapshot id is refused. Waits for the snapshot (seconds).
  [[nodiscard]] Result<SnapshotResult> snapshotVolume(const std::string& volume_id,
                                                      const std::string& snapshot_id);

  [[nodiscard]] metrics::Registry& metricsRegistry() { return metrics_; }
  // One collection now, keeping what instances hold and every env's current
  // and previous image (image_gc.h); logs and meters what it freed.
  Result<image::GcReport> collectImages();

 private:
  // --- InstanceHost: what the workers see of the agent ---
  [[nodiscard]] const AgentOptions& options() const override { return options_; }
  [[nodiscard]] runtime::MicroVmRuntime& runtime() override { return *runtime_; }
  [[nodiscard]] const Clock& clock() const override { return RealClock::instance(); }
  [[nodiscard]] InstanceMetrics& instanceMetrics() override { return instance_metrics_; }
  [[nodiscard]] bool stopping() const override { return stopping_.load(); }
  [[nodiscard]] Result<void> saveRecord(const InstanceRecord& rec) override {
    return store_.save(rec);
  }
  [[nodiscard]] Result<void> removeRecord(const std::string& instance_id) override {
    return store_.remove(instance_id);
  }
  [[nodiscard]] std::string runDirFor(const std::string& instance_id) const override;
  [[nodiscard]] std::string logPathFor(const std::string& instance_id) const override;
  bool sendReport(const std::string& instance_id, const StatusReport& report) override;
  [[nodiscard]] Result<std::string> fetchSecrets(const std::string& instance_id,
                                                 const std::string& version) override;
  [[nodiscard]] Result<AcquiredImage> acquireImage(const Workload& w) override;
  [[nodiscard]] Result<image::ImageConfig> imageConfig(const std::string& digest) override;
  void releaseImage(const std::string& digest, const std::string& instance_id) override;
  // An empty ext4 of options().scratch_mb, formatted once per agent state dir
  // (STATE/templates/scratch-<mb>M.ext4); each instance's scratch disk is a
  // sparse copy of it.
  [[nodiscard]] Result<std::string> scratchTemplate() override;
  [[nodiscard]] UserDb userDb(const std::string& rootfs,
                              const std::function<UserDb()>& load) override;
  // Adds the guest's filter entry and rewrites the node's nftables table
  // (one transaction); on failure the entry is dropped again and the error
  // returned, unless options().unsafe_allow_unfiltered_guests.
  [[nodiscard]] Result<void> filterGuest(const std::string& instance_id,
                                         netdev::GuestFilter filter) override;
  // Drops the entry (if any) and rewrites the table; failures are logged.
  void unfilterGuest(const std::string& instance_id) override;
  [[nodiscard]] Result<std::string> guestIpv4(const std::string& instance_id) override;
  [[nodiscard]] std::string nameserver() const override;
  [[nodiscard]] VolumeStore& volumes() override { return volumes_; }

  // Only what changed since the last delivered report is sent.
  void reportVolume(const std::string& volume_id, const VolumeReport& report) override;

  // NodePlan.volumes: each `ready` volume's file made or grown, each
  // `deleting` one removed once no instance record names it, and the result
  // reported. A volume an instance holds is its worker's: grown and
  // reported once its guest has the new size (volume_extend.h).
  // Returns the entries that passed the edge check (restoring ones too,
  // which it leaves to their restore op: no mkfs, no report).
  std::vector<NodeVolume> convergeVolumes(const nlohmann::json& entries);
  // NodePlan.volume_ops, typed; an invalid entry is logged and skipped.
  std::vector<VolumeOp> parseVolumeOps(const nlohmann::json& entries);
  [[nodiscard]] VolumeOpsDeps volumeOpsDeps();

  // The instance's org's credentials for `registry` (the host its image
  // names), from the control plane, which serves them only for an instance
  // on this node and only for that registry. nullopt in plan-file mode, when
  // the org has none, or when the control plane cannot be asked (logged):
  // the pull is then anonymous, and an image the cache authorized for the
  // org before still starts. The caller wipes the password.
  [[nodiscard]] std::optional<image::RegistryCredentials> registryCredentials(
      const std::string& instance_id, const std::string& registry);
  // Asks the GC thread for a collection soon (an image was let go or pulled).
  void requestImageGc();
  Result<void> loadOrEnroll();
  Result<void> loadStandaloneIdentity();  // plan-file mode: STATE/node.json if any
  void adoptOrClean();
  // applyPlan under mu_: the specs refused at the edge that still need a
  // failed report, with their reasons.
  // `images` gets each env's image digests in the plan (for ImageHistory).
  std::vector<std::pair<RefusedInstance, std::string>> convergeLocked(
      const NodePlan& plan, std::map<std::string, std::set<image::Digest>>& images);
  void planLoop();
  void heartbeatLoop();
  void gcLoop();
  Result<void> prepareListener();  // the relay verifier, and TLS for the listener
  Result<void> startHttp();
  Result<void> applyFirewallLocked();  // firewall_mu_ held

  AgentOptions options_;
  std::unique_ptr<runtime::MicroVmRuntime> runtime_;
  StateStore store_;
  std::optional<image::ImageCache> images_;
  NodeCredential credential_;
  std::unique_ptr<ControlPlaneClient> reports_;  // guarded by report_mu_
  std::mutex report_mu_;
  std::map<std::string, VolumeReport> volume_reports_;  // guarded by report_mu_: delivered
  VolumeStore volumes_;
  std::unique_ptr<VolumeBackups> backups_;
  std::unique_ptr<VolumeOps> volume_ops_;  // set by start()
  std::unique_ptr<NodeEgress> egress_;     // set by start() when it manages networking
  std::unique_ptr<MeshMember> mesh_;       // set by start() when options_.mesh_enabled
  std::unique_ptr<DnsResponder> dns_;      // set by startDns() (plan thread)
  std::unique_ptr<DnsFeed> dns_feed_;      // feeds dns_ (started with it)
  mutable std::mutex dns_mu_;
  std::string dns_address_;  // guarded by dns_mu_: CONFIG's nameserver
  metrics::Registry metrics_;
  InstanceMetrics instance_metrics_{metrics_};

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<InstanceWorker>> workers_;
  std::map<std::string, int> refused_;  // guarded by mu_: instance -> generation reported failed
  std::atomic<bool> stopping_{false};
  std::condition_variable wake_;
  std::thread plan_thread_;
  std::thread heartbeat_thread_;
  std::thread gc_thread_;
  std::mutex gc_mu_;
  std::condition_variable gc_cv_;
  bool gc_requested_ = false;  // guarded by gc_mu_
  std::optional<ImageHistory> image_history_;
  std::unique_ptr<http::Server> http_;
  std::mutex scratch_mu_;
  std::string scratch_template_;  // guarded by scratch_mu_; set once made
  std::mutex users_mu_;
  std::map<std::string, UserDb> users_;               // by rootfs path
  std::shared_ptr<RelayVerifier> relay_verifier_;     // the log endpoint's signature check
  std::string listen_cert_sha256_;                    // empty: the listener is plain
  std::optional<http::ServerTlsOptions> listen_tls_;  // set when the listener speaks TLS
  void pinRelayKey(const std::string& text);          // from a heartbeat answer
  std::mutex firewall_mu_;
  std::optional<netdev::NftFirewall> firewall_;   // guarded by firewall_mu_
  std::map<std::string, std::string> ipv4_held_;  // instance id -> IPv4 not yet filtered
  std::map<std::string, netdev::GuestFilter> guest_filters_;  // by instance id; same
};

}  // namespace plfm::agent
