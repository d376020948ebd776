#include "snapshot.h"

#include <algorithm>

namespace plfm::reconcile::internal {
namespace {

Result<void> validateConfig(const Config& c) {
  auto bad = [](const std::string& field, const std::string& why) {
    return Error(errc::kInvalidArgument, "invalid scheduler config: " + field + " " + why)
        .with("field", field);
  };
  if (c.cpu_overcommit < 1) return bad("cpu_overcommit", "must be at least 1");
  if (c.unreachable_grace_ms < 0) return bad("unreachable_grace_ms", "must not be negative");
  if (c.backoff_base_ms < 1) return bad("backoff_base_ms", "must be positive");
  if (c.backoff_max_ms < c.backoff_base_ms) {
    return bad("backoff_max_ms", "must be at least backoff_base_ms");
  }
  if (c.max_deploy_failures < 0) return bad("max_deploy_failures", "must not be negative");
  if (c.unhealthy_restarts_in_place < 0) {
    return bad("unhealthy_restarts_in_place", "must not be negative");
  }
  return ok();
}

// Sorts pointers to `items` by `key` and fails on the first duplicate key.
template <class T, class Key>
Result<std::vector<const T*>> sortedUnique(const std::vector<T>& items, Key key,
                                           std::string_view what) {
  std::vector<const T*> out;
  out.reserve(items.size());
  for (const T& item : items) out.push_back(&item);
  auto less = [&](const T* a, const T* b) { return key(*a) < key(*b); };
  // The control plane reads its views in id order; skip the sort then.
  if (!std::is_sorted(out.begin(), out.end(), less)) std::sort(out.begin(), out.end(), less);
  for (size_t i = 1; i < out.size(); ++i) {
    if (!less(out[i - 1], out[i])) {
      return Error(errc::kInvalidArgument, "duplicate " + std::string(what) + " in scheduler input")
          .with(std::string(what), std::string(std::get<0>(key(*out[i]))));
    }
  }
  return out;
}

}  // namespace

Result<Snapshot> buildSnapshot(const Input& in) {
  PLFM_TRY(validateConfig(in.config));
  Snapshot s;
  s.in = &in;
  auto by_id = [](const auto& x) { return std::tie(x.id); };
  PLFM_ASSIGN_OR_RETURN(s.nodes, sortedUnique(in.nodes, by_id, "node"));
  PLFM_ASSIGN_OR_RETURN(auto instances, sortedUnique(in.instances, by_id, "instance"));
  PLFM_ASSIGN_OR_RETURN(s.deploys, sortedUnique(in.deploys, by_id, "deploy"));
  PLFM_ASSIGN_OR_RETURN(
      auto groups,
      sortedUnique(
          in.groups, [](const Group& g) { return std::tie(g.env_id, g.process); }, "group"));

  s.node_by_id.reserve(s.nodes.size());
  for (std::uint32_t i = 0; i < s.nodes.size(); ++i) s.node_by_id.emplace(s.nodes[i]->id, i);

  std::unordered_map<std::pair<std::string_view, std::string_view>, std::uint32_t, PairHash>
      group_index;
  group_index.reserve(groups.size());
  s.groups.reserve(groups.size());
  for (const Group* g : groups) {
    group_index.emplace(std::pair<std::string_view, std::string_view>(g->env_id, g->process),
                        static_cast<std::uint32_t>(s.groups.size()));
    s.groups.push_back(GroupState{g, {}});
  }

  const std::int64_t now = in.now_ms;
  const std::int64_t grace = in.config.unreachable_grace_ms;
  s.instances.reserve(instances.size());
  for (const Instance* inst : instances) {
    InstanceView v;
    v.inst = inst;
    auto node = s.node_by_id.find(inst->node_id);
    if (node != s.node_by_id.end()) {
      v.node_index = node->second;
      v.node = s.nodes[node->second];
    }
    // An instance is written off when its node is gone for good, or has
    // been unreachable for longer than the grace period.
    const bool node_off =
        v.node == nullptr || v.node->state == NodeState::kDown ||
        (v.node->state == NodeState::kUnreachable && now - v.node->unreachable_since_ms >= grace);
    v.occupies = inst->phase != Phase::kStopped;
    const bool wants_run = inst->desired == Desired::kRun;
    v.lost = inst->lost || (node_off && v.occupies && wants_run);
    v.newly_lost = v.lost && !inst->lost;
    v.live = wants_run && v.occupies && !v.lost;
    // A drain on a node that is gone never completes; it must not hold up
    // rollouts.
    v.draining = !wants_run && v.occupies && !v.lost && !node_off;
    v.healthy = v.live && inst->phase == Phase::kHealthy && v.node->state == NodeState::kActive;
    v.crashed = v.live && (inst->phase == Phase::kExited || inst->phase == Phase::kFailed);
    v.unhealthy = v.live && inst->phase == Phase::kUnhealthy;

    const auto index = static_cast<std::uint32_t>(s.instances.size());
    s.instances.push_back(v);
    auto g = group_index.find({inst->env_id, inst->process});
    if (g == group_index.end()) {
      s.orphans.push_back(index);
    } else {
      s.groups[g->second].members.push_back(index);
    }
  }
  return s;
}

}  // namespace plfm::reconcile::internal
