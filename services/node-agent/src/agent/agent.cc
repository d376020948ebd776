#include "agent/agent.h"

#include <arpa/inet.h>
#include <sodium.h>
#include <unistd.h>

#include <sys/stat.h>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <vector>

#include "agent/errors.h"
#include "agent/instance_worker.h"
#include "agent/log_endpoint.h"
#include "agent/node_egress.h"
#include "agent/workload_check.h"
#include "netdev/mesh_plan.h"
#include "netdev/tap.h"
#include "plfm/core/id.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"
#include "plfm/http/http.h"
#include "plfm/http/pki.h"
#include "plfm/secrets/format.h"
#include "runtime/cgroup.h"
#include "runtime/initramfs.h"

namespace plfm::agent {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// "registry/repo:tag" + digest -> "registry/repo@sha256:...".
std::string pinnedRef(const std::string& ref, const std::string& digest) {
  std::string base = ref.substr(0, ref.find('@'));
  auto slash = base.rfind('/');
  auto colon = base.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    base.resize(colon);
  }
  return base + "@" + digest;
}

}  // namespace

int64_t hostMemoryMb() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit) {
    if (key == "MemTotal:") return kb / 1024;
  }
  return 1024;
}

Result<netdev::GuestFilter> guestFilterFor(const Workload& w, const std::string& tap,
                                           const std::string& ipv4) {
  const std::string org = w.org_id.empty() ? "instance:" + w.instance_id : "org:" + w.org_id;
  auto f = netdev::parseGuestFilter(tap, w.address, org, ipv4);
  if (!f) return std::move(f).error().context("the guest network filter");
  return f;
}

Agent::Agent(AgentOptions options, std::unique_ptr<runtime::MicroVmRuntime> runtime,
             std::unique_ptr<VolumeBackups> backups)
    : options_(std::move(options)),
      runtime_(std::move(runtime)),
      store_(options_.state_dir + "/instances"),
      volumes_(options_.state_dir + "/volumes"),
      backups_(std::move(backups)) {
  if (options_.backup.cache_dir.empty())
    options_.backup.cache_dir = options_.state_dir + "/restic-cache";
  if (!backups_) backups_ = std::make_unique<ResticBackups>(options_.backup);
}

Agent::~Agent() { stop(); }

std::string Agent::runDirFor(const std::string& instance_id) const {
  return options_.state_dir + "/vms/" + instance_id;
}

std::string Agent::logPathFor(const std::string& instance_id) const {
  return options_.state_dir + "/logs/" + instance_id + ".log";
}

std::vector<std::string> Agent::endpoints() const {
  return http_ ? http_->endpoints() : std::vector<std::string>{};
}

Result<void> Agent::start() {
  std::error_code ec;
  for (const char* sub : {"/instances", "/vms", "/logs", "/templates"}) {
    fs::create_directories(options_.state_dir + sub, ec);
    if (ec) return Error(errc::kIo, "creating " + options_.state_dir + sub + ": " + ec.message());
  }
  // A template half-formatted when an earlier agent died is thrown away.
  for (const auto& e : fs::directory_iterator(options_.state_dir + "/templates", ec)) {
    if (e.path().filename().string().find(".tmp") != std::string::npos) fs::remove(e.path(), ec);
  }
  PLFM_TRY(volumes_.open());
  if (auto t = scratchTemplate(); !t) {  // made now so the first instance does not wait
    log::warn("formatting the scratch disk template failed", {{"error", t.error().toString()}});
  }
  std::string cache_dir =
      options_.image_cache_dir.empty() ? options_.state_dir + "/images" : options_.image_cache_dir;
  if (!options_.image_budget.empty()) {
    fs::create_directories(cache_dir, ec);
    auto budget = parseImageBudget(options_.image_budget, filesystemBytes(cache_dir));
    if (!budget) return std::move(budget).error().context("--image-cache-budget");
    options_.image.size_budget_bytes = *budget;
  }
  PLFM_ASSIGN_OR_RETURN(auto cache, image::ImageCache::open(cache_dir, options_.image));
  image_history_.emplace(options_.state_dir + "/image-history");
  if (options_.initramfs.empty() && !options_.vt_init.empty()) {
    runtime::InitramfsInputs in;
    in.init_binary = options_.vt_init;
    in.modules_dir = options_.kernel_modules;
    auto built = runtime::buildInitramfs(in, options_.state_dir + "/initramfs");
    if (!built) return std::move(built).error().context("building the initramfs");
    options_.initramfs = *built;
    log::info("initramfs ready", {{"path", options_.initramfs}});
  }
  if (options_.initramfs.empty() && options_.facts.role != "edge") {
    return Error(errc::kInvalidArgument,
                 "no initramfs: give --initramfs, or --vt-init (and --kernel-dir)");
  }
  images_.emplace(std::move(cache));
  if (options_.plan_file.empty()) {
    PLFM_TRY(loadOrEnroll());
  } else {
    PLFM_TRY(loadStandaloneIdentity());
  }
  if (options_.manage_network) {
    std::lock_guard lock(firewall_mu_);
    firewall_.emplace(options_.state_dir + "/firewall", options_.nft_binary,
                      options_.firewall_policy);
    if (options_.facts.role != "edge") {
      egress_ = std::make_unique<NodeEgress>(options_);
      (void)firewall_->setGuestSubnet4(egress_->guestSubnet4());
    }
  }
  adoptOrClean();
  if (options_.mesh_enabled) {
    options_.mesh.mesh.state_dir = options_.state_dir;
    options_.mesh.port = static_cast<uint16_t>(options_.facts.mesh_port);
    if (options_.plan_file.empty()) options_.mesh.report = meshKeyReporter();
    mesh_ = std::make_unique<MeshMember>(options_.mesh, metrics_);
    mesh_->start();
  }
  volume_ops_ = std::make_unique<VolumeOps>(volumeOpsDeps(), *backups_);
  PLFM_TRY(volume_ops_->start());
  if (!options_.listen.empty()) {
    PLFM_TRY(prepareListener());
    PLFM_TRY(startHttp());
  }
  plan_thread_ = std::thread([this] { planLoop(); });
  if (options_.plan_file.empty()) heartbeat_thread_ = std::thread([this] { heartbeatLoop(); });
  gc_requested_ = true;  // one collection at start
  gc_thread_ = std::thread([this] { gcLoop(); });
  log::info("node agent started", {{"node_id", credential_.node_id},
                                   {"runtime", std::string(runtime_->name())},
                                   {"state_dir", options_.state_dir}});
  return ok();
}

void Agent::stop() {
  if (stopping_.exchange(true)) return;
  wake_.notify_all();
  {
    std::lock_guard lock(mu_);
    for (auto& [id, w] : workers_) w->wake();
  }
  if (plan_thread_.joinable()) plan_thread_.join();
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
  dns_feed_.reset();  // before the responder it feeds
  dns_.reset();
  if (mesh_) mesh_->stop(options_.stop_instances_on_exit);
  if (volume_ops_) volume_ops_->stop();  // before the workers its snapshots go through
  {
    std::lock_guard lock(gc_mu_);  // so the GC thread cannot miss the wake-up
  }
  gc_cv_.notify_all();
  if (gc_thread_.joinable()) gc_thread_.join();
  std::map<std::string, std::unique_ptr<InstanceWorker>> workers;
  {
    std::lock_guard lock(mu_);
    workers.swap(workers_);
  }
  for (auto& [id, w] : workers) w->join();
  if (options_.stop_instances_on_exit) {
    // No guest is left to filter: the table goes with them.
    std::lock_guard lock(firewall_mu_);
    if (firewall_) {
      if (auto r = firewall_->remove(); !r) {
        log::warn("removing the guest network filter failed", {{"error", r.error().toString()}});
      }
    }
    if (egress_) egress_->remove();
    std::lock_guard dns_lock(dns_mu_);
    in6_addr host{};
    if (!dns_address_.empty() && ::inet_pton(AF_INET6, dns_address_.c_str(), &host) == 1) {
      releaseHostAddress(netdev::realCommandRunner(), options_.mesh.mesh.ip, host);
    }
  }
  if (http_) http_->stop(std::chrono::seconds(1));
  log::info("node agent stopped", {{"node_id", credential_.node_id},
                                   {"vms_left_running", !options_.stop_instances_on_exit}});
}

Result<void> Agent::loadOrEnroll() {
  const std::string path = options_.state_dir + "/node.json";
  if (fs::exists(path)) {
    PLFM_ASSIGN_OR_RETURN(auto text, readFile(path));
    auto j = json::parse(text, nullptr, false);
    if (j.is_discarded()) return Error(errc::kInvalidArgument, path + " is not JSON");
    PLFM_ASSIGN_OR_RETURN(credential_, NodeCredential::fromJson(j));
    if (!options_.control_planes.empty()) credential_.control_planes = options_.control_planes;
  } else {
    if (options_.control_planes.empty()) {
      return Error(
          errc::kInvalidArgument,
          "no node credential yet: give --control-plane and --enroll-token (or --plan-file)");
    }
    if (options_.enroll_token.empty()) {
      return Error(errc::kInvalidArgument,
                   "this node is not enrolled: give --enroll-token (from `vt nodes enroll`)");
    }
    NodeFacts facts = options_.facts;
    if (facts.wireguard_public_key.empty()) {
      // The node's WireGuard identity: a Curve25519 key pair (WireGuard's
      // keys), the private half kept beside the credential.
      unsigned char pk[crypto_box_PUBLICKEYBYTES];
      unsigned char sk[crypto_box_SECRETKEYBYTES];
      if (sodium_init() < 0) return Error(errc::kInternal, "libsodium init failed");
      crypto_box_keypair(pk, sk);
      char b64[64];
      sodium_bin2base64(b64, sizeof b64, sk, sizeof sk, sodium_base64_VARIANT_ORIGINAL);
      auto saved =
          writeFileAtomic(options_.state_dir + "/wireguard.key", std::string(b64) + "\n", 0600);
      sodium_memzero(sk, sizeof sk);
      sodium_memzero(b64, sizeof b64);
      PLFM_TRY(saved);
      sodium_bin2base64(b64, sizeof b64, pk, sizeof pk, sodium_base64_VARIANT_ORIGINAL);
      facts.wireguard_public_key = b64;
    }
    PLFM_ASSIGN_OR_RETURN(credential_,
                          ControlPlaneClient::enroll(options_.control_planes, options_.enroll_token,
                                                     facts, options_.control_plane_tls));
    PLFM_TRY(writeFileAtomic(path, credential_.toJson().dump(1) + "\n", 0600));
    log::info("node enrolled",
              {{"node_id", credential_.node_id}, {"ipv6_prefix", credential_.ipv6_prefix}});
  }
  reports_ = std::make_unique<ControlPlaneClient>(credential_.control_planes, credential_.token,
                                                  options_.control_plane_tls);
  return ok();
}

Result<void> Agent::loadStandaloneIdentity() {
  // Plan-file mode talks to no control plane; a node.json, when present,
  // only names the node and pins the relay key its listener accepts.
  const std::string path = options_.state_dir + "/node.json";
  if (!fs::exists(path)) return ok();
  PLFM_ASSIGN_OR_RETURN(auto text, readFile(path));
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return Error(errc::kInvalidArgument, path + " is not JSON");
  PLFM_ASSIGN_OR_RETURN(credential_, NodeCredential::fromJson(j));
  return ok();
}

void Agent::adoptOrClean() {
  auto records = store_.loadAll();
  if (!records) {
    log::error("loading instance records failed", {{"error", records.error().toString()}});
    return;
  }
  std::set<std::string> live_dirs;
  std::set<std::string> live_taps;
  std::lock_guard lock(mu_);
  for (auto& rec : *records) {
    const std::string id = rec.workload.instance_id;
    bool vm_alive = rec.vm && runtime_->alive(*rec.vm);
    if (rec.phase == Phase::kPreparing || rec.phase == Phase::kBooting) {
      // A half-done start: roll it back (the worker starts it again). The
      // VMM may have started before its handle was saved: it names the run
      // dir on its command line.
      releaseInstanceResources(*this, rec, ReleaseMode{.keep_console = false, .kill_strays = true});
      log::info("rolled back a half-done start",
                {{"instance_id", id}, {"phase", std::string(phaseName(rec.phase))}});
      rec.phase = Phase::kAllocated;
      (void)store_.save(rec);
    } else if (rec.vm) {
      if (vm_alive) log::info("adopted a running VM", {{"instance_id", id}, {"pid", rec.vm->pid}});
      // Its VM writes its volumes: no other instance may start on them
      // until its worker releases them.
      if (auto c = volumes_.claim(id, rec.workload.volumes); !c) {
        log::error("an adopted instance's volume is claimed twice",
                   {{"instance_id", id}, {"error", c.error().toString()}});
      }
      killVmmsIn(*runtime_, rec.run_dir, id, vm_alive ? rec.vm->pid : -1);  // strays only
      live_dirs.insert(rec.run_dir);
      live_taps.insert(rec.tap);
      if (!rec.tap.empty() && options_.manage_network) {
        // Rebuilt from the record before its worker starts, so the rewrite
        // below (and any worker's) keeps this guest filtered.
        if (auto f = guestFilterFor(rec.workload, rec.tap, rec.ipv4)) {
          std::lock_guard fw(firewall_mu_);
          guest_filters_.insert_or_assign(id, std::move(*f));
        } else {
          log::error("an adopted instance cannot be filtered",
                     {{"instance_id", id}, {"error", f.error().toString()}});
        }
      }
    }
    auto worker = std::make_unique<InstanceWorker>(*this, std::move(rec));
    worker->start();
    workers_[id] = std::move(worker);
  }
  // Orphans: run dirs and taps that no record owns (a crash between creating
  // them and saving the record).
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(options_.state_dir + "/vms", ec)) {
    std::string dir = entry.path().string();
    if (live_dirs.count(dir) != 0) continue;
    killVmmsIn(*runtime_, dir, entry.path().filename().string());
    runtime::removeVmmGroup(entry.path().filename().string());
    fs::remove_all(dir, ec);
  }
  if (options_.manage_network) {
    // The table as the records say, whatever a killed agent left behind.
    std::lock_guard fw(firewall_mu_);
    if (auto r = applyFirewallLocked(); !r) {
      log::error(
          "installing the guest network filter failed; instances with a network will not "
          "start unless --unsafe-allow-unfiltered-guests",
          {{"error", r.error().toString()}});
    }
  }
  if (options_.manage_network) {
    if (auto taps = netdev::listLinks(netdev::kTapPrefix)) {
      for (const auto& t : *taps) {
        if (live_taps.count(t) == 0) {
          (void)netdev::removeTap(t);
          log::info("removed an orphaned tap", {{"device", t}});
        }
      }
    }
  }
}

void Agent::applyPlan(const NodePlan& plan) {
  std::vector<std::pair<RefusedInstance, std::string>> refusals;
  std::map<std::string, std::set<image::Digest>> images;
  // The guest filter learns the cluster prefix before the mesh carries traffic.
  if (auto section = netdev::parseMeshPlan(plan.mesh)) {
    filterMesh(section->plan.cluster_prefix.str(), options_.mesh.mesh.interface,
               options_.mesh.interface2.empty()
                   ? netdev::defaultMeshInterface2(options_.mesh.mesh.interface)
                   : options_.mesh.interface2);
    if (egress_) egress_->follow(&section->plan);
  } else if (egress_) {
    egress_->follow(nullptr);
  }
  if (egress_) {
    // The guest subnet's IPv4 rules follow the subnet (netdev/firewall.h).
    std::lock_guard lock(firewall_mu_);
    if (firewall_ && firewall_->setGuestSubnet4(egress_->guestSubnet4())) {
      if (auto r = applyFirewallLocked(); !r) {
        log::warn("rewriting the guest filter for IPv4 failed; the next rewrite retries",
                  {{"error", r.error().toString()}});
      }
    }
  }
  if (mesh_) mesh_->observe(plan.mesh);
  if (auto section = netdev::parseMeshPlan(plan.mesh); section && mesh_) startDns(section->plan);
  if (options_.facts.role == "edge" && !plan.instances.empty()) {
    // The placer never places here; a plan that does is not followed.
    log::error("an edge-only node was given instances; ignoring them",
               {{"instances", plan.instances.size()}});
    NodePlan none = plan;
    none.instances = json::array();
    return applyPlan(none);
  }
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    refusals = convergeLocked(plan, images);
  }
  if (image_history_) image_history_->observe(images);
  // Outside mu_: making a volume runs mkfs, and a report is a network call.
  auto volumes = convergeVolumes(plan.volumes);
  if (volume_ops_) volume_ops_->observe(parseVolumeOps(plan.volume_ops), std::move(volumes));
  for (const auto& [who, why] : refusals) {
    StatusReport r;
    r.generation = who.generation;
    r.seq = 1;
    r.phase = "failed";
    r.reason = why;
    if (sendReport(who.instance_id, r)) {
      std::lock_guard lock(mu_);
      refused_[who.instance_id] = who.generation;
    }
  }
}

std::vector<std::pair<RefusedInstance, std::string>> Agent::convergeLocked(
    const NodePlan& plan, std::map<std::string, std::set<image::Digest>>& images) {
  std::vector<std::pair<RefusedInstance, std::string>> refusals;
  std::set<std::string> listed;
  for (const auto& spec : plan.instances) {
    auto w = Workload::fromJson(spec);
    if (!w) {
      // Only this instance is refused; the rest of the plan runs.
      metrics_.counter("plfm_agent_plan_refused_total", "WorkloadSpecs refused at the edge").inc();
      auto who = refusedInstance(spec);
      if (!who) {
        log::error("ignoring a WorkloadSpec with no valid instance_id and generation",
                   {{"error", w.error().toString()}});
        continue;
      }
      listed.insert(who->instance_id);  // a bad update never removes a running instance
      if (workers_.count(who->instance_id) != 0) {
        log::error("ignoring an invalid update; the instance keeps its last valid spec",
                   {{"instance_id", who->instance_id}, {"error", w.error().toString()}});
      } else if (auto it = refused_.find(who->instance_id);
                 it == refused_.end() || it->second != who->generation) {
        log::error("refusing an invalid WorkloadSpec",
                   {{"instance_id", who->instance_id}, {"error", w.error().toString()}});
        refusals.emplace_back(*who, w.error().message());
      }
      continue;
    }
    listed.insert(w->instance_id);
    refused_.erase(w->instance_id);
    if (auto d = image::Digest::parse(w->image_digest)) images[w->env_id].insert(*d);
    auto it = workers_.find(w->instance_id);
    if (it != workers_.end()) {
      it->second->update(*w);
      continue;
    }
    InstanceRecord rec;
    rec.workload = *w;
    (void)store_.save(rec);
    auto worker = std::make_unique<InstanceWorker>(*this, std::move(rec));
    worker->start();
    workers_[w->instance_id] = std::move(worker);
  }
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->second->finished()) {
      it->second->join();
      it = workers_.erase(it);
      continue;
    }
    if (listed.count(it->first) == 0) it->second->remove();
    ++it;
  }
  std::erase_if(refused_, [&](const auto& r) { return listed.count(r.first) == 0; });
  metrics_.gauge("plfm_agent_plan_version", "The NodePlan version converged on")
      .set(static_cast<double>(plan.version));
  return refusals;
}

std::vector<VolumeOp> Agent::parseVolumeOps(const json& entries) {
  std::vector<VolumeOp> ops;
  if (!entries.is_array()) return ops;
  for (const auto& entry : entries) {
    auto op = parseVolumeOp(entry);
    if (!op) {
      metrics_.counter("plfm_agent_plan_refused_total", "WorkloadSpecs refused at the edge").inc();
      log::error("refusing an invalid NodePlan volume op", {{"error", op.error().toString()}});
      // Reported failed when it names itself well enough, so it does not
      // stay requested; otherwise ignored.
      if (auto refused = refusedVolumeOp(entry, op.error().message())) {
        ops.push_back(std::move(*refused));
      }
      continue;
    }
    ops.push_back(std::move(*op));
  }
  return ops;
}

VolumeOpsDeps Agent::volumeOpsDeps() {
  VolumeOpsDeps d;
  d.state_dir = options_.state_dir;
  d.volumes = &volumes_;
  d.metrics = &metrics_;
  d.e2fsck = options_.backup.e2fsck_binary;
  d.verify_every = options_.verify_every;
  d.snapshot = [this](const std::string& volume_id, const std::string& snapshot_id) {
    return snapshotVolume(volume_id, snapshot_id);
  };
  d.report_volume = [this](const std::string& volume_id, const VolumeReport& r) {
    reportVolume(volume_id, r);
  };
  if (!reports_) return d;  // plan-file mode: nobody to tell
  d.report_snapshot = [this](const std::string& volume_id, const std::string& snapshot_id,
                             const SnapshotReport& r) {
    std::lock_guard lock(report_mu_);
    return reports_->reportSnapshot(credential_.node_id, volume_id, snapshot_id, r);
  };
  d.report_op = [this](const std::string& op_id, const VolumeOpReport& r) {
    std::lock_guard lock(report_mu_);
    return reports_->reportVolumeOp(credential_.node_id, op_id, r);
  };
  return d;
}

std::vector<NodeVolume> Agent::convergeVolumes(const json& entries) {
  std::vector<NodeVolume> parsed;
  if (!entries.is_array()) return parsed;
  for (const auto& entry : entries) {
    auto v = parseNodeVolume(entry);
    if (!v) {
      // Only this entry is refused; nothing is deleted on its account.
      metrics_.counter("plfm_agent_plan_refused_total", "WorkloadSpecs refused at the edge").inc();
      log::error("ignoring an invalid NodePlan volume", {{"error", v.error().toString()}});
      continue;
    }
    parsed.push_back(*v);
    // Its restore op writes the file and reports it (volume_ops.h).
    if (v->restoring) continue;
    if (!v->deleting) {
      // A running VM's volume grows through its worker, which reports it
      // once the guest has the new size (an online extend, or the next
      // start); growing it here would report a size the guest does not see.
      if (volumes_.holder(v->volume_id) && volumes_.size(v->volume_id)) continue;
      auto size = volumes_.ensure(v->volume_id, v->size_bytes);
      if (size) {
        metrics_.gauge("plfm_agent_volume_size_bytes", "Size of each volume file on this node")
            .set(static_cast<double>(*size), {{"volume_id", v->volume_id}});
        reportVolume(v->volume_id, {"ready", *size, ""});
      } else {
        log::error("a volume could not be made",
                   {{"volume_id", v->volume_id}, {"error", size.error().toString()}});
        reportVolume(v->volume_id,
                     {"failed", v->size_bytes, shownValue(size.error().message(), 400)});
      }
      continue;
    }
    // The file goes only when the plan says so and no instance here names
    // the volume any more (its record is gone with the instance).
    bool named = false;
    {
      std::lock_guard lock(mu_);
      for (const auto& [id, w] : workers_) named = named || w->usesVolume(v->volume_id);
    }
    if (named) continue;
    if (auto r = volumes_.remove(v->volume_id); !r) {
      log::warn("a deleting volume cannot be removed yet",
                {{"volume_id", v->volume_id}, {"error", r.error().toString()}});
      continue;
    }
    metrics_.gauge("plfm_agent_volume_size_bytes", "Size of each volume file on this node")
        .set(0, {{"volume_id", v->volume_id}});
    reportVolume(v->volume_id, {"deleted", 0, ""});
  }
  return parsed;
}

void Agent::reportVolume(const std::string& volume_id, const VolumeReport& report) {
  if (!reports_) return;  // plan-file mode: nobody to tell
  std::lock_guard lock(report_mu_);
  if (auto it = volume_reports_.find(volume_id);
      it != volume_reports_.end() && it->second == report) {
    return;
  }
  if (auto r = reports_->reportVolume(credential_.node_id, volume_id, report); !r) {
    // Not remembered as delivered: the next plan round sends it again.
    log::warn("volume report not delivered; will resend",
              {{"volume_id", volume_id}, {"state", report.state}, {"error", r.error().toString()}});
    metrics_.counter("plfm_agent_report_failures_total", "Status reports that failed").inc();
    return;
  }
  log::info("volume status",
            {{"volume_id", volume_id}, {"state", report.state}, {"size_bytes", report.size_bytes}});
  volume_reports_[volume_id] = report;
}

Result<void> Agent::applyFirewallLocked() {
  if (!firewall_) return Error(errc::kFailedPrecondition, "the agent does not manage networking");
  std::vector<netdev::GuestFilter> guests;
  guests.reserve(guest_filters_.size());
  for (const auto& [id, f] : guest_filters_) guests.push_back(f);
  auto r = firewall_->apply(std::move(guests));
  metrics_.gauge("plfm_agent_filtered_guests", "Guests in the node's nftables guest filter")
      .set(r ? static_cast<double>(guest_filters_.size()) : 0.0);
  if (!r) {
    metrics_.counter("plfm_agent_firewall_failures_total", "Failed rewrites of the guest filter")
        .inc();
  }
  return r;
}

MeshKeyReporter Agent::meshKeyReporter() const {
  auto client = std::make_shared<ControlPlaneClient>(credential_.control_planes, credential_.token,
                                                     options_.control_plane_tls);
  MeshKeyReporter r;
  r.staged = [client, node = credential_.node_id](const netdev::WgKey& key, uint16_t port) {
    return client->reportMeshKey(node, "next", key.base64(), port);
  };
  r.current = [client, node = credential_.node_id](const netdev::WgKey& key) {
    return client->reportMeshKey(node, "current", key.base64(), 0);
  };
  return r;
}

void Agent::startDns(const netdev::MeshPlan& plan) {
  if (dns_ || !options_.dns_enabled) return;
  auto r = startMeshDnsResponder(plan, options_.mesh.mesh, options_.dns_upstreams);
  if (!r) {
    log::warn("the DNS responder did not start; the next plan retries",
              {{"error", r.error().toString()}});
    return;
  }
  dns_ = std::move(*r);
  if (options_.plan_file.empty()) {
    auto client = std::make_shared<ControlPlaneClient>(
        credential_.control_planes, credential_.token, options_.control_plane_tls);
    dns_feed_ = std::make_unique<DnsFeed>(
        [client, node = credential_.node_id](int64_t after, std::chrono::seconds wait) {
          return client->services(node, after, wait);
        },
        [dns = dns_.get()](netdev::dns::ServiceTable table) { dns->setTable(std::move(table)); });
  }
  const netdev::Ipv6Prefix host{plan.self.address, 128};
  const std::string address = host.str().substr(0, host.str().find('/'));
  {
    std::lock_guard lock(firewall_mu_);
    if (firewall_ && firewall_->setDnsResponder(host)) (void)applyFirewallLocked();
  }
  std::lock_guard lock(dns_mu_);
  dns_address_ = address;
  log::info("the DNS responder serves the guests", {{"address", address}});
}

std::string Agent::nameserver() const {
  std::lock_guard lock(dns_mu_);
  return dns_address_;
}

void Agent::filterMesh(std::string_view cluster_prefix, std::string_view mesh_interface,
                       std::string_view mesh_interface2) {
  std::optional<netdev::MeshFilter> mesh;
  if (!cluster_prefix.empty()) {
    auto parsed = netdev::parseMeshFilter(cluster_prefix, mesh_interface, mesh_interface2);
    if (!parsed) {
      log::error("the guest filter keeps its previous mesh settings",
                 {{"error", parsed.error().toString()}});
      return;
    }
    mesh = std::move(*parsed);
  }
  std::lock_guard lock(firewall_mu_);
  if (!firewall_ || !firewall_->setMesh(std::move(mesh))) return;
  if (auto r = applyFirewallLocked(); !r) {
    log::warn("rewriting the guest filter for the mesh failed; the next rewrite retries",
              {{"error", r.error().toString()}});
  }
}

Result<void> Agent::filterGuest(const std::string& instance_id, netdev::GuestFilter filter) {
  std::lock_guard lock(firewall_mu_);
  ipv4_held_.erase(instance_id);
  guest_filters_.insert_or_assign(instance_id, std::move(filter));
  auto r = applyFirewallLocked();
  if (r) return ok();
  guest_filters_.erase(instance_id);
  if (options_.unsafe_allow_unfiltered_guests) {
    log::warn("running a guest UNFILTERED (--unsafe-allow-unfiltered-guests)",
              {{"instance_id", instance_id}, {"error", r.error().toString()}});
    return ok();
  }
  return std::move(r).error().context("guest network isolation");
}

Result<std::string> Agent::guestIpv4(const std::string& instance_id) {
  const auto subnet = egress_ ? egress_->guestSubnet4() : std::nullopt;
  if (!subnet) return std::string();
  std::lock_guard lock(firewall_mu_);
  std::vector<std::string> used;
  for (const auto& [id, f] : guest_filters_) {
    if (f.ipv4()) used.push_back(netdev::formatIpv4(*f.ipv4()));
  }
  for (const auto& [id, a] : ipv4_held_) used.push_back(a);
  PLFM_ASSIGN_OR_RETURN(std::string a, netdev::lowestFreeGuestIpv4(*subnet, used));
  ipv4_held_[instance_id] = a;
  return a;
}

void Agent::unfilterGuest(const std::string& instance_id) {
  std::lock_guard lock(firewall_mu_);
  ipv4_held_.erase(instance_id);
  if (guest_filters_.erase(instance_id) == 0 || !firewall_) return;
  if (auto r = applyFirewallLocked(); !r) {
    // The next rewrite (the table is always rewritten whole) drops the entry.
    log::warn("removing a guest from the network filter failed",
              {{"instance_id", instance_id}, {"error", r.error().toString()}});
  }
}

Result<std::string> Agent::scratchTemplate() {
  std::lock_guard lock(scratch_mu_);
  if (!scratch_template_.empty()) return scratch_template_;
  const std::string path =
      options_.state_dir + "/templates/scratch-" + std::to_string(options_.scratch_mb) + "M.ext4";
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    const std::string tmp = path + ".tmp";
    {
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      if (!f) return Error(errc::kIo, "creating " + tmp);
    }
    fs::resize_file(tmp, options_.scratch_mb << 20, ec);
    if (ec) return Error(errc::kIo, "sizing " + tmp + ": " + ec.message());
    SpawnOptions so;
    so.stdout_path = tmp + ".log";
    // No journal (the disk does not outlive its VM); inode tables are
    // initialised lazily by the guest kernel, so the file stays sparse.
    auto r = runChecked({"mkfs.ext4", "-q", "-F", "-L", "vt-scratch", "-O", "^has_journal", "-E",
                         "root_owner=0:0,lazy_itable_init=1", tmp},
                        so);
    fs::remove(tmp + ".log", ec);
    if (!r) {
      fs::remove(tmp, ec);
      return std::move(r).error().context("formatting the scratch disk template");
    }
    fs::rename(tmp, path, ec);
    if (ec) return Error(errc::kIo, "renaming " + tmp + ": " + ec.message());
  }
  scratch_template_ = path;
  return scratch_template_;
}

Result<AcquiredImage> Agent::acquireImage(const Workload& w) {
  PLFM_ASSIGN_OR_RETURN(auto ref, image::parseImageRef(pinnedRef(w.image_ref, w.image_digest)));
  // Pulled for the workload's org, with its credentials: a digest another
  // org pulled is used only once the registry serves it to this org too.
  image::PullOptions pull;
  pull.scope = w.org_id.empty() ? w.instance_id : w.org_id;
  if (ref.transport == image::ImageRef::Transport::kRegistry) {
    pull.credentials = registryCredentials(w.instance_id, ref.registry);
  }
  auto pulled = images_->pull(ref, pull);
  if (pull.credentials) secrets::wipe(pull.credentials->password);
  if (!pulled) {
    return Error(errc::kImageFailed,
                 "image " + w.image_ref + " (" + w.image_digest + "): " + pulled.error().message());
  }
  PLFM_TRY(images_->acquire(pulled->manifest_digest, w.instance_id));
  requestImageGc();  // the cache may have grown past its budget
  return AcquiredImage{pulled->rootfs};
}

Result<image::ImageConfig> Agent::imageConfig(const std::string& digest) {
  PLFM_ASSIGN_OR_RETURN(auto d, image::Digest::parse(digest));
  PLFM_ASSIGN_OR_RETURN(auto pulled, images_->image(d));
  return std::move(pulled.config);
}

void Agent::releaseImage(const std::string& digest, const std::string& instance_id) {
  if (auto d = image::Digest::parse(digest)) {
    (void)images_->release(*d, instance_id);
    requestImageGc();
  }
}

UserDb Agent::userDb(const std::string& rootfs, const std::function<UserDb()>& load) {
  {
    std::lock_guard lock(users_mu_);
    if (auto it = users_.find(rootfs); it != users_.end()) return it->second;
  }
  UserDb db = load();
  std::lock_guard lock(users_mu_);
  return users_.emplace(rootfs, std::move(db)).first->second;
}

std::vector<InstanceStatus> Agent::instances() const {
  std::lock_guard lock(mu_);
  std::vector<InstanceStatus> out;
  for (const auto& [id, w] : workers_) {
    if (!w->finished()) out.push_back(w->status());
  }
  return out;
}

bool Agent::sendReport(const std::string& instance_id, const StatusReport& report) {
  if (!reports_) return true;  // plan-file mode: nobody to tell
  std::lock_guard lock(report_mu_);
  auto r = reports_->report(credential_.node_id, instance_id, report);
  if (!r) {
    log::warn(
        "status report not delivered; will resend",
        {{"instance_id", instance_id}, {"phase", report.phase}, {"error", r.error().toString()}});
    metrics_.counter("plfm_agent_report_failures_total", "Status reports that failed").inc();
    return false;
  }
  return true;
}

Result<std::string> Agent::fetchSecrets(const std::string& instance_id,
                                        const std::string& version) {
  if (!reports_) {
    return Error(
        errc::kFailedPrecondition,
        "the instance needs secrets version " + version +
            " but this agent runs from a plan file, with no control plane to fetch it from");
  }
  std::lock_guard lock(report_mu_);
  return reports_->fetchSecrets(credential_.node_id, instance_id, version);
}

std::optional<image::RegistryCredentials> Agent::registryCredentials(const std::string& instance_id,
                                                                     const std::string& registry) {
  if (!reports_) return std::nullopt;
  Result<std::optional<RegistryLogin>> got = [&] {
    std::lock_guard lock(report_mu_);
    return reports_->registryCredentials(credential_.node_id, instance_id);
  }();
  if (!got) {
    log::warn(
        "registry credentials unavailable; pulling anonymously",
        {{"instance_id", instance_id}, {"registry", registry}, {"error", got.error().message()}});
    return std::nullopt;
  }
  if (!*got) return std::nullopt;
  RegistryLogin& login = **got;
  // The control plane names the registry of the release's image; a pull of
  // another host never gets this org's credentials.
  std::string want = registry;
  for (char& c : want) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (want == "index.docker.io" || want == "registry-1.docker.io") want = "docker.io";
  if (login.registry != want) {
    log::warn("registry credentials are for another registry; pulling anonymously",
              {{"instance_id", instance_id}, {"registry", registry}, {"served", login.registry}});
    secrets::wipe(login.password);
    return std::nullopt;
  }
  return image::RegistryCredentials{std::move(login.username), std::move(login.password)};
}

void Agent::planLoop() {
  if (!options_.plan_file.empty()) {
    fs::file_time_type seen{};
    auto applied = std::chrono::steady_clock::now();
    while (!stopping_) {
      std::error_code ec;
      auto mtime = fs::last_write_time(options_.plan_file, ec);
      // Applied again now and then even unchanged, as the long poll does:
      // finished workers are reaped and a deleting volume whose last
      // instance is gone is removed.
      const bool due = std::chrono::steady_clock::now() - applied >= std::chrono::seconds(5);
      if (!ec && (mtime != seen || due)) {
        seen = mtime;
        applied = std::chrono::steady_clock::now();
        auto text = readFile(options_.plan_file);
        auto j = text ? json::parse(*text, nullptr, false) : json();
        if (!j.is_object()) {
          log::error("plan file is not a JSON object", {{"path", options_.plan_file}});
        } else {
          NodePlan p;
          p.version = j.value("version", int64_t{0});
          p.instances = j.value("instances", json::array());
          p.volumes = j.value("volumes", json::array());
          p.volume_ops = j.value("volume_ops", json::array());
          p.mesh = j.value("mesh", json());
          applyPlan(p);
        }
      }
      std::unique_lock lock(mu_);
      wake_.wait_for(lock, std::chrono::milliseconds(250), [&] { return stopping_.load(); });
    }
    return;
  }
  ControlPlaneClient client(credential_.control_planes, credential_.token,
                            options_.control_plane_tls);
  int64_t version = 0;  // the cursor: kept across failures, so another replica resumes from it
  bool first = true;
  std::chrono::milliseconds backoff(500);
  std::string replica;
  while (!stopping_) {
    // A short wait lets stop() end the loop quickly; the plan feed answers at
    // once whenever the plan moved.
    auto wait =
        first ? std::chrono::seconds(0) : std::min(options_.plan_wait, std::chrono::seconds(5));
    auto plan = client.plan(credential_.node_id, version, wait);
    if (!plan) {
      log::warn("plan poll failed", {{"error", plan.error().toString()}});
      std::unique_lock lock(mu_);
      wake_.wait_for(lock, backoff, [&] { return stopping_.load(); });
      backoff = std::min(backoff * 2, std::chrono::milliseconds(10'000));
      continue;
    }
    backoff = std::chrono::milliseconds(500);
    if (client.currentUrl() != replica) {
      replica = client.currentUrl();
      log::info("following the plan from a control-plane replica",
                {{"url", replica}, {"after", version}});
    }
    if (first || plan->version != version) {
      applyPlan(*plan);
      version = plan->version;
      first = false;
    } else {
      applyPlan(*plan);  // also reaps finished workers
    }
  }
}

void Agent::requestImageGc() {
  {
    std::lock_guard lock(gc_mu_);
    gc_requested_ = true;
  }
  gc_cv_.notify_all();
}

void Agent::gcLoop() {
  while (!stopping_) {
    {
      std::unique_lock lock(gc_mu_);
      gc_cv_.wait_for(lock, options_.image_gc_interval,
                      [&] { return stopping_.load() || gc_requested_; });
      gc_requested_ = false;
    }
    if (stopping_) return;
    (void)collectImages();
  }
}

Result<image::GcReport> Agent::collectImages() {
  if (!images_) return Error(errc::kFailedPrecondition, "the image cache is not open");
  const std::set<image::Digest> keep =
      image_history_ ? image_history_->keep() : std::set<image::Digest>{};
  metrics_.counter("plfm_agent_image_gc_runs_total", "Image cache collections").inc();
  auto r = images_->gc(keep);
  if (!r) {
    metrics_.counter("plfm_agent_image_gc_failures_total", "Image cache collections that failed")
        .inc();
    log::warn("image gc failed", {{"error", r.error().toString()}});
    return r;
  }
  const uint64_t freed = r->bytes_before > r->bytes_after ? r->bytes_before - r->bytes_after : 0;
  metrics_.counter("plfm_agent_image_gc_freed_bytes_total", "Bytes the image GC freed")
      .inc({}, static_cast<double>(freed));
  metrics_.counter("plfm_agent_image_gc_evicted_total", "Images the image GC evicted")
      .inc({}, r->images_removed);
  metrics_.gauge("plfm_agent_image_cache_bytes", "Bytes the image cache uses")
      .set(static_cast<double>(r->bytes_after));
  metrics_.gauge("plfm_agent_image_cache_budget_bytes", "The image cache's size budget")
      .set(static_cast<double>(options_.image.size_budget_bytes));
  if (r->images_removed > 0 || r->blobs_removed > 0) {
    log::info("image gc freed space", {{"freed_bytes", freed},
                                       {"images_removed", r->images_removed},
                                       {"blobs_removed", r->blobs_removed},
                                       {"cache_bytes", r->bytes_after},
                                       {"budget_bytes", options_.image.size_budget_bytes}});
  }
  if (r->over_budget) {
    log::warn("the image cache is over its budget; what is left is in use or kept for rollback",
              {{"cache_bytes", r->bytes_after},
               {"budget_bytes", options_.image.size_budget_bytes},
               {"images_in_use", r->images_in_use},
               {"images_kept", r->images_kept}});
  }
  return r;
}

void Agent::heartbeatLoop() {
  ControlPlaneClient client(credential_.control_planes, credential_.token,
                            options_.control_plane_tls);
  auto interval = std::chrono::seconds(std::max(1, credential_.heartbeat_interval_seconds));
  std::string url = agentUrl();
  while (!stopping_) {
    const uint64_t capacity = volumes_.capacityBytes();
    nlohmann::json mesh = nullptr;  // the mesh figures (mesh.md, "Operator view")
    if (mesh_) {
      if (auto totals = mesh_->totals()) mesh = netdev::toHeartbeatJson(*totals);
    }
    auto r = client.heartbeat(credential_.node_id, options_.agent_version, url, listen_cert_sha256_,
                              capacity, mesh);
    if (!r && !url.empty() && r.error().message().find("agent_url") != std::string::npos) {
      // The control plane refuses where we say the log endpoint is (not
      // the node's registered address): keep the node alive without it.
      log::error(
          "the control plane refused this agent's log endpoint; logs of this node are "
          "unavailable until --listen/--advertise-url name its underlay address",
          {{"agent_url", url}, {"error", r.error().toString()}});
      url.clear();
      r = client.heartbeat(credential_.node_id, options_.agent_version, {}, {}, capacity, mesh);
    }
    if (!r) {
      log::warn("heartbeat failed", {{"error", r.error().toString()}});
    } else if (!r->relay_public_key.empty()) {
      pinRelayKey(r->relay_public_key);
    }
    std::unique_lock lock(mu_);
    wake_.wait_for(lock, interval, [&] { return stopping_.load(); });
  }
}

std::string Agent::agentUrl() const {
  if (!options_.advertise_url.empty()) return options_.advertise_url;
  auto eps = endpoints();
  if (eps.empty() || eps[0].starts_with("unix:")) return "";
  // A wildcard listener is reached at the node's underlay address.
  std::string ep = eps[0];
  const size_t colon = ep.rfind(':');
  std::string host = ep.substr(0, colon);
  if (host == "[::]" || host == "0.0.0.0") {
    const std::string& u = options_.facts.underlay_address;
    if (u.empty()) return "";
    host = u.find(':') != std::string::npos && !u.starts_with("[") ? "[" + u + "]" : u;
  }
  return (listen_tls_ ? "https://" : "http://") + host + ep.substr(colon);
}

Result<void> Agent::prepareListener() {
  std::optional<relay::PublicKey> pinned;
  if (!credential_.relay_public_key.empty()) {
    auto k = relay::PublicKey::parse(credential_.relay_public_key);
    if (!k)
      return Error(errc::kInvalidArgument, "node.json: relay_public_key: " + k.error().message());
    pinned = *k;
  }
  relay_verifier_ = std::make_shared<RelayVerifier>(credential_.node_id, pinned);
  const bool tls = options_.listen_tls || !http::isLoopbackListen(options_.listen);
  if (!tls || options_.listen.starts_with("unix:")) return ok();
  // A fresh key and certificate at each start: the control plane pins
  // whatever the next heartbeat reports, so nothing needs to last.
  const std::string dir = options_.state_dir + "/listen-tls";
  std::error_code ec;
  fs::create_directories(dir, ec);
  fs::permissions(dir, fs::perms::owner_all, ec);
  PLFM_ASSIGN_OR_RETURN(auto pki, http::writeLocalPki(dir, {"localhost"}));
  PLFM_ASSIGN_OR_RETURN(listen_cert_sha256_, http::certificateSha256(pki.server_cert));
  listen_tls_ = http::ServerTlsOptions{pki.server_cert, pki.server_key};
  return ok();
}

void Agent::pinRelayKey(const std::string& text) {
  auto key = relay::PublicKey::parse(text);
  if (!key) {
    log::warn("the control plane's relay key is malformed; ignored",
              {{"error", key.error().message()}});
    return;
  }
  if (!relay_verifier_) return;
  const bool had = relay_verifier_->pinned().has_value();
  if (!relay_verifier_->pin(*key)) {
    // Never follow a change silently: whoever answers heartbeats could
    // otherwise make this agent serve logs to its own key.
    log::error(
        "the control plane reports another relay signing key than the one pinned at "
        "enrollment; refusing it (re-enroll the node to accept a new key)",
        {{"pinned", credential_.relay_public_key}, {"reported", text}});
    return;
  }
  if (had) return;
  credential_.relay_public_key = key->text();
  const std::string path = options_.state_dir + "/node.json";
  if (auto w = writeFileAtomic(path, credential_.toJson().dump(1) + "\n", 0600); !w) {
    log::warn("cannot save the pinned relay key", {{"error", w.error().toString()}});
  }
  log::info("pinned the control plane's relay signing key", {{"key", key->text()}});
}

Result<SnapshotResult> Agent::snapshotVolume(const std::string& volume_id,
                                             const std::string& snapshot_id) {
  if (!VolumeId::parse(volume_id)) return Error(errc::kInvalidArgument, "not a volume id");
  if (!validSnapshotId(snapshot_id)) {
    return Error(errc::kInvalidArgument, "a snapshot id is [a-z0-9_-], 1 to 64 bytes");
  }
  if (!volumes_.size(volume_id)) return Error(errc::kNotFound, "no volume " + volume_id);
  const std::string dir = options_.state_dir + "/snapshots";
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Error(errc::kIo, "creating " + dir + ": " + std::strerror(errno));
  }
  const std::string target = dir + "/" + snapshot_id + ".ext4";
  if (::access(target.c_str(), F_OK) == 0) {
    return Error(errc::kAlreadyExists, "snapshot " + snapshot_id + " exists");
  }
  auto job = std::make_shared<SnapshotJob>();
  job->volume_id = volume_id;
  job->target = target;
  auto done = job->done.get_future();
  // Nothing runs on it: the snapshot holds the volume's one-writer claim
  // for the copy, so an instance starting meanwhile waits for it.
  const std::string claimant = "snapshot " + snapshot_id;
  bool claimed = false;
  {
    std::lock_guard lock(mu_);
    const auto holder = volumes_.holder(volume_id);
    auto it = holder ? workers_.find(*holder) : workers_.end();
    if (it != workers_.end()) {
      PLFM_TRY(it->second->enqueueSnapshot(job));
    } else {
      PLFM_TRY(volumes_.claim(claimant, {WorkloadVolume{volume_id, volume_id, "/", 0}}));
      claimed = true;
    }
  }
  if (claimed) {
    const auto t0 = std::chrono::steady_clock::now();
    auto method = cloneOrCopy(volumes_.pathFor(volume_id), target);
    volumes_.release(claimant);
    if (!method) return std::move(method).error();
    SnapshotResult r{target, *method, -1, 0, true};
    r.copy_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    return r;
  }
  // Outside mu_: the worker may need the agent meanwhile.
  if (done.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    return Error(errc::kUnavailable, "the snapshot did not finish within 60 s");
  }
  return done.get();
}

std::optional<ExecTarget> Agent::execTarget(const std::string& instance_id) const {
  std::lock_guard lock(mu_);
  auto it = workers_.find(instance_id);
  if (it == workers_.end()) return std::nullopt;
  return it->second->execTarget();
}

bool fromLoopback(std::string_view remote) {
  return remote == "unix" || remote.starts_with("[::1]:") || remote.starts_with("127.") ||
         remote.starts_with("[::ffff:127.");
}

Result<void> Agent::startHttp() {
  http::ServerOptions opts;
  opts.listen = {options_.listen};
  opts.tls = listen_tls_;
  LogEndpoint logs{options_.state_dir + "/logs", relay_verifier_, &stopping_};
  ExecEndpoint exec;
  exec.verifier = relay_verifier_;
  exec.lookup = [this](const std::string& id) { return execTarget(id); };
  exec.metrics = &metrics_;
  http_ = std::make_unique<http::Server>(opts, [this, logs, exec](const http::Request& req) {
    if (LogEndpoint::matches(req)) return logs.serve(req);
    if (ExecEndpoint::matches(req)) return exec.serve(req);
    if (req.path == "/healthz") return http::Response::json(200, R"({"status":"ok"})");
    if (req.path == "/metrics") return http::Response::text(200, metrics_.render());
    if (req.path == "/v1/instances") {
      // Instance ids and failure reasons are the operator's, not the
      // underlay's: loopback only (`vt dev status`, an operator's shell).
      if (!fromLoopback(req.remote)) {
        return http::Response::json(
            403, R"({"error":{"code":"permission_denied","message":"/v1/instances is served )"
                 R"(on loopback only; use the control plane's API"}})");
      }
      json out = json::array();
      for (const auto& s : instances()) {
        out.push_back({{"instance_id", s.instance_id},
                       {"generation", s.generation},
                       {"phase", phaseName(s.phase)},
                       {"vmm_pid", s.vmm_pid},
                       {"reason", s.reason},
                       {"boot_ms", s.timings.boot_ms},
                       {"spawn_us", s.timings.spawn_us},
                       {"start_ms", s.timings.start_ms}});
      }
      return http::Response::json(200, out.dump());
    }
    return http::Response::json(404, R"({"error":{"code":"not_found","message":"no such path"}})");
  });
  return http_->start();
}

}  // namespace plfm::agent
