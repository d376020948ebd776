// The node agent's state machine for one instance generation:
//
//   allocated -> preparing -> booting -> running -> stopping -> stopped
//   (any phase before stopped) -> failed
//
// allocated: in the plan, nothing done yet. preparing: image, disks, tap.
// booting: VMM started, waiting for the guest's READY. running: the workload
// runs. stopping: SHUTDOWN sent (or the VMM is being killed). stopped: the VM
// is gone and its resources are released (a workload exit ends here too, with
// its exit code). failed: it could not start, or the VMM died; the reason is
// reported. Any non-terminal phase may go to stopping (a drain or stop
// request) and allocated may skip straight to stopped (stopped before start).
//
// Terminal phases are final for that generation; a restart is a new
// generation with its own machine, starting at allocated.
#pragma once

#include <string_view>

#include "plfm/core/result.h"

namespace plfm::agent {

enum class Phase { kAllocated, kPreparing, kBooting, kRunning, kStopping, kStopped, kFailed };

[[nodiscard]] std::string_view phaseName(Phase p);
[[nodiscard]] Result<Phase> parsePhase(std::string_view name);
[[nodiscard]] bool isTerminal(Phase p);
[[nodiscard]] bool transitionAllowed(Phase from, Phase to);

// Moves `current` to `to`, or fails with agent.bad_transition naming both.
[[nodiscard]] Result<void> transition(Phase& current, Phase to);

}  // namespace plfm::agent
