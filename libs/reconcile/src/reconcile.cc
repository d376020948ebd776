#include "plfm/reconcile/reconcile.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <optional>

#include "deploys.h"
#include "plfm/core/assert.h"
#include "plfm/reconcile/placement.h"
#include "rollout.h"
#include "snapshot.h"

namespace plfm::reconcile {

using internal::Course;
using internal::GroupDecision;
using internal::InstanceView;
using internal::seconds;
using internal::Snapshot;

namespace {

std::string duration(std::int64_t ms) {
  if (ms % 1000 == 0) return fmt::format("{} s", ms / 1000);
  return fmt::format("{} ms", ms);
}

std::string lostReason(const Snapshot& s, const InstanceView& v) {
  if (v.node == nullptr) return fmt::format("node {} is not registered", v.inst->node_id);
  if (v.node->state == NodeState::kDown) return fmt::format("node {} is down", v.node->id);
  return fmt::format("node {} unreachable for {} s (grace {} s)", v.node->id,
                     seconds(s.in->now_ms - v.node->unreachable_since_ms),
                     seconds(s.in->config.unreachable_grace_ms));
}

std::string crashReason(const Instance& i) {
  if (i.phase == Phase::kExited) return fmt::format("exited with code {}", i.exit_code);
  if (i.phase == Phase::kUnhealthy) return "health checks failing";
  return "failed to start";
}

// Allocations for all groups, one pass per kind: every group's `restore`
// first (back to its count), then every group's `surge` (rollout headroom),
// so a rollout never takes the capacity a lost instance's replacement needs.
class Allocator {
 public:
  Allocator(const Snapshot& s, const IdSource& ids, Plan& plan, size_t groups)
      : s_(s),
        ids_(ids),
        plan_(plan),
        placer_(s.in->nodes, s.in->config.cpu_overcommit),
        spreads_(groups),
        taken_(groups) {
    // The Placer and the Snapshot both hold the nodes in id order, so they
    // share node indices.
    PLFM_ASSERT(placer_.nodeCount() == s.nodes.size(), "placer and snapshot disagree on nodes");
    for (const InstanceView& v : s.instances) {
      if (v.occupies && v.node != nullptr) {
        placer_.reserve(v.node_index, v.inst->resources, v.inst->address);
      }
    }
  }

  struct Outcome {
    int placed = 0;
    std::string capacity;  // why the last placement failed, if it did
  };

  // Places `n` instances for decision number `index`.
  void place(size_t index, const GroupDecision& d, int n, bool restore, Outcome& out) {
    if (n <= 0 || !out.capacity.empty()) return;
    if (d.volumes) {
      placeSlots(index, d, out);
      return;
    }
    const Group& g = *d.state->group;
    const Revision& r = *d.revision;
    Placer::Spread& spread = spreadOf(index, d);
    std::vector<int>& taken = takenOf(index, d);
    for (int k = 0; k < n; ++k) {
      const InstanceView* replaces =
          restore && static_cast<size_t>(out.placed) < d.newly_lost.size()
              ? &s_.instances[d.newly_lost[static_cast<size_t>(out.placed)]]
              : nullptr;
      const int slot = pickSlot(taken, replaces != nullptr ? replaces->inst->slot : -1);
      const std::string& pinned = g.slotNode(slot);
      auto p = placer_.place(r.resources, spread, pinned, 0, g.org_tag);
      if (!p) {
        out.capacity =
            pinned.empty() ? placer_.explain(r.resources) : waitingForNode(g, slot, r.resources);
        return;
      }
      taken.push_back(slot);
      allocate(d, *p, replaces, restore, slot, out);
    }
  }

 private:
  // "waiting for node node_b (holds volume uploads-1): it is unreachable".
  std::string waitingForNode(const Group& g, int slot, const Resources& r) const {
    const std::string& node = g.slotNode(slot);
    return fmt::format("waiting for node {} (holds {}): {}", node, g.slotVolumes(slot),
                       placer_.whyNotOn(r, node));
  }

  // Stop-then-start per slot (a process with volumes): each free slot on
  // the node of its volumes, or, while they have none, on a node with room
  // for them. A slot that cannot be placed waits; the others go on.
  void placeSlots(size_t index, const GroupDecision& d, Outcome& out) {
    const Group& g = *d.state->group;
    const Revision& r = *d.revision;
    Placer::Spread& spread = spreadOf(index, d);
    std::vector<std::string> waits;
    for (int slot : d.slots) {
      const std::string& pinned = g.slotNode(slot);
      auto p = placer_.place(r.resources, spread, pinned,
                             pinned.empty() ? g.volume_bytes_per_slot : 0, g.org_tag);
      if (!p) {
        std::string why = pinned.empty() ? placer_.explain(r.resources, {}, g.volume_bytes_per_slot)
                                         : waitingForNode(g, slot, r.resources);
        if (std::find(waits.begin(), waits.end(), why) == waits.end()) {
          waits.push_back(std::move(why));
        }
        continue;
      }
      const InstanceView* replaces = nullptr;
      for (std::uint32_t m : d.newly_lost) {
        if (s_.instances[m].inst->slot == slot) replaces = &s_.instances[m];
      }
      allocate(d, *p, replaces, true, slot, out);
    }
    out.capacity = fmt::format("{}", fmt::join(waits, "; "));
  }

  void allocate(const GroupDecision& d, Placer::Placement& p, const InstanceView* replaces,
                bool restore, int slot, Outcome& out) {
    const Group& g = *d.state->group;
    const Revision& r = *d.revision;
    fmt::memory_buffer why;
    auto out_it = std::back_inserter(why);
    const int before = d.live_new + out.placed;
    if (replaces != nullptr) {
      fmt::format_to(out_it, "replaces {}, lost with node {}", replaces->inst->id,
                     replaces->inst->node_id);
    } else if (restore && d.live_old == 0) {
      fmt::format_to(out_it, "{} has {} of {} instances of {}", g.process, before, d.desired,
                     r.release_id);
    } else {
      fmt::format_to(out_it, "{}: new instance {} of {}", d.cause, before + 1, d.desired);
    }
    fmt::format_to(out_it, "; on {}: {} other {} {} there, {} of {} MiB used", p.node_id, p.peers,
                   g.process, p.peers == 1 ? "instance" : "instances", p.memory_used_mb,
                   p.memory_mb);
    if (d.volumes) fmt::format_to(out_it, "; slot {} with {}", slot, g.slotVolumes(slot));
    plan_.allocations.push_back(Allocate{ids_(), g.env_id, g.process, r.release_id, r.deploy_id,
                                         std::move(p.node_id), std::move(p.address), r.resources,
                                         fmt::to_string(why), r.secrets_version, slot});
    ++out.placed;
  }

  // The slot for a new instance: `preferred` (a lost instance's) when it is
  // free, else the lowest slot that no instance of the target revision holds
  // (below the group's count whenever the group has fewer than that: an old
  // revision's instance keeps its slot until its replacement takes it).
  static int pickSlot(const std::vector<int>& taken, int preferred) {
    auto free = [&](int slot) {
      return std::find(taken.begin(), taken.end(), slot) == taken.end();
    };
    if (preferred >= 0 && free(preferred)) return preferred;
    int slot = 0;
    while (!free(slot)) ++slot;
    return slot;
  }

  // The slots the decision's live instances of the target revision hold.
  std::vector<int>& takenOf(size_t index, const GroupDecision& d) {
    std::optional<std::vector<int>>& taken = taken_[index];
    if (!taken) {
      taken.emplace();
      for (std::uint32_t m : d.fresh) {
        if (s_.instances[m].inst->slot >= 0) taken->push_back(s_.instances[m].inst->slot);
      }
    }
    return *taken;
  }

  Placer::Spread& spreadOf(size_t index, const GroupDecision& d) {
    std::optional<Placer::Spread>& spread = spreads_[index];
    if (!spread) {
      spread.emplace();
      for (std::uint32_t m : d.fresh) Placer::count(*spread, s_.instances[m].node_index);
    }
    return *spread;
  }

  const Snapshot& s_;
  const IdSource& ids_;
  Plan& plan_;
  Placer placer_;
  std::vector<std::optional<Placer::Spread>> spreads_;  // per decision, once it allocates
  std::vector<std::optional<std::vector<int>>> taken_;  // per decision, once it allocates
};

// The failed release's instances held for inspection (auto_rollback off).
Pending heldOf(const GroupDecision& d) {
  const Group& g = *d.state->group;
  std::string why = fmt::format(
      "deploy {} failed and auto_rollback is off: {} {} of {} kept for inspection (`vt logs`)",
      g.target.deploy_id, d.live_new, d.live_new == 1 ? "instance" : "instances",
      g.target.release_id);
  if (d.live_old > 0) {
    why += fmt::format(", {} of {} earlier {} serving", d.healthy_old, d.live_old,
                       d.live_old == 1 ? "instance" : "instances");
  }
  why += "; run `vt rollback` or deploy a fix";
  return Pending{g.env_id, g.process, std::max(0, d.desired - d.healthy_new), d.live_old,
                 std::move(why)};
}

Pending pendingOf(const Snapshot& s, const GroupDecision& d, const Allocator::Outcome& out) {
  if (d.hold) return heldOf(d);
  const Group& g = *d.state->group;
  std::vector<std::string> clauses;
  if (d.revision == nullptr && g.count > 0) clauses.push_back(d.no_revision_reason);
  if (!out.capacity.empty()) clauses.push_back(out.capacity);
  const int missing = std::max(0, d.desired - d.live_new - out.placed);
  const int outdated = d.live_old - d.old_drained;
  if (d.revision != nullptr && (outdated > 0 || (missing > 0 && out.capacity.empty()))) {
    std::string c = fmt::format("{}: {} of {} new instances healthy, {} old left", d.cause,
                                d.healthy_new, d.desired, outdated);
    if (d.volumes) {
      c += fmt::format(" (stop-then-start per slot, max_unavailable {})", d.max_unavailable);
    } else if (g.strategy.kind == StrategyKind::kRolling) {
      c += fmt::format(" (max_surge {}, max_unavailable {})", d.surge_limit, d.max_unavailable);
    }
    if (d.draining > 0) c += fmt::format("; waiting for {} draining to stop", d.draining);
    if (d.lost_holding > 0) {
      c += fmt::format("; waiting for {} written-off {} to stop on the node of {} volumes",
                       d.lost_holding, d.lost_holding == 1 ? "instance" : "instances",
                       d.lost_holding == 1 ? "its" : "their");
    }
    clauses.push_back(std::move(c));
  } else if (d.unready_kept + out.placed > 0) {
    std::string c = fmt::format("waiting for {} of {} instances to become healthy",
                                d.unready_kept + out.placed, d.desired);
    size_t unhealthy = 0;
    for (std::uint32_t m : d.restarts) unhealthy += s.instances[m].unhealthy ? 1 : 0;
    const size_t crashed = d.restarts.size() - unhealthy;
    if (crashed > 0 && unhealthy > 0) {
      c += fmt::format(" ({} crashed, {} failing health checks, restarting with backoff)", crashed,
                       unhealthy);
    } else if (crashed > 0) {
      c += fmt::format(" ({} crashed, restarting with backoff)", crashed);
    } else if (unhealthy > 0) {
      c += fmt::format(" ({} failing health checks, restarting with backoff)", unhealthy);
    }
    clauses.push_back(std::move(c));
  }
  if (d.waiting_unreachable > 0 && d.volumes) {
    clauses.push_back(
        fmt::format("{} on unreachable nodes, which hold their volumes: they wait "
                    "for their nodes",
                    d.waiting_unreachable));
  } else if (d.waiting_unreachable > 0) {
    clauses.push_back(
        fmt::format("{} on unreachable nodes, replaced if still unreachable after {} s",
                    d.waiting_unreachable, seconds(s.in->config.unreachable_grace_ms)));
  }
  if (clauses.empty()) return Pending{};
  return Pending{g.env_id, g.process, missing, outdated,
                 fmt::format("{}", fmt::join(clauses, "; "))};
}

// What each group runs this round. A group whose target deploy failed runs
// the rollback created this round (`rollbacks`, one revision per group, so
// that its new instances belong to the rollback deploy), else holds
// (auto_rollback off), else runs its stable revision.
Course courseOf(const internal::DeploySteps& steps, const Plan& plan, const Group& g,
                Revision& rollback) {
  Course c;
  const std::string& target = g.target.deploy_id;
  auto st = steps.status.find(target);
  if (st == steps.status.end() || st->second != DeployStatus::kFailed) {
    if (g.target.release_id.empty()) {
      c.no_revision_reason = fmt::format("no release has been deployed to {} yet", g.env_id);
      return c;
    }
    c.revision = &g.target;
    auto d = steps.by_id.find(target);
    if (d != steps.by_id.end()) c.rolls_back = d->second->rollback_of;
    return c;
  }
  auto r = steps.rollbacks.find(target);
  if (r != steps.rollbacks.end() && g.stable.release_id == plan.rollbacks[r->second].release_id) {
    const Rollback& rb = plan.rollbacks[r->second];
    rollback = Revision{rb.release_id, rb.deploy_id, g.stable.resources, rb.secrets_version};
    c.revision = &rollback;
    c.rolls_back = target;
  } else if (!g.strategy.auto_rollback) {
    c.revision = &g.target;
    c.hold = true;
  } else if (!g.stable.release_id.empty()) {
    c.revision = &g.stable;
    c.rolls_back = target;
  } else {
    c.no_revision_reason =
        fmt::format("deploy {} failed and {} has no earlier release to run", target, g.env_id);
  }
  return c;
}

}  // namespace

std::int64_t backoffDelayMs(const Config& c, int restarts) {
  std::int64_t delay = c.backoff_base_ms;
  for (int i = 0; i < restarts && delay < c.backoff_max_ms; ++i) delay *= 2;
  return std::min(delay, c.backoff_max_ms);
}

Result<Plan> reconcile(const Input& in, const IdSource& ids) { return reconcile(in, ids, ids); }

Result<Plan> reconcile(const Input& in, const IdSource& ids, const IdSource& deploy_ids) {
  PLFM_ASSIGN_OR_RETURN(Snapshot s, internal::buildSnapshot(in));
  Plan plan;
  const internal::DeploySteps steps = internal::stepDeploys(s, deploy_ids, plan);

  // Node loss: write off, and stop stale copies once their node answers.
  for (const InstanceView& v : s.instances) {
    if (v.newly_lost) plan.lost.push_back(Lost{v.inst->id, v.inst->node_id, lostReason(s, v)});
    const bool node_unreachable = v.node != nullptr && v.node->state == NodeState::kUnreachable;
    if (v.lost && v.occupies && v.inst->desired == Desired::kRun && !node_unreachable) {
      // Written off earlier: the node either answers again or went down for
      // good since (its stop is then best effort, for a node that returns).
      const bool back = v.node != nullptr && v.node->state == NodeState::kActive;
      plan.stops.push_back(
          Stop{v.inst->id, v.inst->lost
                               ? fmt::format("node {} is {}; {} was replaced while it "
                                             "was unreachable",
                                             v.inst->node_id, back ? "back" : "down", v.inst->id)
                               : lostReason(s, v)});
    }
  }
  for (std::uint32_t m : s.orphans) {
    const InstanceView& v = s.instances[m];
    if (v.live) {
      plan.drains.push_back(Drain{v.inst->id, fmt::format("{} no longer runs process type {}",
                                                          v.inst->env_id, v.inst->process)});
    }
  }

  std::vector<GroupDecision> decisions;
  decisions.reserve(s.groups.size());
  // Only groups of a deploy that failed this round with a rollback use theirs.
  std::vector<Revision> rollbacks(plan.rollbacks.empty() ? 0 : s.groups.size());
  for (size_t i = 0; i < s.groups.size(); ++i) {
    Revision unused;
    Revision& rollback = rollbacks.empty() ? unused : rollbacks[i];
    const internal::Course course = courseOf(steps, plan, *s.groups[i].group, rollback);
    decisions.push_back(internal::decideGroup(s, s.groups[i], course));
  }

  // The Placer indexes every instance's usage and address: build it only
  // when something is to be placed (not in the common steady state).
  std::vector<Allocator::Outcome> outcomes(decisions.size());
  size_t wanted = 0;
  for (const GroupDecision& d : decisions) wanted += static_cast<size_t>(d.restore + d.surge);
  if (wanted > 0) {
    plan.allocations.reserve(wanted);
    Allocator alloc(s, ids, plan, decisions.size());
    for (size_t i = 0; i < decisions.size(); ++i) {
      alloc.place(i, decisions[i], decisions[i].restore, true, outcomes[i]);
    }
    for (size_t i = 0; i < decisions.size(); ++i) {
      alloc.place(i, decisions[i], decisions[i].surge, false, outcomes[i]);
    }
  }

  const Config& c = in.config;
  for (size_t i = 0; i < decisions.size(); ++i) {
    const GroupDecision& d = decisions[i];
    for (const auto& [m, why] : d.drains)
      plan.drains.push_back(Drain{s.instances[m].inst->id, why});
    for (std::uint32_t m : d.restarts) {
      const Instance& inst = *s.instances[m].inst;
      const std::int64_t delay = backoffDelayMs(c, inst.restarts);
      plan.restarts.push_back(
          Restart{inst.id, inst.node_id, inst.generation + 1, inst.restarts + 1,
                  inst.phase_since_ms + delay,
                  fmt::format("{}; restart {} after {} backoff", crashReason(inst),
                              inst.restarts + 1, duration(delay))});
    }
    Pending p = pendingOf(s, d, outcomes[i]);
    if (!p.reason.empty()) plan.pending.push_back(std::move(p));
  }
  return plan;
}

}  // namespace plfm::reconcile
