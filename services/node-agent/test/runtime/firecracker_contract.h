// Firecracker's published API as the contract of the agent's Firecracker
// driver (docs/ADRs/0014-qemu-microvm-fallback.md). Firecracker cannot run on
// the machines that test this project (no Debian package, no usable KVM), so
// every request the driver sends in a test is checked against the swagger
// Firecracker publishes: method, path template and body schema, with objects
// closed as Firecracker's serde types are.
//
// The document is third-party reference data, read where it is kept
// (../shared/reference/firecracker/firecracker.yaml beside the checkout, or
// $PLFM_REFERENCE_DIR/firecracker/firecracker.yaml) and never copied into
// the tree. Test code only.
#pragma once

#include <optional>
#include <string>

namespace plfm::runtime::testing {

// The path the contract is read from.
[[nodiscard]] std::string firecrackerContractPath();

// nullopt when Firecracker's API accepts `method` `path` with `body` (JSON,
// or empty), else why not. A missing contract file is a failure, never a
// pass: the message names the path and PLFM_REFERENCE_DIR.
[[nodiscard]] std::optional<std::string> checkFirecrackerRequest(const std::string& method,
                                                                 const std::string& path,
                                                                 const std::string& body);

}  // namespace plfm::runtime::testing
