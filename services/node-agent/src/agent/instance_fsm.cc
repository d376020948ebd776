#include "agent/instance_fsm.h"
#include "agent/errors.h"

#include <array>
#include <string>

namespace plfm::agent {
namespace {

constexpr std::array<std::string_view, 7> kNames = {"allocated", "preparing", "booting", "running",
                                                    "stopping",  "stopped",   "failed"};

}  // namespace

std::string_view phaseName(Phase p) { return kNames[static_cast<size_t>(p)]; }

Result<Phase> parsePhase(std::string_view name) {
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) return static_cast<Phase>(i);
  }
  return Error(errc::kInvalidArgument, "unknown instance phase '" + std::string(name) + "'");
}

bool isTerminal(Phase p) { return p == Phase::kStopped || p == Phase::kFailed; }

bool transitionAllowed(Phase from, Phase to) {
  if (isTerminal(from)) return false;
  if (to == Phase::kFailed || to == Phase::kStopping) return from != to;
  switch (from) {
    case Phase::kAllocated:
      return to == Phase::kPreparing || to == Phase::kStopped;
    case Phase::kPreparing:
      return to == Phase::kBooting;
    case Phase::kBooting:
      // A workload may exit before READY is read: the VM is gone, stopped.
      return to == Phase::kRunning || to == Phase::kStopped;
    case Phase::kRunning:   // the workload exited and the VM powered off
    case Phase::kStopping:  // the stop finished
      return to == Phase::kStopped;
    default:
      return false;
  }
}

Result<void> transition(Phase& current, Phase to) {
  if (!transitionAllowed(current, to)) {
    return Error(errc::kBadTransition, "instance cannot go from " +
                                           std::string(phaseName(current)) + " to " +
                                           std::string(phaseName(to)))
        .with("from", std::string(phaseName(current)))
        .with("to", std::string(phaseName(to)));
  }
  current = to;
  return ok();
}

}  // namespace plfm::agent
