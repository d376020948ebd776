// What the agent's end-to-end tests and bench/agent_bench share: the guest
// kernel (scripts/fetch-kernel), the vt-init initramfs, a real registry on
// loopback, and an image holding the static test workload and busybox,
// pushed to it.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "plfm/core/result.h"
#include "plfm/testing/temp_dir.h"
#include "support/registry_fixture.h"

namespace plfm::agent::testing {

struct AgentWorld {
  std::unique_ptr<plfm::testing::TempDir> dir;
  std::string kernel;     // vmlinux
  std::string initramfs;  // built from vt_init_bin and the kernel's modules
  std::unique_ptr<image::testing::Registry> registry;
  std::string image_ref;     // HOST/e2e/workload:v1
  std::string image_digest;  // its linux/amd64 manifest
};

// `source_dir` holds scripts/fetch-kernel; the workload image's entrypoint is
// /bin/vt-test-workload (the binary at `workload_bin`), its user "app". It
// also holds /bin/busybox (the host's busybox-static) and links to it for
// sh, cat, true, false, sleep, stty, sha256sum, head, dd, vi, kill, echo,
// env, id, pwd, ls, yes, wc and tail, for exec tests.
[[nodiscard]] Result<std::unique_ptr<AgentWorld>> makeAgentWorld(const std::string& source_dir,
                                                                 const std::string& vt_init_bin,
                                                                 const std::string& workload_bin);

// A WorkloadSpec (api/schemas/workload-spec.json) as the control plane would
// send it: the world's image run with `args`, at `address` on its own tap.
[[nodiscard]] nlohmann::json workloadSpec(const AgentWorld& world, const std::string& id,
                                          const std::string& org_id,
                                          const std::vector<std::string>& args,
                                          const std::string& address, int memory_mb = 128,
                                          nlohmann::json checks = nlohmann::json::array());

// Moves this process into a fresh network namespace with loopback up, so
// taps, routes and guest traffic stay private. Call before any thread starts.
[[nodiscard]] Result<void> enterPrivateNetns();

// The output of a shell command.
[[nodiscard]] std::string shellOutput(const std::string& cmd);

}  // namespace plfm::agent::testing
