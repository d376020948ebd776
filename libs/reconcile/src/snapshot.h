// Internal: the Input indexed and classified once per reconcile. Every list
// here is in a deterministic order (ids, or env then process), so nothing
// downstream iterates a hash map into the Plan.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "plfm/core/result.h"
#include "plfm/reconcile/types.h"

namespace plfm::reconcile::internal {

// How the scheduler sees one instance this round.
struct InstanceView {
  const Instance* inst = nullptr;
  const Node* node = nullptr;    // nullptr: its node is not registered
  std::uint32_t node_index = 0;  // of `node` in Snapshot::nodes (id order)
  bool occupies = false;         // not stopped: holds memory, vCPUs and its address
  bool lost = false;             // written off, before or in this round
  bool newly_lost = false;       // written off in this round (emit Lost)
  bool live = false;             // desired kRun, not lost, not stopped: counts
  bool draining = false;         // drain or stop requested, not stopped yet
  bool healthy = false;          // live, kHealthy, on an active node
  bool crashed = false;          // live, kExited or kFailed
  bool unhealthy = false;        // live, kUnhealthy (its checks failed past the threshold)
};

struct GroupState {
  const Group* group = nullptr;
  std::vector<std::uint32_t> members;  // indices into Snapshot::instances
};

struct PairHash {
  size_t operator()(const std::pair<std::string_view, std::string_view>& p) const noexcept {
    const size_t a = std::hash<std::string_view>()(p.first);
    return a ^
           (std::hash<std::string_view>()(p.second) + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2));
  }
};

struct Snapshot {
  const Input* in = nullptr;
  std::vector<const Node*> nodes;                                  // by id
  std::unordered_map<std::string_view, std::uint32_t> node_by_id;  // index into nodes
  std::vector<InstanceView> instances;                             // by instance id
  std::vector<GroupState> groups;                                  // by env id, then process
  std::vector<std::uint32_t> orphans;  // instances whose group is not desired
  std::vector<const Deploy*> deploys;  // by id
};

// Validates the Input (unique ids, sane config) and classifies it.
[[nodiscard]] Result<Snapshot> buildSnapshot(const Input& in);

// Seconds, rounded down, for reasons.
[[nodiscard]] inline std::int64_t seconds(std::int64_t ms) { return ms / 1000; }

}  // namespace plfm::reconcile::internal
