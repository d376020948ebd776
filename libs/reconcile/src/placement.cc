#include "plfm/reconcile/placement.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>

#include "plfm/core/assert.h"
#include "plfm/reconcile/ipv6.h"

namespace plfm::reconcile {
namespace {

constexpr std::int64_t kPpm = 1'000'000;

// "1 node" / "3 nodes".
std::string plural(std::int64_t n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

// "10 GiB", "48 MiB", "1000 bytes": exact, in the largest unit that divides.
std::string bytes(std::int64_t n) {
  constexpr std::int64_t kMiB = std::int64_t{1} << 20;
  constexpr std::int64_t kGiB = std::int64_t{1} << 30;
  if (n != 0 && n % kGiB == 0) return fmt::format("{} GiB", n / kGiB);
  if (n != 0 && n % kMiB == 0) return fmt::format("{} MiB", n / kMiB);
  return fmt::format("{} bytes", n);
}

}  // namespace

bool Placer::Slot::eligible() const {
  return state == NodeState::kActive && !cordoned && !draining && !edge && prefix_ok &&
         memory_mb > 0 && vcpu_cap > 0;
}

bool Placer::Slot::fits(const Resources& r) const {
  return memory_used + r.memory_mb <= memory_mb && vcpu_used + r.vcpus <= vcpu_cap;
}

Placer::Placer(const std::vector<Node>& nodes, int cpu_overcommit) {
  slots_.reserve(nodes.size());
  for (const Node& n : nodes) {
    Slot s;
    s.id = n.id;
    s.state = n.state;
    s.cordoned = n.cordoned;
    s.draining = n.draining;
    s.edge = n.edge;
    s.memory_mb = n.memory_mb;
    s.vcpu_cap = static_cast<std::int64_t>(n.cores) * cpu_overcommit;
    s.volume_free = n.volume_free_bytes;
    auto prefix = parseIpv6Prefix(n.prefix);
    if (prefix && prefix->length == 64) {
      s.prefix_ok = true;
      s.prefix_hi = prefix->address.hi;
    }
    slots_.push_back(std::move(s));
  }
  std::sort(slots_.begin(), slots_.end(), [](const Slot& a, const Slot& b) { return a.id < b.id; });
  by_id_.reserve(slots_.size());
  for (std::uint32_t i = 0; i < slots_.size(); ++i) by_id_.emplace(slots_[i].id, i);
}

std::optional<std::uint32_t> Placer::index(std::string_view node_id) const {
  auto it = by_id_.find(node_id);
  if (it == by_id_.end()) return std::nullopt;
  return it->second;
}

Placer::LoadKey Placer::keyOf(std::uint32_t node) const {
  const Slot& s = slots_[node];
  return LoadKey{s.memory_used * kPpm / s.memory_mb, s.vcpu_used * kPpm / s.vcpu_cap, node};
}

void Placer::buildLoadIndex() {
  for (std::uint32_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].eligible()) load_.insert(keyOf(i));
  }
  load_built_ = true;
}

void Placer::reserve(std::string_view node_id, const Resources& r, std::string_view address) {
  if (auto node = index(node_id)) reserve(*node, r, address);
}

void Placer::addLoad(std::uint32_t node, const Resources& r) {
  Slot& s = slots_[node];
  // The load index is keyed by load: take the node out, change it, put it back.
  const bool indexed = load_built_ && s.eligible();
  if (indexed) load_.erase(keyOf(node));
  s.memory_used += r.memory_mb;
  s.vcpu_used += r.vcpus;
  if (indexed) load_.insert(keyOf(node));
}

void Placer::reserve(std::uint32_t node, const Resources& r, std::string_view address) {
  PLFM_ASSERT(node < slots_.size(), "node index out of range");
  Slot& s = slots_[node];
  addLoad(node, r);
  if (s.prefix_ok) s.addresses.push_back(address);
}

void Placer::count(Spread& spread, std::string_view node_id) const {
  if (auto node = index(node_id)) ++spread.counts_[*node];
}

std::optional<Placer::Placement> Placer::place(const Resources& r, Spread& spread,
                                               std::string_view required_node,
                                               std::int64_t volume_bytes, std::uint32_t org_tag) {
  if (!required_node.empty()) {
    auto node = index(required_node);
    if (!node || !slots_[*node].eligible() || !slots_[*node].fits(r)) return std::nullopt;
    return commit(*node, r, spread, org_tag);
  }
  for (const Failed& f : failed_) {
    if (r.memory_mb >= f.r.memory_mb && r.vcpus >= f.r.vcpus && volume_bytes >= f.volume_bytes) {
      return std::nullopt;
    }
  }
  if (!load_built_) buildLoadIndex();
  // The least-loaded fitting node without an instance of the group wins;
  // failing that, the fitting node with the fewest of them (then least load).
  std::optional<std::uint32_t> best;
  int best_peers = INT_MAX;
  for (const LoadKey& k : load_) {
    const Slot& s = slots_[k.node];
    if (!s.fits(r) || s.volume_free < volume_bytes) continue;
    const int peers = spread.on(k.node);
    if (peers < best_peers) {
      best = k.node;
      best_peers = peers;
      if (peers == 0) break;
    }
  }
  if (!best) {
    failed_.push_back(Failed{r, volume_bytes});
    return std::nullopt;
  }
  slots_[*best].volume_free -= volume_bytes;
  return commit(*best, r, spread, org_tag);
}

std::uint64_t Placer::takeIid(Slot& s, std::uint32_t org_tag) {
  if (!s.addresses.empty()) {
    for (std::string_view text : s.addresses) {
      auto a = parseIpv6(text);
      if (a && a->hi == s.prefix_hi) s.iids.push_back(a->lo);
    }
    s.addresses.clear();
    s.iids_sorted = false;
  }
  if (!s.iids_sorted) {
    std::sort(s.iids.begin(), s.iids.end());
    s.iids.erase(std::unique(s.iids.begin(), s.iids.end()), s.iids.end());
    s.iids_sorted = true;
    s.next_iid.clear();
  }
  // Every id of the tag below the cursor is taken: scan on from there
  // through the sorted ids in use.
  const std::uint64_t base = (std::uint64_t{org_tag} << 32) | kFirstInstanceIid;
  const std::uint64_t last = (std::uint64_t{org_tag} << 32) | 0xffff'ffffULL;
  std::uint64_t& next = s.next_iid.try_emplace(org_tag, base).first->second;
  auto pos = std::lower_bound(s.iids.begin(), s.iids.end(), next);
  while (pos != s.iids.end() && *pos == next) {
    ++next;
    ++pos;
  }
  const std::uint64_t iid = next;
  PLFM_ASSERT(iid <= last, "an org's range of a node's /64 ran out of interface ids");
  s.iids.insert(pos, iid);
  ++next;
  return iid;
}

Placer::Placement Placer::commit(std::uint32_t node, const Resources& r, Spread& spread,
                                 std::uint32_t org_tag) {
  Slot& s = slots_[node];
  addLoad(node, r);

  const std::uint64_t iid = takeIid(s, org_tag);

  int& peers = spread.counts_[node];
  Placement p;
  p.node_id = s.id;
  p.address = formatIpv6(Ipv6{s.prefix_hi, iid});
  p.peers = peers++;
  p.memory_used_mb = s.memory_used;
  p.memory_mb = s.memory_mb;
  return p;
}

std::string Placer::whyNotOn(const Resources& r, std::string_view node_id) const {
  auto node = index(node_id);
  if (!node) return "it is not registered";
  const Slot& s = slots_[*node];
  if (s.state != NodeState::kActive) return fmt::format("it is {}", toString(s.state));
  if (s.draining) return "it is draining";
  if (s.cordoned) return "it is cordoned";
  if (s.edge) return "it is an edge-only node";
  if (!s.prefix_ok) return "it has no valid IPv6 /64";
  if (s.memory_used + r.memory_mb > s.memory_mb) {
    return fmt::format("it has {} MiB free, {} MiB needed", s.memory_mb - s.memory_used,
                       r.memory_mb);
  }
  return fmt::format("it has {} of {} vCPUs free, {} needed", s.vcpu_cap - s.vcpu_used, s.vcpu_cap,
                     r.vcpus);
}

std::string Placer::explain(const Resources& r, std::string_view required_node,
                            std::int64_t volume_bytes) const {
  if (!required_node.empty()) {
    return fmt::format("waiting for node {}, which holds the volumes: {}", required_node,
                       whyNotOn(r, required_node));
  }
  if (slots_.empty()) return "waiting for capacity: the cluster has no nodes";
  std::int64_t unreachable = 0;
  std::int64_t down = 0;
  std::int64_t draining = 0;
  std::int64_t cordoned = 0;
  std::int64_t edge = 0;
  std::int64_t no_prefix = 0;
  std::int64_t memory = 0;
  std::int64_t cpu = 0;
  std::int64_t volume = 0;
  const Slot* largest = nullptr;  // of volume space, among the nodes that take instances
  for (const Slot& s : slots_) {
    if (s.state == NodeState::kUnreachable) {
      ++unreachable;
    } else if (s.state == NodeState::kDown) {
      ++down;
    } else if (s.draining) {
      ++draining;
    } else if (s.cordoned) {
      ++cordoned;
    } else if (s.edge) {
      ++edge;
    } else if (!s.prefix_ok || s.vcpu_cap <= 0) {
      ++no_prefix;
    } else if (s.memory_used + r.memory_mb > s.memory_mb) {
      ++memory;
    } else if (s.vcpu_used + r.vcpus > s.vcpu_cap) {
      ++cpu;
    } else if (s.volume_free < volume_bytes) {
      ++volume;
    }
    if (s.eligible() && (largest == nullptr || s.volume_free > largest->volume_free)) largest = &s;
  }
  const auto total = static_cast<std::int64_t>(slots_.size());
  if (memory == total) {
    return fmt::format("waiting for capacity: no node has {} MiB free ({} checked)", r.memory_mb,
                       plural(total, "node", "nodes"));
  }
  // "the largest is 4 GiB, on node-a"; nothing when no node takes instances.
  const std::string most = largest == nullptr
                               ? std::string()
                               : fmt::format("; the most any node has is {}, on {}",
                                             bytes(largest->volume_free), largest->id);
  if (volume == total) {
    return fmt::format(
        "waiting for volume space: no node has {} free for a slot's volumes ({} "
        "checked{})",
        bytes(volume_bytes), plural(total, "node", "nodes"), most);
  }
  std::vector<std::string> parts;
  if (memory > 0) parts.push_back(fmt::format("{} memory", plural(memory, "lacks", "lack")));
  if (cpu > 0) parts.push_back(fmt::format("{} vCPUs", plural(cpu, "lacks", "lack")));
  if (unreachable > 0)
    parts.push_back(fmt::format("{} unreachable", plural(unreachable, "is", "are")));
  if (down > 0) parts.push_back(fmt::format("{} down", plural(down, "is", "are")));
  if (draining > 0) parts.push_back(fmt::format("{} draining", plural(draining, "is", "are")));
  if (cordoned > 0) parts.push_back(fmt::format("{} cordoned", plural(cordoned, "is", "are")));
  if (edge > 0) parts.push_back(fmt::format("{} edge-only", plural(edge, "is", "are")));
  if (no_prefix > 0) {
    parts.push_back(
        fmt::format("{} no usable IPv6 prefix or cores", plural(no_prefix, "has", "have")));
  }
  if (volume_bytes > 0) {
    if (volume > 0)
      parts.push_back(fmt::format("{} volume space", plural(volume, "lacks", "lack")));
    return fmt::format(
        "waiting for capacity: no node has {} MiB, {} and {} of volume space free ({} checked: "
        "{}{})",
        r.memory_mb, plural(r.vcpus, "vCPU", "vCPUs"), bytes(volume_bytes),
        plural(total, "node", "nodes"), fmt::join(parts, ", "), most);
  }
  return fmt::format("waiting for capacity: no node has {} MiB and {} free ({} checked: {})",
                     r.memory_mb, plural(r.vcpus, "vCPU", "vCPUs"), plural(total, "node", "nodes"),
                     fmt::join(parts, ", "));
}

}  // namespace plfm::reconcile
