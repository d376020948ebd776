#include "agent/mesh_member.h"

#include "plfm/core/log.h"
#include "plfm/core/process.h"

namespace plfm::agent {
using nlohmann::json;

MeshMember::MeshMember(MeshMemberOptions options, metrics::Registry& metrics,
                       netdev::CommandRunner run)
    : options_(std::move(options)),
      metrics_(metrics),
      run_(std::move(run)),
      mesh_(options_.mesh, run_) {
  interfaces_[0] = options_.mesh.interface;
  interfaces_[1] = options_.interface2.empty()
                       ? netdev::defaultMeshInterface2(options_.mesh.interface)
                       : options_.interface2;
  if (interfaces_[1] == interfaces_[0]) interfaces_[1].clear();  // no second slot
  ports_[0] = options_.port;
  ports_[1] = static_cast<uint16_t>(options_.port + 1);
}

MeshMember::~MeshMember() { stop(false); }

void MeshMember::start() {
  // The last plan applied, so the start-up reconcile has something to hold
  // the interface to before the control plane answers.
  if (auto text = readFile(mesh_.planPath())) {
    auto parsed = netdev::parseMeshPlan(json::parse(*text, nullptr, false));
    if (parsed) {
      std::lock_guard lock(mu_);
      // The same version from the control plane is then not applied again:
      // the start-up reconcile covers it.
      seen_version_ = parsed->plan.version;
      desired_ = std::move(parsed->plan);
    } else {
      log::warn("ignoring an unreadable last mesh plan",
                {{"path", mesh_.planPath()}, {"error", parsed.error().message()}});
    }
  }
  // A rotation that was running resumes from its record.
  auto rotation = netdev::loadMeshRotation(options_.mesh.state_dir);
  if (!rotation) {
    log::error("ignoring an unreadable mesh rotation record",
               {{"error", rotation.error().toString()}});
  } else if (*rotation) {
    log::info("resuming the mesh key rotation",
              {{"device", (*rotation)->interface}, {"phase", (*rotation)->phase}});
    setRotation(**rotation);
  }
  thread_ = std::thread([this] { loop(); });
}

void MeshMember::stop(bool remove_interface) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (!remove_interface) return;
  for (int i = 0; i < 2; ++i) {
    if (interfaces_[i].empty()) continue;
    netdev::Mesh m = slot(i, false);
    if (!m.exists()) continue;
    if (auto r = m.remove(); !r) {
      log::warn("removing the mesh interface failed", {{"error", r.error().toString()}});
    } else {
      log::info("removed the mesh interface", {{"device", interfaces_[i]}});
    }
  }
}

int64_t MeshMember::appliedVersion() const {
  std::lock_guard lock(mu_);
  return applied_version_;
}

std::optional<netdev::MeshRotation> MeshMember::rotation() const {
  std::lock_guard lock(mu_);
  return rotation_;
}

std::string MeshMember::activeInterface() const {
  std::lock_guard lock(mu_);
  return interfaces_[active_];
}

void MeshMember::setRotation(std::optional<netdev::MeshRotation> r) {
  std::lock_guard lock(mu_);
  rotation_ = std::move(r);
}

std::optional<netdev::MeshTotals> MeshMember::totals() {
  int active = 0;
  {
    std::lock_guard lock(mu_);
    active = active_;
  }
  netdev::Mesh mesh = slot(active, false);
  if (!mesh.exists()) return std::nullopt;
  auto dump = mesh.dump();
  if (!dump) {
    log::warn("reading the mesh interface for the heartbeat failed",
              {{"error", dump.error().toString()}});
    return std::nullopt;
  }
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return netdev::meshTotals(*dump, std::chrono::duration_cast<std::chrono::seconds>(now).count());
}

void MeshMember::observe(const json& section) {
  if (!section.is_object()) return;  // an older control plane: no mesh yet
  const std::optional<int64_t> version = netdev::meshSectionVersion(section);
  {
    std::lock_guard lock(mu_);
    if (version && seen_version_ == version) return;
    seen_version_ = version;
  }
  auto parsed = netdev::parseMeshPlan(section);
  if (!parsed) {
    metrics_.counter("plfm_agent_mesh_applies_total", "Mesh applies by result")
        .inc({{"result", "refused"}});
    log::error("refusing the plan's mesh section; the mesh keeps its last plan",
               {{"error", parsed.error().toString()}});
    return;
  }
  for (const auto& e : parsed->skipped) {
    log::error("leaving out a mesh peer the plan names badly", {{"error", e.toString()}});
  }
  {
    std::lock_guard lock(mu_);
    desired_ = std::move(parsed->plan);
    changed_ = true;
  }
  cv_.notify_all();
}

void MeshMember::loop() {
  using Steady = std::chrono::steady_clock;
  bool first = true;    // the start-up reconcile
  bool failed = false;  // the last round: retried sooner than a full period
  Steady::time_point last_round = Steady::now();
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (!first && !changed_) {
      auto wait = failed
                      ? std::min<std::chrono::seconds>(options_.reconcile_every, kRetryAfterFailure)
                      : options_.reconcile_every;
      // A retiring interface goes when its period is over, not a period later.
      if (rotation_ && rotation_->retire_after != 0) {
        const auto left = std::chrono::seconds(rotation_->retire_after - nowUnix());
        wait = std::max(std::chrono::seconds(1), std::min(wait, left));
      }
      const auto round_at = last_round + wait;
      // A staged key's watch: a peer may switch before this node's own plan
      // says the key is published (the long-polls wake in any order).
      const bool watching = Steady::now() < watch_until_;
      const auto wake =
          watching ? std::min(round_at, Steady::now() + options_.handshake_poll) : round_at;
      cv_.wait_until(lock, wake, [&] { return stopping_ || changed_; });
      if (stopping_) return;
      if (!changed_ && Steady::now() < round_at) {
        if (watching && desired_) {
          const netdev::MeshPlan plan = *desired_;
          lock.unlock();
          watchHandshakes(plan);
          lock.lock();
        }
        continue;
      }
    }
    first = false;
    if (!desired_) continue;
    const netdev::MeshPlan plan = *desired_;
    const bool changed = changed_;
    changed_ = false;
    lock.unlock();
    failed = !round(plan, changed);
    last_round = Steady::now();
    lock.lock();
  }
}

int MeshMember::slotOf(uint16_t listen_port) const {
  return listen_port == ports_[1] && !interfaces_[1].empty() ? 1 : 0;
}

netdev::Mesh MeshMember::slot(int index, bool staged) const {
  netdev::MeshOptions o = options_.mesh;
  o.interface = interfaces_[index];
  if (staged) {
    o.key_file = netdev::meshNextKeyPath(o.state_dir);
    o.save_plan = false;
  }
  return netdev::Mesh(std::move(o), run_);
}

int64_t MeshMember::nowUnix() const {
  if (options_.now_unix) return options_.now_unix();
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void MeshMember::countRotation(const char* result) {
  metrics_.counter("plfm_agent_mesh_rotations_total", "Mesh key rotation steps by result")
      .inc({{"result", result}});
}

bool MeshMember::round(const netdev::MeshPlan& named, bool changed) {
  auto resolved = netdev::resolveEndpoints(named, options_.resolve);
  for (const auto& e : resolved.skipped) {
    log::warn("leaving out a mesh peer whose endpoint does not resolve; retried next round",
              {{"error", e.toString()}});
  }
  const netdev::MeshPlan& plan = resolved.plan;
  const int active = slotOf(plan.self.listen_port);
  {
    std::lock_guard lock(mu_);
    active_ = active;
  }
  bool rotating = false;
  {
    std::lock_guard lock(mu_);
    rotating = rotation_.has_value();
  }
  if (rotating || plan.self.rotate) return rotationRound(plan, active, changed);
  netdev::Mesh mesh = slot(active, false);
  return applyActive(mesh, plan, changed);
}

bool MeshMember::applyActive(netdev::Mesh& mesh, const netdev::MeshPlan& plan, bool changed) {
  const std::string& device = mesh.options().interface;
  auto& applies = metrics_.counter("plfm_agent_mesh_applies_total", "Mesh applies by result");
  // A node without peers needs no interface; one already up stays in step.
  if (plan.peers.empty() && !mesh.exists()) {
    metrics_.gauge("plfm_agent_mesh_peers", "Peers in the applied mesh plan").set(0);
    std::lock_guard lock(mu_);
    applied_version_ = plan.version;
    return true;
  }
  Result<void> r = ok();
  if (changed) {
    r = mesh.apply(plan);
  } else {
    auto drift = mesh.reconcile(plan);
    if (drift && !drift->empty()) {
      metrics_.counter("plfm_agent_mesh_drift_total", "Mesh reconciles that found a difference")
          .inc();
      json what = json::array();
      for (const auto& d : *drift) what.push_back(d);
      log::warn("the mesh drifted from its plan; applied it again",
                {{"device", device}, {"drift", what.dump()}});
    } else if (drift) {
      std::lock_guard lock(mu_);
      applied_version_ = plan.version;
      return true;  // in sync: nothing applied
    }
    if (!drift) r = std::move(drift).error();
  }
  if (!r) {
    applies.inc({{"result", "failed"}});
    log::error("applying the mesh failed; the next reconcile retries",
               {{"device", device}, {"version", plan.version}, {"error", r.error().toString()}});
    return false;
  }
  applies.inc({{"result", "ok"}});
  metrics_.gauge("plfm_agent_mesh_peers", "Peers in the applied mesh plan")
      .set(static_cast<double>(plan.peers.size()));
  if (changed) {
    log::info("mesh applied",
              {{"device", device}, {"version", plan.version}, {"peers", plan.peers.size()}});
  }
  std::lock_guard lock(mu_);
  applied_version_ = plan.version;
  return true;
}

}  // namespace plfm::agent
