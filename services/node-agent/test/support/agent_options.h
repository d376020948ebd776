// The AgentOptions the agent's end-to-end tests start from: plan-file mode
// in `state_dir`, the world's kernel, initramfs and image cache, a 64 MiB
// scratch disk, VMs stopped when the agent stops.
#pragma once

#include <string>

#include "agent/agent.h"
#include "support/agent_world.h"

namespace plfm::agent::testing {

inline AgentOptions planFileAgentOptions(const AgentWorld& world, const std::string& state_dir) {
  AgentOptions o;
  o.state_dir = state_dir;
  o.plan_file = state_dir + "/plan.json";
  o.kernel = world.kernel;
  o.initramfs = world.initramfs;
  o.image_cache_dir = world.dir->file("images");
  o.scratch_mb = 64;
  o.shutdown_grace_ms = 3000;
  o.stop_instances_on_exit = true;
  return o;
}

}  // namespace plfm::agent::testing
