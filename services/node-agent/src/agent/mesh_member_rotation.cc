// MeshMember's key rotation steps (docs/specs/networking/mesh.md, "Contract
// for key rotation", "Agent"); the rest of the member is mesh_member.cc.
#include <cstdio>
#include <set>

#include "agent/mesh_member.h"
#include "plfm/core/log.h"

namespace plfm::agent {
using nlohmann::json;

namespace {

// The peers whose first allowed IP is routed via `routes`' interface.
std::set<std::string> routedPeers(const netdev::MeshPlan& plan,
                                  const std::vector<netdev::MeshRoute>& routes) {
  std::set<std::string> have;
  for (const auto& r : routes) {
    if (!r.kernel) have.insert(r.dst.str());
  }
  std::set<std::string> out;
  for (const auto& p : plan.peers) {
    if (!p.allowed_ips.empty() && have.count(p.allowed_ips.front().str()) != 0) {
      out.insert(p.node_id);
    }
  }
  return out;
}

std::set<std::string> allBut(const netdev::MeshPlan& plan, const std::set<std::string>& moved) {
  std::set<std::string> out;
  for (const auto& p : plan.peers) {
    if (moved.count(p.node_id) == 0) out.insert(p.node_id);
  }
  return out;
}

}  // namespace

bool MeshMember::rotationRound(const netdev::MeshPlan& plan, int active, bool changed_plan) {
  bool changed = changed_plan;
  std::optional<netdev::MeshRotation> rot = rotation();
  if (!rot) {
    // The plan asks for a rotation and none runs: the active slot as usual,
    // then a key staged on the other one.
    netdev::Mesh mesh = slot(active, false);
    const bool good = applyActive(mesh, plan, changed);
    if (interfaces_[1 - active].empty()) {
      if (!rotation_refused_logged_) {
        countRotation("refused");
        log::error(
            "cannot rotate the mesh key: no name for the second interface (give "
            "--mesh-interface2)",
            {{"device", interfaces_[0]}});
        rotation_refused_logged_ = true;
      }
      return good;
    }
    if (auto r = stage(plan, active); !r) {
      countRotation("failed");
      log::error("staging a new mesh key failed; the next round retries",
                 {{"error", r.error().toString()}});
      return false;
    }
    rot = rotation();
    if (!rot) return good;
    changed = false;  // applied above: the rest of the round only checks it
  }
  if (rot->retire_after != 0) {
    // The new key is current: its interface is the active one; the old one
    // stays (no routes) until its period is over.
    netdev::Mesh mesh = slot(active, false);
    bool good = applyActive(mesh, plan, changed);
    if (nowUnix() >= rot->retire_after) {
      if (auto r = retire(); !r) {
        countRotation("failed");
        log::error("deleting the retired mesh interface failed; the next round retries",
                   {{"error", r.error().toString()}});
        good = false;
      }
    }
    return good;
  }
  if (plan.self.public_key == rot->public_key && plan.self.listen_port == rot->listen_port) {
    if (auto r = commit(); !r) {
      countRotation("failed");
      log::error("committing the new mesh key failed; the next round retries",
                 {{"error", r.error().toString()}});
      return false;
    }
    netdev::Mesh mesh = slot(active, false);
    return applyActive(mesh, plan, changed);
  }
  const int next = slotOf(rot->listen_port);
  if (next == active || interfaces_[next] != rot->interface) {
    // The record names a slot this run does not have (the flags changed) or
    // the plan's port: start again from the plan.
    countRotation("abandoned");
    log::error("abandoning a mesh key rotation that does not fit this node's interfaces",
               {{"device", rot->interface}, {"listen_port", rot->listen_port}});
    (void)netdev::removeMeshRotation(options_.mesh.state_dir);
    ::remove(netdev::meshNextKeyPath(options_.mesh.state_dir).c_str());
    setRotation(std::nullopt);
    return false;
  }
  netdev::Mesh old = slot(active, false);
  netdev::Mesh neu = slot(next, true);
  std::set<std::string> moved;
  if (neu.exists()) {
    auto routes = neu.routes();
    if (routes) moved = routedPeers(plan, *routes);
  }
  old.setRouted(allBut(plan, moved));
  neu.setRouted(moved);
  bool good = applyActive(old, plan, changed);
  netdev::MeshPlan staged_plan = plan;
  staged_plan.self.listen_port = rot->listen_port;
  if (auto d = neu.reconcile(staged_plan); !d) {
    countRotation("failed");
    log::error("keeping the new mesh interface in step failed; the next round retries",
               {{"device", rot->interface}, {"error", d.error().toString()}});
    return false;
  }
  if (rot->phase == "staged") {
    if (plan.self.next_public_key != rot->public_key) {
      if (staged_reported_ || !options_.report.staged) return good;
      if (auto r = options_.report.staged(rot->public_key, rot->listen_port); !r) {
        log::warn("reporting the staged mesh key failed; the next round retries",
                  {{"error", r.error().toString()}});
        return false;
      }
      staged_reported_ = true;
      watch_until_ = std::chrono::steady_clock::now() + kStagedWatch;
      log::info("reported the staged mesh key",
                {{"public_key", rot->public_key.base64()}, {"listen_port", rot->listen_port}});
      return good;
    }
    rot->phase = "published";
    watch_until_ = {};  // moveRoutes watches from here
    if (auto r = netdev::saveMeshRotation(options_.mesh.state_dir, *rot); !r) {
      log::error("saving the mesh rotation failed", {{"error", r.error().toString()}});
      return false;
    }
    setRotation(rot);
    log::info("the staged mesh key is published; moving routes", {{"device", rot->interface}});
  }
  if (auto r = moveRoutes(plan, neu, moved); !r) {
    countRotation("failed");
    log::error("moving routes to the new mesh interface failed; the next round retries",
               {{"error", r.error().toString()}});
    return false;
  }
  if (current_reported_ || !options_.report.current) return good;
  if (auto r = options_.report.current(rot->public_key); !r) {
    log::warn("reporting the new mesh key as current failed; the next round retries",
              {{"error", r.error().toString()}});
    return false;
  }
  current_reported_ = true;
  log::info("reported the new mesh key as current", {{"public_key", rot->public_key.base64()}});
  return good;
}

Result<void> MeshMember::stage(const netdev::MeshPlan& plan, int active) {
  const int next = 1 - active;
  const std::string& dir = options_.mesh.state_dir;
  netdev::WgKey key = netdev::generatePrivateKey();
  const netdev::WgKey pub = netdev::publicKeyOf(key);
  auto written = netdev::writePrivateKeyFile(netdev::meshNextKeyPath(dir), key);
  key.wipe();
  PLFM_TRY(written);
  netdev::MeshRotation rot;
  rot.interface = interfaces_[next];
  rot.listen_port = ports_[next];
  rot.public_key = pub;
  rot.since = nowUnix();
  PLFM_TRY(netdev::saveMeshRotation(dir, rot));
  setRotation(rot);
  staged_reported_ = false;
  current_reported_ = false;
  watch_moved_.clear();
  log::info(
      "staged a new mesh key on the second interface",
      {{"device", rot.interface}, {"listen_port", rot.listen_port}, {"public_key", pub.base64()}});
  // Up with every peer of the plan and no routes (they stay on the active
  // interface until each peer has switched).
  netdev::Mesh neu = slot(next, true);
  neu.setRouted(std::set<std::string>{});
  netdev::MeshPlan staged_plan = plan;
  staged_plan.self.listen_port = rot.listen_port;
  return neu.apply(staged_plan);
}

Result<void> MeshMember::moveRoutes(const netdev::MeshPlan& plan, netdev::Mesh& neu,
                                    const std::set<std::string>& moved) {
  std::vector<const netdev::MeshPeer*> pending;
  for (const auto& p : plan.peers) {
    if (moved.count(p.node_id) == 0) pending.push_back(&p);
  }
  const auto move = [&](const netdev::MeshPeer& p, const char* why) -> Result<void> {
    for (const auto& a : p.allowed_ips) PLFM_TRY(neu.routeVia(a));
    log::info("moved a mesh route to the new interface",
              {{"node_id", p.node_id}, {"device", neu.options().interface}, {"why", why}});
    return ok();
  };
  const auto deadline = std::chrono::steady_clock::now() + options_.rotation_settle;
  while (!pending.empty()) {
    PLFM_ASSIGN_OR_RETURN(netdev::WgDump dump, neu.dump());
    std::set<netdev::WgKey> shook;
    for (const auto& d : dump.peers) {
      if (d.latest_handshake != 0) shook.insert(d.public_key);
    }
    std::vector<const netdev::MeshPeer*> still;
    for (const auto* p : pending) {
      const netdev::WgKey& key = p->next ? p->next->public_key : p->public_key;
      if (shook.count(key) != 0) {
        PLFM_TRY(move(*p, "handshake"));
      } else {
        still.push_back(p);
      }
    }
    pending = std::move(still);
    if (pending.empty()) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      for (const auto* p : pending) PLFM_TRY(move(*p, "settle time"));
      break;
    }
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, options_.handshake_poll, [&] { return stopping_; })) {
      return Error(errc::kUnavailable, "the agent is stopping");
    }
  }
  return ok();
}

void MeshMember::watchHandshakes(const netdev::MeshPlan& plan) {
  const std::optional<netdev::MeshRotation> rot = rotation();
  if (!rot || rot->phase != "staged" || rot->retire_after != 0) {
    watch_until_ = {};
    return;
  }
  const int next = slotOf(rot->listen_port);
  if (interfaces_[next] != rot->interface) return;
  netdev::Mesh neu = slot(next, true);
  auto dump = neu.dump();
  if (!dump) return;  // the next tick, or the next round, tries again
  std::set<netdev::WgKey> shook;
  for (const auto& d : dump->peers) {
    if (d.latest_handshake != 0) shook.insert(d.public_key);
  }
  for (const auto& p : plan.peers) {
    const netdev::WgKey& key = p.next ? p.next->public_key : p.public_key;
    if (watch_moved_.count(p.node_id) != 0 || shook.count(key) == 0) continue;
    bool moved = true;
    for (const auto& a : p.allowed_ips) {
      if (auto r = neu.routeVia(a); !r) {
        log::warn("moving a mesh route to the new interface failed; retried",
                  {{"node_id", p.node_id}, {"error", r.error().toString()}});
        moved = false;
        break;
      }
    }
    if (!moved) continue;
    watch_moved_.insert(p.node_id);
    log::info("moved a mesh route to the new interface", {{"node_id", p.node_id},
                                                          {"device", neu.options().interface},
                                                          {"why", "handshake before publication"}});
  }
}

Result<void> MeshMember::commit() {
  netdev::MeshRotation rot = *rotation();
  const std::string& dir = options_.mesh.state_dir;
  const std::string next_key = netdev::meshNextKeyPath(dir);
  if (std::rename(next_key.c_str(), netdev::meshKeyPath(dir).c_str()) != 0 && errno != ENOENT) {
    return errnoError("rename " + next_key, errno);
  }
  rot.retire_interface = interfaces_[1 - slotOf(rot.listen_port)];
  rot.retire_after = nowUnix() + options_.reconcile_every.count();
  PLFM_TRY(netdev::saveMeshRotation(dir, rot));
  setRotation(rot);
  staged_reported_ = false;
  current_reported_ = false;
  log::info("the new mesh key is current; the old interface goes after one reconcile period",
            {{"device", rot.interface}, {"retire", rot.retire_interface}});
  return ok();
}

Result<void> MeshMember::retire() {
  const netdev::MeshRotation rot = *rotation();
  const int old = interfaces_[0] == rot.retire_interface ? 0 : 1;
  netdev::Mesh mesh = slot(old, false);
  PLFM_TRY(mesh.remove());
  ::remove(mesh.configPath().c_str());
  PLFM_TRY(netdev::removeMeshRotation(options_.mesh.state_dir));
  setRotation(std::nullopt);
  countRotation("ok");
  log::info("the mesh key rotation is done; deleted the old interface",
            {{"device", rot.retire_interface}, {"active", rot.interface}});
  return ok();
}

}  // namespace plfm::agent
