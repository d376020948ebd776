// Error codes of the node agent's agent/: instances, the host channel, checks and volumes
// (docs/specs/runtime/node-agent.md). Codes are contract (the agent reports them to the control
// plane, and tests match them): never change one's meaning. The generic codes (plfm::errc,
// plfm/core/error.h) read the same through this namespace.
#pragma once

#include <string_view>

#include "plfm/core/error.h"

namespace plfm::agent::errc {

using namespace ::plfm::errc;  // so that errc::kIo reads the same in this component

inline constexpr std::string_view kBadSecrets = "agent.bad_secrets";
inline constexpr std::string_view kBadTransition = "agent.bad_transition";
inline constexpr std::string_view kBootTimeout = "agent.boot_timeout";
inline constexpr std::string_view kChannelClosed = "agent.channel_closed";
inline constexpr std::string_view kChannelProtocol = "agent.channel_protocol";
inline constexpr std::string_view kChannelRefused = "agent.channel_refused";
// A send that missed its deadline: the owner kills the VM.
inline constexpr std::string_view kChannelStalled = "agent.channel_stalled";
inline constexpr std::string_view kCheckFailed = "agent.check_failed";
inline constexpr std::string_view kImageFailed = "agent.image_failed";
inline constexpr std::string_view kNoKernel = "agent.no_kernel";
inline constexpr std::string_view kSnapshotUnsupported = "agent.snapshot_unsupported";
inline constexpr std::string_view kVolumeInUse = "agent.volume_in_use";
inline constexpr std::string_view kVolumeOpFailed = "agent.volume_op_failed";
inline constexpr std::string_view kVolumeOpTimeout = "agent.volume_op_timeout";

}  // namespace plfm::agent::errc
