// `plfm-node-agent run`: the agent itself. Settings come from flags, from
// PLFM_AGENT_* environment variables, and from a TOML file given with
// --config (flags win). See docs/specs/runtime/node-agent.md.
#include <sys/statvfs.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <optional>
#include <thread>

#include "agent/agent.h"
#include "backup_flags.h"
#include "command_line.h"
#include "config_file.h"
#include "image/address_policy.h"
#include "mesh_flags.h"
#include "netdev/firewall.h"
#include "plfm/core/daemon.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"
#include "plfm/http/failover.h"
#include "runtime/firecracker_runtime.h"
#include "runtime/qemu_runtime.h"

namespace plfm::agent {
namespace {

// A repeatable IPv6 prefix flag; given at all, it replaces `target`'s
// default.
CLI::Option* addPrefixOption(CLI::App* app, const std::string& name,
                             std::vector<netdev::Ipv6Prefix>& target, const std::string& help) {
  return app
      ->add_option_function<std::vector<std::string>>(
          name,
          [&target](const std::vector<std::string>& v) {
            target.clear();
            for (const auto& p : v) target.push_back(*netdev::parseIpv6Prefix(p));
          },
          help)
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            auto p = netdev::parseIpv6Prefix(v);
            return p ? std::string() : p.error().message();
          },
          "IPV6/LEN"));
}

struct RunFlags {
  AgentOptions agent;
  std::string runtime = "qemu";
  std::string qemu_binary = "qemu-system-x86_64";
  std::string accel = "auto";
  runtime::ConfineOptions confine;
  std::vector<std::string> registry_allow_cidrs;
  bool allow_oci_layout = false;
  std::string firecracker_binary = "firecracker";
  std::string enroll_token_file;
  std::string config_file;
  std::string kernel_dir;
  std::string log_level = "info";
  std::string log_file;
  int64_t memory_mb = 0;
  int cores = 0;
  int plan_wait = 30;
  int boot_timeout = 90;
};

std::string hostName() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf[0] != 0 ? buf : "localhost";
}

int runAgent(RunFlags f) {
  daemon::initLogging("node-agent", f.log_level, f.log_file);
  AgentOptions& o = f.agent;
  if (!f.enroll_token_file.empty() && o.enroll_token.empty()) {
    auto t = readFile(f.enroll_token_file);
    if (!t) {
      std::cerr << "plfm-node-agent: " << t.error().message() << "\n";
      return 2;
    }
    o.enroll_token = std::string(trim(*t));
  }
  if (!f.kernel_dir.empty()) {
    if (o.kernel.empty()) o.kernel = f.kernel_dir + "/vmlinux";
    o.kernel_modules = f.kernel_dir + "/modules";
  }
  if (!o.control_planes.empty()) {
    auto urls = http::parseBaseUrls("--control-plane", o.control_planes);
    if (!urls) {
      std::cerr << "plfm-node-agent: " << urls.error().message() << "\n";
      return 2;
    }
    o.control_planes = std::move(*urls);
  }
  o.plan_wait = std::chrono::seconds(f.plan_wait);
  o.boot_timeout = std::chrono::seconds(f.boot_timeout);
  if (o.facts.hostname.empty()) o.facts.hostname = hostName();
  // What instances may use: all cores (CPU is soft) and memory minus a
  // reserve for the host and the VMMs' own overhead.
  o.facts.cores = f.cores > 0 ? f.cores : static_cast<int>(std::thread::hardware_concurrency());
  int64_t total = hostMemoryMb();
  o.facts.memory_mb =
      f.memory_mb > 0 ? f.memory_mb : std::max<int64_t>(256, total - total / 8 - 512);
  struct statvfs sv {};
  if (::statvfs(o.state_dir.c_str(), &sv) == 0) {
    o.facts.disk_mb = static_cast<int64_t>(sv.f_bavail * sv.f_frsize / (1 << 20));
  }
  if (o.facts.underlay_address.empty()) o.facts.underlay_address = o.facts.hostname;
  o.facts.runtimes = {f.runtime};
  // Image references come from tenants: registries only at public addresses
  // or the operator's prefixes, and no oci: directories on this host.
  o.image.registry_allow_cidrs = f.registry_allow_cidrs;
  o.image.allow_oci_layout = f.allow_oci_layout;

  if (auto b = finishBackupOptions(o); !b) {
    std::cerr << "plfm-node-agent: " << b.error().message() << "\n";
    log::error("bad backup settings", {{"error", b.error().message()}});
    return 2;
  }
  if (o.backup.repository.empty()) {
    log::info("no backup repository: volume snapshots stay on this node");
  } else {
    log::info("volume backups configured",
              {{"scheme", repositoryScheme(o.backup.repository)},
               {"verify_every_s", std::to_string(o.verify_every.count())}});
  }
  if (!f.confine.enabled) {
    log::warn(
        "VMMs run unconfined (--unsafe-unconfined-vms): a guest that escapes its VMM gets "
        "the agent's privileges");
  }
  std::unique_ptr<runtime::MicroVmRuntime> rt;
  if (f.runtime == "qemu") {
    runtime::QemuOptions q;
    q.binary = f.qemu_binary;
    q.accel = f.accel;
    q.probe_dir = o.state_dir;
    q.confine = f.confine;
    rt = std::make_unique<runtime::QemuRuntime>(q);
  } else if (f.runtime == "firecracker") {
    runtime::FirecrackerOptions fc;
    fc.binary = f.firecracker_binary;
    fc.confine = f.confine;
    rt = std::make_unique<runtime::FirecrackerRuntime>(fc);
  } else {
    std::cerr << "plfm-node-agent: --runtime must be qemu or firecracker\n";
    return 2;
  }
  std::optional<Agent> agent;
  daemon::Hooks hooks;
  hooks.start = [&]() -> Result<void> {
    agent.emplace(o, std::move(rt));
    auto r = agent->start();
    if (!r) {
      std::cerr << "plfm-node-agent: " << r.error().message() << "\n";
      log::error("agent failed to start", {{"error", r.error().toString()}});
    }
    return r;
  };
  hooks.ready = [&] {
    if (!agent->endpoints().empty()) {
      std::cout << "listening on " << agent->endpoints()[0] << std::endl;
    }
  };
  hooks.stop = [&] { agent->stop(); };
  return daemon::run(hooks) ? 0 : 1;
}

}  // namespace

void registerRunCommand(CLI::App& app, CommandAction* action) {
  auto flags = std::make_shared<RunFlags>();
  auto* run = app.add_subcommand(
      "run",
      "Run the agent: enroll (first start), follow this node's plan, and run its instances as "
      "microVMs. VMs survive an agent restart and are adopted again.");
  run->add_option("--config", flags->config_file,
                  "TOML file with these settings (flag names as keys; a [backup] section with "
                  "repository, password-file, sftp-command, restic-binary, verify-every)");
  AgentOptions& o = flags->agent;
  o.firewall_policy.egress_denied = {*netdev::parseIpv6Prefix("fc00::/7")};
  run->add_option("--state-dir", o.state_dir, "Where the agent keeps everything")
      ->envname("PLFM_AGENT_STATE_DIR")
      ->capture_default_str();
  run->add_option("--control-plane", o.control_planes,
                  "Control plane URL, e.g. https://cp.example:8443 (http:// only on loopback). "
                  "Repeat it, or separate URLs with commas, to list every replica: the agent "
                  "stays with the one that answers and moves to the next when it cannot be "
                  "reached")
      ->envname("PLFM_AGENT_CONTROL_PLANE");
  run->add_option("--ca,--ca-file", o.control_plane_tls.ca_file,
                  "PEM CA bundle that signed the control plane's certificate (default: the "
                  "system store)")
      ->envname("PLFM_AGENT_CA_FILE");
  run->add_option("--pinned-cert", o.control_plane_tls.pinned_cert_file,
                  "PEM certificate the control plane must present exactly (instead of --ca)")
      ->envname("PLFM_AGENT_PINNED_CERT");
  run->add_flag("--unsafe-plain-http", o.control_plane_tls.unsafe_allow_plain_http,
                "UNSAFE: allow a plain http:// control plane on a non-loopback address (node "
                "tokens and secrets files cross the network unencrypted)");
  run->add_option("--enroll-token", o.enroll_token,
                  "One-time token from `vt nodes enroll` (first start only)")
      ->envname("PLFM_AGENT_ENROLL_TOKEN");
  run->add_option("--enroll-token-file", flags->enroll_token_file,
                  "Read the enrollment token here");
  run->add_option("--plan-file", o.plan_file,
                  "Run standalone from a NodePlan JSON file (re-read when it changes)");
  run->add_option("--kernel", o.kernel, "Guest kernel (vmlinux), from scripts/fetch-kernel")
      ->envname("PLFM_AGENT_KERNEL");
  run->add_option("--initramfs", o.initramfs, "A prebuilt vt-init initramfs")
      ->envname("PLFM_AGENT_INITRAMFS");
  run->add_option("--kernel-dir", flags->kernel_dir,
                  "A scripts/fetch-kernel release dir: its vmlinux and modules")
      ->envname("PLFM_AGENT_KERNEL_DIR");
  run->add_option("--vt-init", o.vt_init,
                  "The static vt-init: the agent builds and caches the initramfs from it")
      ->envname("PLFM_AGENT_VT_INIT");
  run->add_option("--runtime", flags->runtime, "qemu or firecracker")->capture_default_str();
  run->add_option("--qemu", flags->qemu_binary, "QEMU binary")->capture_default_str();
  run->add_option("--accel", flags->accel, "QEMU acceleration: auto, kvm or tcg")
      ->capture_default_str();
  run->add_option("--registry-allow-cidr", flags->registry_allow_cidrs,
                  "Also pull from registries in this non-public prefix, e.g. 127.0.0.1/32 "
                  "(repeatable; by default only public addresses)")
      ->check([](const std::string& v) -> std::string {
        auto p = image::parseIpPrefix(v);
        return p ? std::string() : p.error().message();
      });
  run->add_option("--insecure-registry", o.image.insecure_registries,
                  "Pull from this registry HOST:PORT over plain http, as from a loopback one "
                  "(repeatable; layers are still checked against their digests, but registry "
                  "credentials would cross the network in clear: `vt dev --nodes` only)");
  run->add_flag("--allow-oci-layout-images", flags->allow_oci_layout,
                "Accept oci:DIR image references, which read a directory on this host (tests)");
  run->add_flag("!--unsafe-unconfined-vms", flags->confine.enabled,
                "Run VMMs as root without their own uid, Landlock domain and cgroup limits "
                "(unsafe; for hosts that cannot confine them)")
      ->envname("PLFM_AGENT_UNSAFE_UNCONFINED_VMS");
  run->add_option("--vmm-memory-overhead-mb", flags->confine.memory_overhead_mb,
                  "A VMM's memory limit is guest RAM plus this")
      ->capture_default_str();
  run->add_option("--vmm-pids-max", flags->confine.pids_max, "A VMM's pids (threads) limit")
      ->capture_default_str();
  run->add_option("--vmm-uid-base", flags->confine.uid_base,
                  "First uid of the per-instance VMM uids (2^20 of them)")
      ->capture_default_str();
  run->add_option("--firecracker", flags->firecracker_binary,
                  "The Firecracker binary (the agent confines it itself: not the jailer, unless "
                  "with --unsafe-unconfined-vms)")
      ->capture_default_str();
  run->add_option("--image-cache", o.image_cache_dir, "Image cache dir (default STATE/images)");
  run->add_option("--image-cache-budget", o.image_budget,
                  "The image cache's size budget: a size (\"20GiB\") or a share of its "
                  "filesystem (\"50%\"); the agent evicts least recently used images no "
                  "instance uses, keeping each env's current and previous release")
      ->capture_default_str();
  run->add_option_function<int64_t>(
         "--image-gc-interval", [&o](int64_t s) { o.image_gc_interval = std::chrono::seconds(s); },
         "Seconds between image collections (also run after an instance lets go of its "
         "image and after a pull; default 300)")
      ->check(CLI::Range(int64_t{10}, int64_t{86400}));
  run->add_option("--scratch-mb", o.scratch_mb, "Per-instance writable disk, MiB")
      ->capture_default_str();
  run->add_option("--hostname", o.facts.hostname, "Node name to enroll with");
  run->add_option("--underlay-address", o.facts.underlay_address,
                  "Where other nodes reach this one (default: the hostname)");
  run->add_option("--cores", flags->cores, "Cores to offer (default: all)");
  run->add_option("--memory-mb", flags->memory_mb, "Memory to offer (default: 7/8 of RAM - 512)");
  run->add_flag("!--no-network", o.manage_network, "Do not create taps (no guest networking)");
  run->add_flag("--unsafe-allow-unfiltered-guests", o.unsafe_allow_unfiltered_guests,
                "UNSAFE: when the guest network filter (nftables) cannot be installed, run "
                "guests unfiltered (spoofing, host services and other orgs reachable) instead "
                "of failing them");
  addPrefixOption(run, "--guest-inbound-allow", o.firewall_policy.inbound_allowed,
                  "An IPv6 prefix outside the platform allowed to open connections to guests, "
                  "e.g. an ingress on another host (repeatable; by default none: only this "
                  "node's ingress and health checks reach guests)");
  addPrefixOption(run, "--guest-egress-deny", o.firewall_policy.egress_denied,
                  "An IPv6 prefix guests may not reach, such as the underlay's private services "
                  "(repeatable; instances are decided by org first)")
      ->default_str("fc00::/7");
  addEgressOptions(*run, o);
  run->add_option("--nft", o.nft_binary, "The nft binary for the guest network filter")
      ->capture_default_str();
  addMeshOptions(*run, o);
  run->add_option("--listen", o.listen,
                  "Serve /healthz, /metrics, /v1/instances and instance logs here");
  run->add_option("--advertise-url", o.advertise_url,
                  "The URL the control plane reaches --listen at (default: derived from it); its "
                  "host must be the node's --underlay-address (loopback only when that is)");
  run->add_flag("--listen-tls", o.listen_tls,
                "TLS on a loopback --listen too (always on for any other address): a key and "
                "self-signed certificate made at start, pinned by the control plane");
  run->add_option("--plan-wait", flags->plan_wait, "Long-poll wait, seconds")
      ->capture_default_str();
  run->add_option("--boot-timeout", flags->boot_timeout, "VMM start to READY, seconds")
      ->capture_default_str();
  run->add_option("--shutdown-grace-ms", o.shutdown_grace_ms, "SIGTERM to SIGKILL in the guest")
      ->capture_default_str();
  run->add_flag("--stop-instances-on-exit", o.stop_instances_on_exit,
                "Stop every VM when the agent exits (default: leave them running)");
  addBackupOptions(*run, o);
  run->add_option("--log-level", flags->log_level, "debug, info, warn, error")
      ->capture_default_str();
  run->add_option("--log-file", flags->log_file, "Append JSON logs here (default: stderr)");
  run->callback([run, flags, action] {
    applyConfigFile(*run, flags->config_file);
    *action = [flags] { return runAgent(*flags); };
  });
}

}  // namespace plfm::agent
