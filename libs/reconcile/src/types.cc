#include "plfm/reconcile/types.h"

#include <fmt/format.h>

#include <array>

#include "plfm/core/assert.h"

namespace plfm::reconcile {
namespace {

// One table per enum, in declaration order: the enum value is the index.
constexpr std::array kNodeStates = {std::string_view("active"), std::string_view("unreachable"),
                                    std::string_view("down")};
constexpr std::array kStrategyKinds = {std::string_view("rolling"), std::string_view("immediate")};
constexpr std::array kPhases = {
    std::string_view("allocated"), std::string_view("booting"),   std::string_view("running"),
    std::string_view("healthy"),   std::string_view("unhealthy"), std::string_view("exited"),
    std::string_view("failed"),    std::string_view("draining"),  std::string_view("stopped")};
constexpr std::array kDesired = {std::string_view("run"), std::string_view("drain"),
                                 std::string_view("stop")};
constexpr std::array kDeployStatuses = {
    std::string_view("pending"), std::string_view("in_progress"), std::string_view("succeeded"),
    std::string_view("failed"), std::string_view("superseded")};

template <class E, size_t N>
std::string_view name(const std::array<std::string_view, N>& table, E e) {
  const auto i = static_cast<size_t>(e);
  PLFM_ASSERT(i < N, "enum value out of range");
  return table[i];
}

template <class E, size_t N>
std::optional<E> parse(const std::array<std::string_view, N>& table, std::string_view s) {
  for (size_t i = 0; i < N; ++i) {
    if (table[i] == s) return static_cast<E>(i);
  }
  return std::nullopt;
}

}  // namespace

std::string_view toString(NodeState s) { return name(kNodeStates, s); }
std::string_view toString(StrategyKind k) { return name(kStrategyKinds, k); }
std::string_view toString(Phase p) { return name(kPhases, p); }
std::string_view toString(Desired d) { return name(kDesired, d); }
std::string_view toString(DeployStatus s) { return name(kDeployStatuses, s); }

std::optional<NodeState> parseNodeState(std::string_view s) {
  return parse<NodeState>(kNodeStates, s);
}
std::optional<StrategyKind> parseStrategyKind(std::string_view s) {
  return parse<StrategyKind>(kStrategyKinds, s);
}
std::optional<Phase> parsePhase(std::string_view s) { return parse<Phase>(kPhases, s); }
std::optional<Desired> parseDesired(std::string_view s) { return parse<Desired>(kDesired, s); }
std::optional<DeployStatus> parseDeployStatus(std::string_view s) {
  return parse<DeployStatus>(kDeployStatuses, s);
}

const std::string& Group::slotNode(int slot) const {
  static const std::string kNone;
  if (slot < 0 || static_cast<size_t>(slot) >= slot_nodes.size()) return kNone;
  return slot_nodes[static_cast<size_t>(slot)];
}

std::string Group::slotVolumes(int slot) const {
  if (volume_names.empty()) return fmt::format("the volumes of {} slot {}", process, slot);
  std::vector<std::string> full;
  full.reserve(volume_names.size());
  for (const std::string& name : volume_names) full.push_back(fmt::format("{}-{}", name, slot));
  return fmt::format("{} {}", full.size() == 1 ? "volume" : "volumes", fmt::join(full, ", "));
}

}  // namespace plfm::reconcile
