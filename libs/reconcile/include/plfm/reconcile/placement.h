// Placer chooses a node and an IPv6 address for new instances, one at a
// time, and keeps the nodes' usage up to date as it goes, so one Placer
// serves a whole reconcile (or a benchmark's batch of placements).
//
// Rules (docs/specs/scheduler/reconciler.md, "Placement"):
//   - filter: the node is active, not cordoned or draining, not edge-only,
//     has a valid /64;
//     memory is a hard cap (sum of instance memory <= the node's memory);
//     CPU is soft (sum of vCPUs <= cores x cpu_overcommit); an instance with
//     volumes goes to its volumes' node and nowhere else; one whose volumes
//     have no node yet needs their size in the node's free volume space;
//   - score: fewest instances of the same group on the node (spread), then
//     the lowest memory use as a fraction of the node, then CPU likewise,
//     then the node id: the same inputs always give the same placement;
//   - address: in the node's /64, interface id (org_tag << 32) | n with n
//     the lowest number >= 2 that no address of that tag on the node uses
//     (org_tag 0, the old layout: the lowest free from ::2 up), so
//     `address & ::ffff:ffff:0:0` is the org's tag
//     (docs/specs/networking/mesh.md, Addressing).
//
//   Placer placer(nodes, config.cpu_overcommit);
//   for (const auto& i : running) placer.reserve(i.node_id, i.resources, i.address);
//   Placer::Spread spread;
//   for (const auto& i : running_of_group) placer.count(spread, i.node_id);
//   if (auto p = placer.place(resources, spread, {}, 0, group.org_tag)) ... p->node_id, p->address
//   else reason = placer.explain(resources);
//
// Nodes are kept in an index ordered by load, so a placement visits few
// nodes: the least-loaded ones that fit, skipping those that already hold
// the group. A request that found no node is remembered, and any request at
// least as large fails at once (usage only grows during one Placer's life).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "plfm/reconcile/types.h"

namespace plfm::reconcile {

class Placer {
 public:
  // The instances of one group per node, for spreading them.
  class Spread {
   public:
    [[nodiscard]] int on(std::uint32_t node) const {
      auto it = counts_.find(node);
      return it == counts_.end() ? 0 : it->second;
    }

   private:
    friend class Placer;
    std::unordered_map<std::uint32_t, int> counts_;
  };

  struct Placement {
    std::string node_id;
    std::string address;
    int peers = 0;                    // instances of the same group already on the node
    std::int64_t memory_used_mb = 0;  // on the node, including this instance
    std::int64_t memory_mb = 0;
  };

  Placer(const std::vector<Node>& nodes, int cpu_overcommit);
  // The node index holds views into the Placer's own strings.
  Placer(const Placer&) = delete;
  Placer& operator=(const Placer&) = delete;
  Placer(Placer&&) = default;
  Placer& operator=(Placer&&) = default;
  ~Placer() = default;

  // Records an instance that occupies `node_id` (anything not yet stopped):
  // its memory, its vCPUs and its address. Unknown nodes are ignored.
  // `address` is kept as a view and parsed only when a placement on that
  // node needs the free addresses, so it must outlive the Placer.
  void reserve(std::string_view node_id, const Resources& r, std::string_view address);
  // The same for the node at `index()`.
  void reserve(std::uint32_t node, const Resources& r, std::string_view address);

  // A node's position in id order (what Spread::on takes), if it is known.
  [[nodiscard]] std::optional<std::uint32_t> index(std::string_view node_id) const;

  // Records one instance of the spread's group on `node_id` (or the node at
  // `index()`).
  void count(Spread& spread, std::string_view node_id) const;
  static void count(Spread& spread, std::uint32_t node) { ++spread.counts_[node]; }

  // Picks a node and an address and records the new instance there (and in
  // `spread`). nullopt when no node fits; explain() says why. With
  // `required_node`, only that node will do; otherwise `volume_bytes` of
  // free volume space is needed too, and taken from the chosen node. The
  // address carries `org_tag` in bits 64..95 (0: the old layout).
  [[nodiscard]] std::optional<Placement> place(const Resources& r, Spread& spread,
                                               std::string_view required_node = {},
                                               std::int64_t volume_bytes = 0,
                                               std::uint32_t org_tag = 0);

  // Why place() found no node, as a sentence with numbers:
  // "waiting for capacity: no node has 2048 MiB free (3 nodes checked)".
  [[nodiscard]] std::string explain(const Resources& r, std::string_view required_node = {},
                                    std::int64_t volume_bytes = 0) const;
  // Why `node_id` cannot take an instance of `r`: "it is unreachable", "it
  // has 512 MiB free, 1024 MiB needed", "it is not registered", "it is an
  // edge-only node".
  [[nodiscard]] std::string whyNotOn(const Resources& r, std::string_view node_id) const;

  [[nodiscard]] size_t nodeCount() const { return slots_.size(); }

 private:
  struct Slot {
    std::string id;
    NodeState state = NodeState::kActive;
    bool cordoned = false;
    bool draining = false;
    bool edge = false;
    bool prefix_ok = false;
    std::uint64_t prefix_hi = 0;
    std::int64_t memory_mb = 0;
    std::int64_t memory_used = 0;
    std::int64_t vcpu_cap = 0;
    std::int64_t vcpu_used = 0;
    std::int64_t volume_free = 0;
    // Addresses reserved but not parsed yet, then the interface ids in use
    // (sorted once a placement needs them).
    std::vector<std::string_view> addresses;
    std::vector<std::uint64_t> iids;
    bool iids_sorted = true;
    // Per org tag, the next candidate id: every id of that tag from
    // (tag << 32) | 2 up to it is used.
    std::unordered_map<std::uint32_t, std::uint64_t> next_iid;

    [[nodiscard]] bool eligible() const;
    [[nodiscard]] bool fits(const Resources& r) const;
  };
  struct LoadKey {
    std::int64_t memory_ppm = 0;
    std::int64_t vcpu_ppm = 0;
    std::uint32_t node = 0;
    bool operator<(const LoadKey& o) const {
      return std::tie(memory_ppm, vcpu_ppm, node) < std::tie(o.memory_ppm, o.vcpu_ppm, o.node);
    }
  };

  [[nodiscard]] LoadKey keyOf(std::uint32_t node) const;
  // Adds `r` to node `node`'s load, keeping the load index in step.
  void addLoad(std::uint32_t node, const Resources& r);
  void buildLoadIndex();
  Placement commit(std::uint32_t node, const Resources& r, Spread& spread, std::uint32_t org_tag);
  // The lowest free interface id of `org_tag` on `s`, recorded as used.
  static std::uint64_t takeIid(Slot& s, std::uint32_t org_tag);
  // A request that found no node: any request at least as large fails too.
  struct Failed {
    Resources r;
    std::int64_t volume_bytes = 0;
  };

  std::vector<Slot> slots_;  // sorted by id; never resized after construction
  std::unordered_map<std::string_view, std::uint32_t> by_id_;
  std::set<LoadKey> load_;  // eligible nodes only, once built
  bool load_built_ = false;
  std::vector<Failed> failed_;
};

}  // namespace plfm::reconcile
