#include "rollout.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <tuple>

namespace plfm::reconcile::internal {
namespace {

// A live instance that must be replaced even if its release is right: its
// node is draining, or it is not where its slot's volumes live.
bool misplaced(const InstanceView& v, const Group& g) {
  const std::string& pinned = g.slotNode(v.inst->slot);
  return v.node->draining || (!pinned.empty() && v.inst->node_id != pinned);
}

bool isOld(const InstanceView& v, const Revision& r, const Group& g) {
  return v.inst->release_id != r.release_id || v.inst->secrets_version != r.secrets_version ||
         misplaced(v, g);
}

std::string causeOf(const Group& g, const GroupDecision& d, const Course& course) {
  const Revision& r = *d.revision;
  if (!course.rolls_back.empty()) {
    return fmt::format("deploy {} failed; rolling back to {}", course.rolls_back, r.release_id);
  }
  if (r.deploy_id.empty()) return fmt::format("release {}", r.release_id);
  return fmt::format("{} deploy {} of {}", toString(g.strategy.kind), r.deploy_id, r.release_id);
}

std::string oldReason(const InstanceView& v, const Group& g, const GroupDecision& d) {
  if (v.node->draining) {
    return fmt::format("node {} is draining; its instances move to other nodes", v.node->id);
  }
  if (const std::string& pinned = g.slotNode(v.inst->slot);
      !pinned.empty() && v.inst->node_id != pinned) {
    return fmt::format("the volumes of {} slot {} live on node {}", g.process, v.inst->slot,
                       pinned);
  }
  std::string why =
      d.rollback ? d.cause : fmt::format("{}: replaced by {}", d.cause, d.revision->release_id);
  if (!d.rollback && g.strategy.kind == StrategyKind::kRolling) {
    why += fmt::format(" ({} of {} new instances healthy)", d.healthy_new, d.desired);
  }
  if (!v.healthy) why += "; it was not serving";
  return why;
}

// Drain preference: instances that do not serve first, then those on the
// node most crowded with the group (to keep the spread), then the newest.
// With volumes, the highest slots go first (scale down keeps slots 0 ..
// count-1; an instance without a slot counts as the highest).
void sortForDrain(const Snapshot& s, std::vector<std::uint32_t>& list,
                  const std::unordered_map<std::string_view, int>& peers, bool by_slot) {
  auto key = [&](std::uint32_t m) {
    const InstanceView& v = s.instances[m];
    auto p = peers.find(v.inst->node_id);
    const int slot = v.inst->slot < 0 ? INT_MAX : v.inst->slot;
    return std::make_tuple(by_slot ? -slot : 0, v.healthy, -(p == peers.end() ? 0 : p->second),
                           std::string_view(v.inst->id));
  };
  std::sort(list.begin(), list.end(), [&](std::uint32_t a, std::uint32_t b) {
    auto ka = key(a);
    auto kb = key(b);
    if (std::get<0>(ka) != std::get<0>(kb)) return std::get<0>(ka) < std::get<0>(kb);
    if (std::get<1>(ka) != std::get<1>(kb)) return std::get<1>(ka) < std::get<1>(kb);
    if (std::get<2>(ka) != std::get<2>(kb)) return std::get<2>(ka) < std::get<2>(kb);
    return std::get<3>(ka) > std::get<3>(kb);
  });
}

// Stop-then-start (volume-mounts.md §Deploys): the slots below the count
// that are free to allocate. A slot is held by a live instance of the
// revision, and by any other instance that has not stopped on the node of
// the slot's volumes (it may still write them), or anywhere while the slot
// has no node yet. An instance on a node that is not active does not hold
// its slot: placing there fails anyway, with the node's state as reason.
// Counts in `d.lost_holding` the lost instances that hold a slot (their node
// is back and they are being stopped).
std::vector<int> freeSlots(const Snapshot& s, const GroupState& gs, GroupDecision& d) {
  const Group& g = *gs.group;
  std::vector<int> held;
  for (std::uint32_t m : d.fresh) held.push_back(s.instances[m].inst->slot);
  for (std::uint32_t m : gs.members) {
    const InstanceView& v = s.instances[m];
    if (!v.occupies || std::find(d.fresh.begin(), d.fresh.end(), m) != d.fresh.end()) continue;
    const std::string& pinned = g.slotNode(v.inst->slot);
    const bool holds = pinned.empty() ? !v.lost
                                      : v.inst->node_id == pinned && v.node != nullptr &&
                                            v.node->state == NodeState::kActive;
    if (!holds) continue;
    held.push_back(v.inst->slot);
    if (v.lost) ++d.lost_holding;
  }
  std::vector<int> free;
  for (int slot = 0; slot < d.desired; ++slot) {
    if (std::find(held.begin(), held.end(), slot) == held.end()) free.push_back(slot);
  }
  return free;
}

// Crashed and unhealthy instances that stay (not in `drained`, sorted)
// restart where they are; with `reschedule`, an unhealthy one that has been
// restarted in place often enough is moved instead (drained, and its
// replacement placed like any other).
void addRestarts(const Snapshot& s, const GroupState& gs, const std::vector<std::uint32_t>& drained,
                 bool reschedule, GroupDecision& d) {
  const int in_place = s.in->config.unhealthy_restarts_in_place;
  for (std::uint32_t m : gs.members) {
    const InstanceView& v = s.instances[m];
    if (!(v.crashed || v.unhealthy) || v.node->state != NodeState::kActive ||
        std::binary_search(drained.begin(), drained.end(), m)) {
      continue;
    }
    if (reschedule && v.unhealthy && v.inst->restarts >= in_place) {
      d.drains.emplace_back(
          m, fmt::format("health checks failing after {} restarts in place; rescheduled",
                         v.inst->restarts));
      continue;
    }
    d.restarts.push_back(m);
  }
}

}  // namespace

bool converged(const Snapshot& s, const GroupState& gs, const Revision& r) {
  const Group& g = *gs.group;
  int healthy = 0;
  int live = 0;
  for (std::uint32_t m : gs.members) {
    const InstanceView& v = s.instances[m];
    // A deploy is done once what it replaced has stopped: draining
    // instances may still hold connections (docs/specs/scheduler/drain.md).
    if (v.draining) return false;
    if (!v.live) continue;
    if (isOld(v, r, g)) return false;
    ++live;
    if (v.healthy) ++healthy;
  }
  const int want = std::max(0, g.count);
  return live == want && healthy == want;
}

GroupDecision decideGroup(const Snapshot& s, const GroupState& gs, const Course& course) {
  const Group& g = *gs.group;
  GroupDecision d;
  d.state = &gs;
  d.revision = course.revision;
  d.no_revision_reason = course.no_revision_reason;
  d.rollback = !course.rolls_back.empty();
  d.hold = course.hold;
  d.desired = d.revision != nullptr ? std::max(0, g.count) : 0;
  if (d.revision != nullptr) d.cause = causeOf(g, d, course);

  std::vector<std::uint32_t>& fresh = d.fresh;
  std::vector<std::uint32_t> old;
  for (std::uint32_t m : gs.members) {
    const InstanceView& v = s.instances[m];
    if (v.draining) ++d.draining;
    if (v.newly_lost && v.inst->desired == Desired::kRun) d.newly_lost.push_back(m);
    if (!v.live) continue;
    if (v.node->state == NodeState::kUnreachable) ++d.waiting_unreachable;
    if (d.revision != nullptr && !isOld(v, *d.revision, g)) {
      fresh.push_back(m);
      if (v.healthy) ++d.healthy_new;
    } else {
      old.push_back(m);
    }
  }
  d.live_new = static_cast<int>(fresh.size());
  d.live_old = static_cast<int>(old.size());
  if (d.hold) {
    // Nothing moves: the failed release's instances stay for inspection
    // (restarting in place), the earlier release's keep serving.
    for (std::uint32_t m : old) d.healthy_old += s.instances[m].healthy ? 1 : 0;
    d.unready_kept = d.live_new - d.healthy_new;
    addRestarts(s, gs, {}, false, d);
    return d;
  }
  // Live instances of the group per node, to choose what to drain (only
  // built when something may be drained: most groups need nothing).
  std::unordered_map<std::string_view, int> peers;
  if (d.live_new > d.desired || !old.empty()) {
    for (std::uint32_t m : fresh) ++peers[s.instances[m].inst->node_id];
    for (std::uint32_t m : old) ++peers[s.instances[m].inst->node_id];
  }

  // How many to allocate. Rolling: everything that is not stopped, drains
  // included, stays within desired + max_surge, so a drained instance keeps
  // its slot until it is gone.
  const bool immediate = g.strategy.kind == StrategyKind::kImmediate;
  d.volumes = g.hasVolumes();
  d.max_unavailable = std::max(d.volumes ? 1 : 0, g.strategy.max_unavailable);
  const int max_unavailable = d.max_unavailable;
  if (d.volumes) {
    // One writer per volume: no surge; a slot is refilled once what held it
    // has stopped.
    d.slots = freeSlots(s, gs, d);
    d.restore = std::min(static_cast<int>(d.slots.size()), std::max(0, d.desired - d.live_new));
    d.slots.resize(static_cast<size_t>(d.restore));
  } else {
    d.surge_limit = std::max(0, g.strategy.max_surge);
    if (d.surge_limit == 0 && max_unavailable == 0) d.surge_limit = 1;
    const int missing = d.desired - d.live_new;
    const int total = d.live_new + d.live_old + d.draining;
    const int alloc = immediate ? std::max(0, missing)
                                : std::max(0, std::min(missing, d.desired + d.surge_limit - total));
    d.restore = std::min(alloc, std::max(0, d.desired - d.live_new - d.live_old));
    d.surge = alloc - d.restore;
  }

  // Scale down: drain new instances above the count.
  int healthy_kept = d.healthy_new;
  if (d.live_new > d.desired) {
    std::vector<std::uint32_t> order = fresh;
    sortForDrain(s, order, peers, d.volumes);
    for (int i = 0; i < d.live_new - d.desired; ++i) {
      const std::uint32_t m = order[static_cast<size_t>(i)];
      if (s.instances[m].healthy) --healthy_kept;
      std::string why = fmt::format("scale down: {} has {} instances of {}, {} desired", g.process,
                                    d.live_new, d.revision->release_id, d.desired);
      if (d.volumes) {
        why += fmt::format("; slot {}'s {} stay", s.instances[m].inst->slot,
                           g.slotVolumes(s.instances[m].inst->slot));
      }
      d.drains.emplace_back(m, std::move(why));
    }
    d.excess_drained = d.live_new - d.desired;
  }
  d.unready_kept = d.live_new - d.excess_drained - healthy_kept;

  // Old instances: all at once (immediate, or nothing to run), otherwise as
  // many as keep desired - max_unavailable healthy ones serving. Instances
  // that are not serving can always go.
  int healthy_old = 0;
  for (std::uint32_t m : old) healthy_old += s.instances[m].healthy ? 1 : 0;
  int budget = healthy_kept + healthy_old - (d.desired - max_unavailable);
  sortForDrain(s, old, peers, d.volumes);
  for (std::uint32_t m : old) {
    const InstanceView& v = s.instances[m];
    if (d.revision == nullptr) {
      d.drains.emplace_back(m, d.no_revision_reason);
    } else if (immediate || !v.healthy || budget > 0) {
      if (!immediate && v.healthy) --budget;
      d.drains.emplace_back(m, oldReason(v, g, d));
    } else {
      continue;
    }
    ++d.old_drained;
  }

  std::vector<std::uint32_t> drained;
  drained.reserve(d.drains.size());
  for (const auto& dr : d.drains) drained.push_back(dr.first);
  std::sort(drained.begin(), drained.end());
  addRestarts(s, gs, drained, true, d);
  return d;
}

}  // namespace plfm::reconcile::internal
