// Error codes of the node agent's runtime/: starting, configuring and stopping VMMs
// (docs/specs/runtime/microvm-runtime.md). Codes are contract (the agent reports them to the
// control plane, and tests match them): never change one's meaning. The generic codes (plfm::errc,
// plfm/core/error.h) read the same through this namespace.
#pragma once

#include <string_view>

#include "plfm/core/error.h"

namespace plfm::runtime::errc {

using namespace ::plfm::errc;  // so that errc::kIo reads the same in this component

inline constexpr std::string_view kBackupFailed = "runtime.backup_failed";
inline constexpr std::string_view kUnsupported = "runtime.unsupported";
inline constexpr std::string_view kVmmConfigFailed = "runtime.vmm_config_failed";
inline constexpr std::string_view kVmmExited = "runtime.vmm_exited";
inline constexpr std::string_view kVmmStartFailed = "runtime.vmm_start_failed";
inline constexpr std::string_view kVmmStopFailed = "runtime.vmm_stop_failed";

}  // namespace plfm::runtime::errc
