#include "agent/instance_worker.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "agent/errors.h"
#include "agent/guest_config.h"
#include "agent/health.h"
#include "agent/worker_util.h"
#include "image/fs_util.h"
#include "netdev/tap.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"
#include "plfm/secrets/format.h"
#include "runtime/cgroup.h"

namespace plfm::agent {
namespace fs = std::filesystem;
namespace gp = guest_proto;
using namespace worker_internal;  // NOLINT(google-build-using-namespace)
using std::chrono::milliseconds;

namespace {

// An exec check's output credit, and how much of its output is kept (the
// last line of it goes into an unhealthy reason).
constexpr uint32_t kExecCheckWindow = 64 * 1024;
constexpr size_t kExecCheckTailBytes = 4096;

int64_t unixMs(const Clock& clock) {
  return std::chrono::duration_cast<milliseconds>(clock.now().time_since_epoch()).count();
}

// A file of the image, read out of the ext4 with debugfs ("" when absent);
// `scratch_dir` is private to the caller (the instance's run dir).
std::string readFromExt4(const std::string& image, const std::string& path,
                         const std::string& scratch_dir) {
  std::string out_path = scratch_dir + "/debugfs-cat.out";
  SpawnOptions opts;
  opts.stdout_path = out_path;
  opts.stderr_path = "/dev/null";
  auto r = runChecked({"debugfs", "-R", "cat " + path, image}, opts);
  std::string text = r ? readFile(out_path).value_or("") : "";
  std::error_code ec;
  fs::remove(out_path, ec);
  return text;
}

void recordBootStages(Timings& t, const gp::Ready& ready) {
  t.guest_ready_ms = static_cast<int64_t>(ready.boot_ns / 1'000'000);
  if (!ready.stages) return;
  t.guest_init_ms = static_cast<int64_t>(ready.stages->init_ns / 1'000'000);
  t.guest_modules_ms = static_cast<int64_t>(ready.stages->modules_ns / 1'000'000);
  t.guest_mounts_ms = static_cast<int64_t>(ready.stages->mounts_ns / 1'000'000);
  t.guest_config_ms = static_cast<int64_t>(ready.stages->config_ns / 1'000'000);
}

// One line per boot: where the guest's time went (ms on its CLOCK_BOOTTIME),
// and VMM started -> HELLO / READY on the host's clock.
void logBootStages(const std::string& instance_id, const Timings& t) {
  log::info("guest boot stages", {{"instance_id", instance_id},
                                  {"kernel_ms", t.guest_init_ms},
                                  {"modules_ms", t.guest_modules_ms},
                                  {"mounts_ms", t.guest_mounts_ms},
                                  {"config_ms", t.guest_config_ms},
                                  {"spawned_ms", t.guest_ready_ms},
                                  {"hello_ms", t.hello_ms},
                                  {"ready_ms", t.boot_ms}});
}

}  // namespace

InstanceWorker::InstanceWorker(InstanceHost& host, InstanceRecord record)
    : host_(host),
      rec_(std::move(record)),
      exec_mux_(std::make_shared<ExecMux>(rec_.workload.instance_id)),
      plan_seen_(steadyNow()) {
  log_ = std::make_unique<InstanceLog>(host_.logPathFor(rec_.workload.instance_id),
                                       rec_.workload.instance_id, host_.options().log_max_bytes);
}

InstanceWorker::~InstanceWorker() { join(); }

void InstanceWorker::start() {
  thread_ = std::thread([this] { run(); });
}

void InstanceWorker::join() {
  if (thread_.joinable()) thread_.join();
}

void InstanceWorker::update(const Workload& workload) {
  std::lock_guard lock(mu_);
  pending_ = workload;
  cv_.notify_all();
}

void InstanceWorker::remove() {
  std::lock_guard lock(mu_);
  removed_ = true;
  cv_.notify_all();
}

void InstanceWorker::wake() {
  std::lock_guard lock(mu_);
  woken_ = true;
  cv_.notify_all();
}

bool InstanceWorker::finished() const {
  std::lock_guard lock(mu_);
  return done_;
}

InstanceStatus InstanceWorker::status() const {
  std::lock_guard lock(mu_);
  InstanceStatus s;
  s.instance_id = rec_.workload.instance_id;
  s.generation = rec_.workload.generation;
  s.phase = rec_.phase;
  s.exit_code = rec_.exit_code;
  s.reason = rec_.reason;
  s.last_reported = rec_.last_reported;
  s.last_reported_reason = last_reported_reason_;
  s.vmm_pid = rec_.vm ? rec_.vm->pid : -1;
  s.timings = rec_.timings;
  return s;
}

bool InstanceWorker::usesVolume(const std::string& volume_id) const {
  std::lock_guard lock(mu_);
  auto names = [&](const Workload& w) {
    return std::any_of(w.volumes.begin(), w.volumes.end(),
                       [&](const WorkloadVolume& v) { return v.volume_id == volume_id; });
  };
  return names(rec_.workload) || (pending_ && names(*pending_));
}

ExecTarget InstanceWorker::execTarget() const {
  std::lock_guard lock(mu_);
  return ExecTarget{rec_.phase, rec_.exec_revision, exec_mux_};
}

bool InstanceWorker::sleepFor(milliseconds d) {
  std::unique_lock lock(mu_);
  bool woke = cv_.wait_for(
      lock, d, [&] { return pending_.has_value() || removed_ || woken_ || host_.stopping(); });
  woken_ = false;
  return woke;
}

bool InstanceWorker::stopWanted() const {
  return removed_ || rec_.workload.desired != "run" ||
         (pending_ &&
          (pending_->generation > rec_.workload.generation || pending_->desired != "run"));
}

void InstanceWorker::setPhase(Phase p) {
  {
    std::lock_guard lock(mu_);
    if (auto t = transition(rec_.phase, p); !t) {
      // A bug in the worker, not bad input: log loudly and force the phase so
      // the instance cannot get stuck.
      log::error("instance state machine violated",
                 {{"instance_id", rec_.workload.instance_id}, {"error", t.error().toString()}});
      rec_.phase = p;
    }
  }
  save();
  host_.instanceMetrics().transitions.inc({{"phase", std::string(phaseName(p))}});
}

void InstanceWorker::save() {
  InstanceRecord copy;
  {
    std::lock_guard lock(mu_);
    copy = rec_;
  }
  if (auto r = host_.saveRecord(copy); !r) {
    log::error("saving instance record failed",
               {{"instance_id", copy.workload.instance_id}, {"error", r.error().toString()}});
  }
}

void InstanceWorker::report(const std::string& phase, const std::string& reason,
                            std::optional<int> exit_code) {
  StatusReport r;
  {
    std::lock_guard lock(mu_);
    r.generation = rec_.workload.generation;
    r.seq = ++rec_.report_seq;
    rec_.last_reported = phase;
    last_reported_reason_ = reason;
    const Timings& t = rec_.timings;
    if (t.image_ms >= 0) r.timings["image_ms"] = t.image_ms;
    if (t.start_ms >= 0) r.timings["start_ms"] = t.start_ms;
    if (t.boot_ms >= 0) r.timings["boot_ms"] = t.boot_ms;
  }
  r.phase = phase;
  r.reason = reason;
  r.exit_code = exit_code;
  save();
  log::info("instance status", {{"instance_id", rec_.workload.instance_id},
                                {"generation", r.generation},
                                {"phase", phase},
                                {"reason", reason}});
  if (host_.sendReport(rec_.workload.instance_id, r)) {
    unsent_.reset();
  } else {
    unsent_ = r;
  }
}

void InstanceWorker::retryReport() {
  if (unsent_ && host_.sendReport(rec_.workload.instance_id, *unsent_)) unsent_.reset();
}

bool InstanceWorker::absorbUpdates() {
  std::unique_lock lock(mu_);
  if (removed_) return false;
  if (!pending_) return true;
  Workload next = std::move(*pending_);
  pending_.reset();
  if (next.generation > rec_.workload.generation) {
    // A restart: the old generation's VM must be gone before the new one
    // starts. Terminal phases hold nothing; others are stopped by the loop.
    if (isTerminal(rec_.phase) || rec_.phase == Phase::kAllocated) {
      lock.unlock();
      releaseResources();
      lock.lock();
      InstanceRecord fresh;
      fresh.workload = std::move(next);
      rec_ = std::move(fresh);
      plan_seen_ = steadyNow();
      exit_seen_ = false;
      stalled_ = false;
      boot_error_.clear();
      shutdown_sent_.reset();
      powerdown_sent_ = false;
      healthy_ = false;
      check_failures_ = 0;
      next_check_.reset();
      exec_check_.reset();
      unsent_.reset();
      lock.unlock();
      save();
      return true;
    }
    pending_ = std::move(next);  // keep it until the VM is down
    return true;
  }
  if (next.generation == rec_.workload.generation) {
    next.raw = next.raw.is_null() ? rec_.workload.raw : next.raw;
    rec_.workload = std::move(next);
  }
  return true;
}

void InstanceWorker::run() {
  const std::string id = rec_.workload.instance_id;
  while (absorbUpdates()) {
    if (host_.stopping() && !host_.options().stop_instances_on_exit) break;
    Phase phase;
    {
      std::lock_guard lock(mu_);
      phase = rec_.phase;
    }
    if (phase == Phase::kAllocated) {
      startGeneration();
    } else if (!isTerminal(phase)) {
      supervise();
    } else {
      retryReport();
      if (host_.stopping()) break;
      sleepFor(std::chrono::seconds(2));
    }
  }
  bool removed;
  {
    std::lock_guard lock(mu_);
    removed = removed_;
  }
  if (removed) {
    // Not the control plane's any more: stop it now, then forget it.
    if (rec_.vm && host_.runtime().alive(*rec_.vm)) {
      (void)channel_.send(gp::encode(gp::Shutdown{2000}));
      if (!host_.runtime().waitExit(*rec_.vm, std::chrono::seconds(4))) {
        (void)host_.runtime().kill(*rec_.vm);
      }
    }
    releaseResources();
    (void)host_.removeRecord(id);
    log::info("instance removed from this node", {{"instance_id", id}});
  }
  exec_mux_->detach(host_.stopping() ? "the node agent is stopping" : "the instance is gone");
  log_->flush();
  failSnapshots("the instance is gone");
  std::lock_guard lock(mu_);
  done_ = true;
}

void InstanceWorker::startGeneration() {
  const Workload w = [&] {
    std::lock_guard lock(mu_);
    return rec_.workload;
  }();
  if (w.desired != "run") {
    setPhase(Phase::kStopped);
    report("stopped", "stopped before it started");
    return;
  }
  // Restart backoff: the control plane says when this generation may start.
  while (w.restart_not_before_ms > unixMs(host_.clock())) {
    if (sleepFor(milliseconds(
            std::min<int64_t>(1000, w.restart_not_before_ms - unixMs(host_.clock()))))) {
      return;  // re-evaluate: maybe stopped or replaced meanwhile
    }
  }
  if (!claimVolumes(w)) return;  // re-evaluate: maybe stopped or replaced meanwhile
  setPhase(Phase::kPreparing);
  if (auto r = prepare(); !r) {
    finish(Phase::kFailed, "failed", r.error().message());
    return;
  }
  if (auto r = boot(); !r) {
    finish(Phase::kFailed, "failed", r.error().message());
    return;
  }
}

bool InstanceWorker::claimVolumes(const Workload& w) {
  if (w.volumes.empty()) return true;
  bool told = false;
  while (true) {
    auto claimed = host_.volumes().claim(w.instance_id, w.volumes);
    {
      std::lock_guard lock(mu_);
      rec_.reason = claimed ? "" : claimed.error().message();
    }
    if (claimed) return true;
    // One writer per volume: wait until the instance that holds it is gone
    // (a redeploy's old instance drains and stops first).
    if (!told) {
      log::info("waiting for a volume",
                {{"instance_id", w.instance_id}, {"reason", claimed.error().message()}});
      told = true;
    }
    if (sleepFor(kTick)) return false;
  }
}

Result<void> InstanceWorker::prepare() {
  const AgentOptions& opts = host_.options();
  Workload w;
  {
    std::lock_guard lock(mu_);
    w = rec_.workload;
  }
  if (opts.kernel.empty() || !fs::exists(opts.kernel)) {
    return Error(errc::kNoKernel,
                 "guest kernel not found: " +
                     (opts.kernel.empty() ? std::string("(not configured)") : opts.kernel) +
                     " (run scripts/fetch-kernel)");
  }
  // Memory is a hard cap: a VM that cannot get its RAM must not start.
  if (int64_t host = hostMemoryMb(); w.memory_mb > host) {
    return Error(errc::kResourceExhausted, "the instance needs " + std::to_string(w.memory_mb) +
                                               " MiB of memory but this host has " +
                                               std::to_string(host) + " MiB");
  }
  if (w.vcpus < 1 || w.vcpus > 255) {
    return Error(errc::kInvalidArgument,
                 "the instance asks for " + std::to_string(w.vcpus) + " vCPUs (1 to 255)");
  }
  auto t0 = steadyNow();
  PLFM_ASSIGN_OR_RETURN(auto acquired, host_.acquireImage(w));
  {
    std::lock_guard lock(mu_);
    rec_.image_acquired = true;
    rec_.rootfs = acquired.rootfs;
    rec_.timings.image_ms = msBetween(t0, steadyNow());
    rec_.run_dir = host_.runDirFor(w.instance_id);
    rec_.scratch = rec_.run_dir + "/scratch.ext4";
    if (opts.manage_network && !w.address.empty()) rec_.tap = netdev::tapNameFor(w.instance_id);
  }
  save();
  std::error_code ec;
  fs::create_directories(rec_.run_dir, ec);
  if (ec) return Error(errc::kIo, "creating " + rec_.run_dir + ": " + ec.message());
  if (uint64_t avail = fs::space(rec_.run_dir, ec).available;
      !ec && avail < (uint64_t{256} << 20)) {
    return Error(errc::kResourceExhausted, "less than 256 MiB free for the scratch disk");
  }
  // A sparse copy of the agent's formatted template: no mkfs per instance.
  PLFM_ASSIGN_OR_RETURN(std::string scratch_template, host_.scratchTemplate());
  if (auto r = image::copySparseFile(scratch_template, rec_.scratch, 0600); !r) {
    return std::move(r).error().context("creating the scratch disk");
  }
  for (const auto& v : w.volumes) {
    if (auto r = host_.volumes().ensure(v.volume_id, v.size_bytes); !r) {
      return std::move(r).error().context("volume " + v.name);
    }
  }
  if (!rec_.tap.empty()) {
    // Filter first: the tap must never exist without its guest's rules.
    std::string ipv4;
    {
      std::lock_guard lock(mu_);
      ipv4 = rec_.ipv4;
    }
    if (ipv4.empty()) {
      PLFM_ASSIGN_OR_RETURN(ipv4, host_.guestIpv4(w.instance_id));
      {
        std::lock_guard lock(mu_);
        rec_.ipv4 = ipv4;
      }
      save();  // adoption keeps the address
    }
    PLFM_ASSIGN_OR_RETURN(auto filter, guestFilterFor(w, rec_.tap, ipv4));
    PLFM_TRY(host_.filterGuest(w.instance_id, std::move(filter)));
    netdev::TapConfig tap{rec_.tap, w.mtu, w.address, ipv4};
    PLFM_TRY(netdev::ensureTap(tap));
  }
  return ok();
}

Result<void> InstanceWorker::boot() {
  const AgentOptions& opts = host_.options();
  Workload w;
  std::string rootfs;
  {
    std::lock_guard lock(mu_);
    w = rec_.workload;
    rootfs = rec_.rootfs;
  }
  PLFM_ASSIGN_OR_RETURN(auto image_config, host_.imageConfig(w.image_digest));
  // CONFIG is built before the VMM starts, so a workload that cannot run
  // (no entrypoint, unknown user) fails without booting anything.
  GuestConfigInput in;
  in.workload = &w;
  in.image = &image_config;
  if (!image_config.user.empty() && image_config.user != "root" && image_config.user != "0") {
    // Read once per image (two debugfs runs), then from memory: rootfs
    // images are immutable, named by their manifest digest.
    in.users = host_.userDb(rootfs, [&] {
      return UserDb{readFromExt4(rootfs, "/etc/passwd", rec_.run_dir),
                    readFromExt4(rootfs, "/etc/group", rec_.run_dir)};
    });
  }
  in.with_network = !w.address.empty();
  {
    std::lock_guard lock(mu_);
    in.ipv4 = rec_.ipv4;
  }
  in.nameserver = host_.nameserver();
  in.shutdown_grace_ms = opts.shutdown_grace_ms;
  PLFM_ASSIGN_OR_RETURN(auto config, guestConfig(in));
  config.host_time_ns = unixNs(host_.clock());  // the guest sets its clock from it
  // The i-th volume is drive vol-<i>; the guest finds it by the serial its
  // VMM gives that disk.
  std::vector<runtime::VmDrive> volume_drives;
  for (size_t i = 0; i < w.volumes.size(); ++i) {
    volume_drives.push_back(
        {volumeDriveId(i), host_.volumes().pathFor(w.volumes[i].volume_id), false});
    PLFM_ASSIGN_OR_RETURN(config.volumes.at(i).serial,
                          host_.runtime().diskSerial(volume_drives.back()));
  }
  if (w.secrets_version) {
    // Plaintext lives only in memory: fetched, masked in the logs, sent in
    // CONFIG, then wiped (docs/specs/secrets/delivery.md).
    PLFM_ASSIGN_OR_RETURN(std::string file, host_.fetchSecrets(w.instance_id, *w.secrets_version));
    PLFM_TRY(maskSecrets(file));
    config.secrets_file = std::move(file);
  }
  auto encoded = gp::encode(config);
  if (config.secrets_file) secrets::wipe(*config.secrets_file);
  if (!encoded) return fromGuestProto(encoded.error());
  std::string config_frame = std::move(*encoded);
  struct Wipe {
    std::string& s;
    ~Wipe() { secrets::wipe(s); }
  } wipe_frame{config_frame};

  runtime::VmSpec spec;
  spec.instance_id = w.instance_id;
  spec.run_dir = rec_.run_dir;
  spec.kernel = opts.kernel;
  spec.initramfs = opts.initramfs;
  spec.drives = {{"rootfs", rootfs, true}, {"scratch", rec_.scratch, false}};
  spec.drives.insert(spec.drives.end(), volume_drives.begin(), volume_drives.end());
  spec.vcpus = w.vcpus;
  spec.memory_mb = w.memory_mb;
  spec.tap = rec_.tap;
  spec.mac = netdev::macFor(w.instance_id);
  spec.mtu = w.mtu;

  setPhase(Phase::kBooting);
  const auto spawn_us =
      std::chrono::duration_cast<std::chrono::microseconds>(steadyNow() - plan_seen_).count();
  PLFM_ASSIGN_OR_RETURN(auto vm, host_.runtime().start(spec));
  vmm_started_ = steadyNow();
  // CPU is soft: a cgroup weight by vCPUs, where cgroups v2 are available.
  if (auto placed = runtime::placeVmm(vm.pid, w.instance_id, w.vcpus); !placed) {
    log::warn("VMM not placed in a cgroup",
              {{"instance_id", w.instance_id}, {"error", placed.error().toString()}});
  }
  {
    std::lock_guard lock(mu_);
    rec_.vm = vm;
    rec_.timings.spawn_us = spawn_us;
    rec_.timings.start_ms = msBetween(plan_seen_, steadyNow());
  }
  save();
  host_.instanceMetrics().spawn_overhead.observe(static_cast<double>(spawn_us) / 1e6);
  report("booting");

  PLFM_ASSIGN_OR_RETURN(channel_, GuestChannel::connect(vm, std::chrono::seconds(5)));
  auto deadline = vmm_started_ + opts.boot_timeout;
  bool config_sent = false;
  while (true) {
    if (steadyNow() >= deadline) {
      return Error(errc::kBootTimeout, std::string("the guest did not become ready within ") +
                                           std::to_string(opts.boot_timeout.count() / 1000) +
                                           " s: " + tailFile(vm.console_log, 3));
    }
    {
      std::lock_guard lock(mu_);
      // supervise() stops it, or leaves it running when the agent stops.
      if (stopWanted() || host_.stopping()) break;
    }
    auto frame = channel_.read(kTick);
    if (!frame) {
      if (!host_.runtime().alive(vm)) break;  // supervise() reports why
      channel_.close();
      PLFM_ASSIGN_OR_RETURN(channel_, GuestChannel::connect(vm, std::chrono::seconds(2)));
      continue;
    }
    if (!*frame) {
      if (!host_.runtime().alive(vm)) break;
      continue;
    }
    if ((*frame)->type == gp::FrameType::kHello && !config_sent) {
      auto hello = gp::decodeHello((*frame)->payload);
      if (!hello) return fromGuestProto(hello.error());
      {
        std::lock_guard lock(mu_);
        rec_.timings.hello_ms = msBetween(vmm_started_, steadyNow());
        rec_.exec_revision = hello->exec_revision;
        rec_.volume_revision = hello->volume_revision;
      }
      PLFM_TRY(sendToGuest(config_frame));
      config_sent = true;
      continue;
    }
    if ((*frame)->type == gp::FrameType::kReady) {
      auto ready = gp::decodeReady((*frame)->payload);
      if (!ready) return fromGuestProto(ready.error());
      {
        std::lock_guard lock(mu_);
        rec_.timings.boot_ms = msBetween(vmm_started_, steadyNow());
        recordBootStages(rec_.timings, *ready);
      }
      logBootStages(rec_.workload.instance_id, rec_.timings);
      host_.instanceMetrics().boot.observe(static_cast<double>(rec_.timings.boot_ms) / 1000.0);
      setPhase(Phase::kRunning);
      running_since_ = steadyNow();
      report("running");
      volumesStarted(w);
      break;
    }
    handleFrame(**frame);
    if (stalled_) return Error(std::string(errc::kChannelStalled), "channel stalled");
    if (exit_seen_ || !boot_error_.empty()) break;
  }
  return ok();
}

Result<void> InstanceWorker::maskSecrets(const std::string& file) {
  auto values = secrets::decode(file);
  if (!values) {
    return Error(errc::kBadSecrets, "the secrets file from the control plane does not parse: " +
                                        values.error().toString());
  }
  std::vector<std::string> masks;
  for (auto& [k, v] : *values) {
    masks.push_back(v);
    secrets::wipe(v);
  }
  log_->mask(std::move(masks));
  masked_ = true;
  return ok();
}

void InstanceWorker::handleFrame(const gp::Frame& frame) {
  switch (frame.type) {
    case gp::FrameType::kLog: {
      auto l = gp::decodeLog(frame.payload);
      if (!l) break;
      log_->append(l->source == gp::LogSource::kStderr ? "stderr" : "stdout",
                   l->timestamp_ns != 0 ? l->timestamp_ns : unixNs(host_.clock()), l->data);
      break;
    }
    case gp::FrameType::kExit: {
      auto e = gp::decodeExit(frame.payload);
      if (!e) break;
      std::lock_guard lock(mu_);
      exit_seen_ = true;
      rec_.exit_code = e->kind == gp::ExitKind::kSignaled ? 128 + e->code : e->code;
      rec_.reason = e->kind == gp::ExitKind::kSignaled
                        ? "killed by signal " + std::to_string(e->code)
                        : "exited with code " + std::to_string(e->code);
      break;
    }
    case gp::FrameType::kError: {
      auto e = gp::decodeBootError(frame.payload);
      boot_error_ = e ? e->message : "the guest reported an error";
      log_->append("platform", unixNs(host_.clock()), "vt-init: " + boot_error_ + "\n");
      break;
    }
    case gp::FrameType::kPing: {
      if (auto p = gp::decodePing(frame.payload)) (void)sendToGuest(gp::encodePong(*p));
      break;
    }
    case gp::FrameType::kExecOpen:
    case gp::FrameType::kExecData:
    case gp::FrameType::kExecResize:
    case gp::FrameType::kExecSignal:
    case gp::FrameType::kExecExit:
    case gp::FrameType::kExecClose:
    case gp::FrameType::kExecWindow:
      exec_mux_->onGuestFrame(frame);
      break;
    case gp::FrameType::kVolumeResized:
      if (auto r = gp::decodeVolumeResized(frame.payload)) {
        if (auto done = extender_.answered(r->id, "")) extendDone(*done);
      }
      break;
    case gp::FrameType::kVolumeFailed:
      if (auto f = gp::decodeVolumeFailed(frame.payload)) {
        // The guest's words: hostile bytes, shown escaped and cut.
        std::string why = "the guest could not grow the filesystem: " +
                          printableOrEscaped(f->message.substr(0, 400));
        if (auto done = extender_.answered(f->id, why)) extendDone(*done);
      }
      break;
    default:
      break;
  }
}

Result<void> InstanceWorker::sendToGuest(const std::string& frame) {
  auto sent = channel_.send(frame, host_.options().channel_send_timeout);
  if (!sent && sent.error().is(errc::kChannelStalled)) noteStall(sent.error());
  return sent;
}

void InstanceWorker::noteStall(const Error& e) {
  if (stalled_) return;
  // The guest stopped reading (or floods us and never drains its side):
  // it must not hold this worker, so the VM is killed and reported failed.
  stalled_ = true;
  log::warn("host channel stalled; killing the VM",
            {{"instance_id", rec_.workload.instance_id}, {"error", e.toString()}});
  host_.instanceMetrics().channel_stalls.inc();
}

void InstanceWorker::syncExec() {
  if (channel_.stalled()) {
    noteStall(
        Error(std::string(errc::kChannelStalled), "channel stalled (an exec session's send)"));
  }
  if (shutdown_sent_ || exit_seen_) {
    exec_mux_->refuseNew("the instance is stopping");
    return;
  }
  uint32_t revision;
  {
    std::lock_guard lock(mu_);
    revision = rec_.exec_revision;
  }
  if (revision != 0 && rec_.phase == Phase::kRunning && channel_.connected() &&
      !exec_mux_->attached()) {
    // Sessions send from their own threads: GuestChannel::send is safe for
    // that, and detach() waits for them before the channel is closed.
    exec_mux_->attach([this, timeout = host_.options().channel_send_timeout](
                          const std::string& frame) { return channel_.send(frame, timeout); });
  }
}

void InstanceWorker::runHealthCheck() {
  Workload w;
  {
    std::lock_guard lock(mu_);
    w = rec_.workload;
  }
  auto now = steadyNow();
  const std::optional<CheckSpec> check = firstCheck(w.checks);
  if (check && check->type == "exec") {
    runExecCheck(*check, now);
    return;
  }
  if (next_check_ && now < *next_check_) return;
  if (!check || w.address.empty()) {
    // No check: running is serving.
    if (!healthy_) {
      healthy_ = true;
      report("healthy");
    }
    next_check_ = now + std::chrono::hours(24);
    return;
  }
  // Poll quickly until the first success, then at the configured interval.
  next_check_ = now + (healthy_ ? check->interval : std::min(check->interval, milliseconds(500)));
  Result<void> r = check->type == "http"
                       ? checkHttp(w.address, check->port, check->path, check->timeout)
                       : checkTcp(w.address, check->port, check->timeout);
  checkVerdict(*check, now, r, check->type + " check on port " + std::to_string(check->port));
}

void InstanceWorker::checkVerdict(const CheckSpec& check, SteadyTime now,
                                  const Result<void>& verdict, const std::string& what) {
  if (verdict) {
    check_failures_ = 0;
    if (!healthy_) {
      healthy_ = true;
      report("healthy");
    }
    return;
  }
  if (now - running_since_ < check.grace && !healthy_) return;
  const int threshold = check.failure_threshold;
  if (++check_failures_ >= threshold && (healthy_ || check_failures_ == threshold)) {
    healthy_ = false;
    report("unhealthy", what + ": " + verdict.error().message());
  }
}

void InstanceWorker::runExecCheck(const CheckSpec& check, SteadyTime now) {
  const milliseconds interval = check.interval;
  const milliseconds timeout = check.timeout;
  if (exec_check_) {
    // Poll the session in flight; its frames arrive through handleFrame.
    ExecCheckRun& run = *exec_check_;
    std::optional<Result<void>> verdict;
    while (!verdict) {
      auto ev = run.session->next(milliseconds(0));
      if (!ev) break;
      gp::Decoder d;
      d.feed(ev->frame);
      auto frame = d.next();
      switch (ev->kind) {
        case ExecEvent::Kind::kData:
          if (frame && *frame) {
            if (auto data = gp::decodeExecData((*frame)->payload)) {
              run.tail += data->data;
              if (run.tail.size() > kExecCheckTailBytes) {
                run.tail.erase(0, run.tail.size() - kExecCheckTailBytes);
              }
              // Output is consumed at once: give the credit straight back.
              auto window = gp::encode(gp::ExecWindow{static_cast<uint32_t>(data->data.size())},
                                       gp::kFirstExecStream);
              if (window) (void)run.session->fromClient(*window);
            }
          }
          break;
        case ExecEvent::Kind::kWindow:
          break;  // stdin credit: a check sends no stdin
        case ExecEvent::Kind::kExit: {
          auto exit = frame && *frame ? gp::decodeExecExit((*frame)->payload)
                                      : gp::Result<gp::ExecExit>(gp::ExecExit{});
          if (exit && exit->kind == gp::ExecExitKind::kExited && exit->code == 0) {
            verdict = Result<void>(ok());
          } else {
            std::string why = !exit ? "its exit frame does not decode"
                              : exit->kind == gp::ExecExitKind::kExited
                                  ? "exited with code " + std::to_string(exit->code)
                              : exit->kind == gp::ExecExitKind::kSignaled
                                  ? "killed by signal " + std::to_string(exit->code)
                              : exit->kind == gp::ExecExitKind::kTimedOut
                                  ? "timed out after " + std::to_string(timeout.count()) + " ms"
                                  : "did not start: " + exit->message;
            verdict = Result<void>(Error(errc::kCheckFailed, why));
          }
          break;
        }
        case ExecEvent::Kind::kLost:
          verdict = Result<void>(Error(errc::kCheckFailed, "the session was lost: " + ev->reason));
          break;
      }
    }
    if (!verdict && now >= run.give_up) {
      run.session->abort();
      verdict = Result<void>(
          Error(errc::kCheckFailed,
                "no answer within " + std::to_string(timeout.count()) + " ms (and 2 s more)"));
    }
    if (!verdict) return;
    std::string last_line = run.tail;
    while (!last_line.empty() && (last_line.back() == '\n' || last_line.back() == '\r')) {
      last_line.pop_back();
    }
    if (auto nl = last_line.rfind('\n'); nl != std::string::npos) last_line.erase(0, nl + 1);
    if (last_line.size() > 200) last_line = last_line.substr(last_line.size() - 200);
    exec_check_.reset();
    if (!*verdict && !last_line.empty()) {
      verdict = Result<void>(
          Error(verdict->error().code(), verdict->error().message() + "; last output: " +
                                             log_->masked(printableOrEscaped(last_line))));
    }
    checkVerdict(check, now, *verdict, "exec check");
    return;
  }
  if (next_check_ && now < *next_check_) return;
  // Poll quickly until the first success, then at the configured interval.
  next_check_ = now + (healthy_ ? interval : std::min(interval, milliseconds(500)));
  uint32_t revision;
  {
    std::lock_guard lock(mu_);
    revision = rec_.exec_revision;
  }
  if (revision == 0) {
    checkVerdict(check, now,
                 Error(errc::kCheckFailed,
                       "the guest does not serve exec sessions (its vt-init predates them)"),
                 "exec check");
    return;
  }
  gp::ExecOpen open;
  open.argv = check.command;
  open.window = kExecCheckWindow;
  open.timeout_ms = static_cast<uint32_t>(timeout.count());
  auto frame = gp::encode(open, gp::kFirstExecStream);
  if (!frame) {
    checkVerdict(check, now, Error(errc::kCheckFailed, frame.error().toString()), "exec check");
    return;
  }
  auto session = exec_mux_->open(std::string_view(*frame).substr(gp::kHeaderBytes));
  if (!session) {
    // Not attached yet (a channel reconnect): try again next round.
    if (session.error().is(kExecRefused) && !exec_mux_->attached()) return;
    checkVerdict(check, now, session.error(), "exec check");
    return;
  }
  exec_check_ = ExecCheckRun{std::move(*session), now + timeout + std::chrono::seconds(2), {}};
}
void InstanceWorker::supervise() {
  if (!rec_.vm) {
    finish(Phase::kFailed, "failed",
           boot_error_.empty() ? "the VM was never started" : boot_error_);
    return;
  }
  const runtime::VmHandle vm = *rec_.vm;
  if (!masked_ && rec_.workload.secrets_version) {
    // An adopted VM: fetch the values again, only to mask them in its logs.
    if (auto file = host_.fetchSecrets(rec_.workload.instance_id, *rec_.workload.secrets_version)) {
      (void)maskSecrets(*file);
      secrets::wipe(*file);
    }
  }
  const uint32_t grace = host_.options().shutdown_grace_ms;
  while (true) {
    bool stop;
    {
      std::lock_guard lock(mu_);
      stop = stopWanted() || (host_.stopping() && host_.options().stop_instances_on_exit);
    }
    if (host_.stopping() && !host_.options().stop_instances_on_exit) {
      exec_mux_->detach("the node agent is stopping");
      return;  // VM keeps running
    }
    if (stop && !shutdown_sent_) {
      bool draining;
      {
        std::lock_guard lock(mu_);
        draining = rec_.workload.desired == "drain";
      }
      if (rec_.phase != Phase::kStopping) setPhase(Phase::kStopping);
      if (draining) report("draining");
      shutdown_sent_ = steadyNow();
      if (!channel_.connected() || !sendToGuest(gp::encode(gp::Shutdown{grace}))) {
        (void)host_.runtime().requestStop(vm);
        powerdown_sent_ = true;
      }
    }
    if (shutdown_sent_) {
      auto waited = steadyNow() - *shutdown_sent_;
      if (!powerdown_sent_ && waited > milliseconds(grace) + std::chrono::seconds(3)) {
        (void)host_.runtime().requestStop(vm);
        powerdown_sent_ = true;
      }
      if (waited > milliseconds(grace) + std::chrono::seconds(8)) {
        (void)host_.runtime().kill(vm);
      }
    }
    syncExec();
    if (!host_.runtime().alive(vm) || stalled_) break;
    if (!channel_.connected()) {
      auto c = GuestChannel::connect(vm, milliseconds(200));
      if (c) {
        // A new connection (an adopted VM, or after a channel error): STATUS
        // makes vt-init say where it is (READY again, or EXIT).
        channel_ = std::move(*c);
        (void)sendToGuest(gp::encodeStatus());
      } else {
        sleepFor(kTick);
      }
      continue;
    }
    auto frame = channel_.read(kTick);
    if (frame && *frame) {
      handleFrame(**frame);
      continue;  // drain frames before the slower checks
    }
    if (!frame) {
      // Before the close: sessions may be sending on it.
      exec_mux_->detach(host_.runtime().alive(vm) ? "the host channel closed"
                                                  : "the instance's VM exited");
      channel_.close();
    }
    if (rec_.phase == Phase::kRunning && !shutdown_sent_ && !exit_seen_) {
      extendVolumes(vm);
      serveSnapshots();
      runHealthCheck();
    } else {
      failSnapshots("the instance is stopping");
    }
    retryReport();
  }
  // The VMM is gone: decide what happened.
  while (channel_.connected()) {
    auto frame = channel_.read(milliseconds(50));
    if (!frame || !*frame) break;
    handleFrame(**frame);
  }
  exec_mux_->detach(stalled_           ? "the host channel stalled"
                    : host_.stopping() ? "the node agent is stopping"
                                       : "the instance's VM exited");
  log_->flush();
  bool stop_requested = shutdown_sent_.has_value();
  if (stalled_ && !stop_requested) {
    finish(Phase::kFailed, "failed", "channel stalled");
    return;
  }
  if (exit_seen_ && !stop_requested && !boot_error_.empty()) {
    // vt-init sends ERROR and then EXIT(1) when a boot step fails: the
    // instance never ran, and the ERROR says why (a mount, a secrets file).
    finish(Phase::kFailed, "failed", boot_error_);
    return;
  }
  if (exit_seen_ && !stop_requested) {
    std::string reason;
    std::optional<int> code;
    {
      std::lock_guard lock(mu_);
      reason = rec_.reason;
      code = rec_.exit_code;
    }
    releaseResources();
    setPhase(Phase::kStopped);
    report("exited", reason, code);
    return;
  }
  if (stop_requested) {
    finish(Phase::kStopped, "stopped", "");
    return;
  }
  std::string why = !boot_error_.empty()
                        ? boot_error_
                        : "the VMM exited unexpectedly: " + tailFile(vm.console_log, 3);
  finish(Phase::kFailed, "failed", why);
}

void InstanceWorker::finish(Phase terminal, const std::string& report_phase,
                            const std::string& reason) {
  {
    std::lock_guard lock(mu_);
    if (!reason.empty()) rec_.reason = reason;
  }
  if (rec_.vm && host_.runtime().alive(*rec_.vm)) (void)host_.runtime().kill(*rec_.vm);
  releaseResources();
  setPhase(terminal);
  report(report_phase, reason);
}

void InstanceWorker::releaseResources() {
  exec_mux_->detach("the instance's VM exited");
  channel_.close();
  InstanceRecord r;
  {
    std::lock_guard lock(mu_);
    r = rec_;
  }
  releaseInstanceResources(host_, r);
  {
    std::lock_guard lock(mu_);
    rec_.tap = r.tap;
    rec_.run_dir = r.run_dir;
    rec_.scratch = r.scratch;
    rec_.image_acquired = r.image_acquired;
    rec_.vm = r.vm;
  }
  save();
}

}  // namespace plfm::agent
