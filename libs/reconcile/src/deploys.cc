#include "deploys.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "rollout.h"

namespace plfm::reconcile::internal {
namespace {

struct Failures {
  int count = 0;
  const Instance* last = nullptr;  // the latest crash, or the most restarted
};

bool isNewer(const Deploy& a, const Deploy& b) {
  return std::tie(a.created_ms, a.id) > std::tie(b.created_ms, b.id);
}

// Crashed, or running with its health checks failing past the threshold:
// either way a failure of the release.
bool failingNow(const Instance& i) {
  return i.phase == Phase::kExited || i.phase == Phase::kFailed || i.phase == Phase::kUnhealthy;
}

bool laterCrash(const Instance& a, const Instance* b) {
  if (b == nullptr) return true;
  const bool a_crashed = failingNow(a);
  const bool b_crashed = failingNow(*b);
  if (a_crashed != b_crashed) return a_crashed;
  if (a_crashed) return std::tie(a.phase_since_ms, a.id) > std::tie(b->phase_since_ms, b->id);
  return std::tie(a.restarts, a.id) > std::tie(b->restarts, b->id);
}

std::string describe(const Instance& i) {
  if (i.phase == Phase::kExited) return fmt::format("{} exited with code {}", i.id, i.exit_code);
  if (i.phase == Phase::kFailed) return fmt::format("{} failed to start", i.id);
  if (i.phase == Phase::kUnhealthy) return fmt::format("{} failed its health checks", i.id);
  return fmt::format("{} restarted {} times", i.id, i.restarts);
}

// When a deploy in progress has made no progress for its groups' deadline:
// the reason, naming the deploy's instances that are not serving. Progress
// is the deploy's start or the latest time one of its instances became
// healthy.
std::optional<std::string> stalled(const Snapshot& s, const Deploy& d,
                                   const std::vector<const GroupState*>& mine) {
  std::int64_t deadline = 0;
  for (const GroupState* g : mine) {
    deadline = std::max(deadline, g->group->strategy.progress_deadline_ms);
  }
  if (deadline <= 0) return std::nullopt;
  std::int64_t progress = d.created_ms;
  std::vector<const Instance*> waiting;
  for (const GroupState* g : mine) {
    for (std::uint32_t m : g->members) {
      const InstanceView& v = s.instances[m];
      if (!v.live || v.inst->deploy_id != d.id || v.inst->release_id != d.release_id) continue;
      if (v.healthy) {
        progress = std::max(progress, v.inst->phase_since_ms);
      } else {
        waiting.push_back(v.inst);
      }
    }
  }
  if (s.in->now_ms - progress <= deadline) return std::nullopt;
  std::sort(waiting.begin(), waiting.end(),
            [](const Instance* a, const Instance* b) { return a->id < b->id; });
  std::string who;
  for (size_t i = 0; i < waiting.size() && i < 3; ++i) {
    who += (i == 0 ? "" : ", ") + fmt::format("{} {}", waiting[i]->id, toString(waiting[i]->phase));
  }
  if (waiting.size() > 3) who += fmt::format(" and {} more", waiting.size() - 3);
  return fmt::format("no progress for {} s (progress_deadline): {}", deadline / 1000,
                     who.empty() ? std::string("no new instance could be placed") : who);
}

void transition(Plan& plan, const Deploy& d, DeployStatus to, std::string reason) {
  plan.deploys.push_back(DeployTransition{d.id, d.env_id, d.status, to, std::move(reason)});
}

// Deploy `d` fails because `why`. With auto_rollback on (its release's
// manifest), a new deploy of the stable revision follows, unless there is
// none, it is the failed revision itself, or `d` was an auto-rollback; the
// reason says which.
void fail(const Deploy& d, const std::vector<const GroupState*>& mine, const std::string& why,
          const IdSource& deploy_ids, Plan& plan, DeploySteps& out) {
  out.status[d.id] = DeployStatus::kFailed;
  // The groups share the release's strategy; the stable revision is the
  // env's, from any group that has one (a process type new in the failed
  // release has none).
  const Group* g = mine.empty() ? nullptr : mine.front()->group;
  for (const GroupState* m : mine) {
    if (!m->group->stable.release_id.empty()) {
      g = m->group;
      break;
    }
  }
  const Revision none;
  const Revision& stable = g == nullptr ? none : g->stable;
  const bool auto_rollback = g == nullptr || g->strategy.auto_rollback;
  std::string next;
  if (!auto_rollback) {
    next = stable.release_id.empty()
               ? "there is no earlier release; auto_rollback is off; deploy a fix"
               : stable.release_id +
                     " keeps serving; auto_rollback is off; run `vt rollback` or deploy a fix";
  } else if (stable.release_id.empty()) {
    next = "there is no earlier release to roll back to";
  } else if (!d.rollback_of.empty()) {
    next = fmt::format("not rolled back again: it was the auto-rollback of {}", d.rollback_of);
  } else if (stable.release_id == d.release_id &&
             stable.secrets_version == g->target.secrets_version) {
    next = fmt::format(
        "{} keeps serving; it was already the last successful release, so there "
        "is nothing to roll back to",
        stable.release_id);
  } else {
    Rollback r{deploy_ids(),
               d.env_id,
               stable.release_id,
               stable.secrets_version,
               g->strategy.kind,
               d.id,
               fmt::format("auto-rollback after {} failed: {}", d.id, why)};
    next = fmt::format("{} keeps serving; auto-rollback: {} redeploys it", stable.release_id,
                       r.deploy_id);
    out.rollbacks.emplace(d.id, plan.rollbacks.size());
    plan.rollbacks.push_back(std::move(r));
  }
  transition(plan, d, DeployStatus::kFailed, fmt::format("{}; {}", why, next));
}

}  // namespace

DeploySteps stepDeploys(const Snapshot& s, const IdSource& deploy_ids, Plan& plan) {
  const Config& c = s.in->config;
  DeploySteps out;
  std::unordered_map<std::string_view, DeployStatus>& status = out.status;
  status.reserve(s.deploys.size());
  out.by_id.reserve(s.deploys.size());
  for (const Deploy* d : s.deploys) {
    status[d->id] = d->status;
    out.by_id.emplace(d->id, d);
  }
  // Most rounds have no deploy in flight: then there is nothing to step.
  if (std::none_of(s.deploys.begin(), s.deploys.end(), [](const Deploy* d) {
        return d->status == DeployStatus::kPending || d->status == DeployStatus::kInProgress;
      })) {
    return out;
  }
  std::unordered_map<std::string_view, const Deploy*> newest;  // per env
  for (const Deploy* d : s.deploys) {
    auto [it, inserted] = newest.emplace(d->env_id, d);
    if (!inserted && isNewer(*d, *it->second)) it->second = d;
  }
  std::unordered_map<std::string_view, std::vector<const GroupState*>> groups;  // per deploy
  for (const GroupState& g : s.groups) {
    if (!g.group->target.deploy_id.empty()) groups[g.group->target.deploy_id].push_back(&g);
  }
  // Failures of new instances, for the deploys that are rolling out.
  std::unordered_map<std::string_view, Failures> failures;
  for (const Deploy* d : s.deploys) {
    if (d->status == DeployStatus::kInProgress) failures.emplace(d->id, Failures{});
  }
  if (!failures.empty()) {
    for (const InstanceView& v : s.instances) {
      const Instance& i = *v.inst;
      auto f = failures.find(i.deploy_id);
      if (f == failures.end() || !v.occupies ||
          i.release_id != out.by_id.at(i.deploy_id)->release_id) {
        continue;
      }
      const int n = i.restarts + (failingNow(i) ? 1 : 0);
      if (n == 0) continue;
      f->second.count += n;
      if (laterCrash(i, f->second.last)) f->second.last = &i;
    }
  }

  for (const Deploy* d : s.deploys) {
    if (d->status != DeployStatus::kPending && d->status != DeployStatus::kInProgress) continue;
    const Deploy* latest = newest[d->env_id];
    const auto& mine = groups[d->id];
    if (latest != d) {
      transition(plan, *d, DeployStatus::kSuperseded, fmt::format("superseded by {}", latest->id));
      status[d->id] = DeployStatus::kSuperseded;
      continue;
    }
    // An auto-rollback says so in each of its reasons.
    const std::string prefix =
        d->rollback_of.empty() ? "" : fmt::format("auto-rollback of {}: ", d->rollback_of);
    if (d->status == DeployStatus::kPending) {
      const StrategyKind kind =
          mine.empty() ? StrategyKind::kRolling : mine.front()->group->strategy.kind;
      transition(plan, *d, DeployStatus::kInProgress,
                 fmt::format("{}{} deploy of {} started", prefix, toString(kind), d->release_id));
      status[d->id] = DeployStatus::kInProgress;
      continue;
    }
    const Failures& f = failures[d->id];
    if (f.count > c.max_deploy_failures) {
      fail(*d, mine,
           fmt::format("{}new instances failed {} times (at most {} allowed), last {}", prefix,
                       f.count, c.max_deploy_failures, describe(*f.last)),
           deploy_ids, plan, out);
      continue;
    }
    int instances = 0;
    bool done = true;
    for (const GroupState* g : mine) {
      instances += std::max(0, g->group->count);
      done = done && converged(s, *g, g->group->target);
    }
    if (done) {
      transition(plan, *d, DeployStatus::kSucceeded,
                 fmt::format("{}{} healthy {} of {} serving", prefix, instances,
                             instances == 1 ? "instance" : "instances", d->release_id));
      status[d->id] = DeployStatus::kSucceeded;
      continue;
    }
    if (auto why = stalled(s, *d, mine)) fail(*d, mine, prefix + *why, deploy_ids, plan, out);
  }
  return out;
}

}  // namespace plfm::reconcile::internal
