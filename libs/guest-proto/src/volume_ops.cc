// Volume operation payloads, host-channel.md §Volume operations.
#include "plfm/guest_proto/volume_ops.h"

#include <utility>

#include "plfm/guest_proto/frame.h"
#include "plfm/guest_proto/messages.h"
#include "wire.h"

namespace plfm::guest_proto {

using internal::exactSize;
using internal::getU32;
using internal::getU64;
using internal::getU8;
using internal::putU32;
using internal::putU64;
using internal::putU8;

namespace {

Error malformed(std::string_view what, std::string_view problem) {
  return makeError(ErrorCode::kMalformed, std::string(what) + ": " + std::string(problem));
}

std::string control(FrameType type, std::string_view payload) {
  auto frame = encodeFrame(type, kControlStream, payload);
  return frame ? std::move(*frame) : std::string();
}

Result<void> checkSerial(std::string_view what, std::string_view serial) {
  if (validVolumeSerial(serial)) return {};
  return makeError(ErrorCode::kInvalidValue,
                   std::string(what) + ": serial is not vol-0 .. vol-15 or 1 to 20 digits");
}

}  // namespace

Result<std::string> encode(const ResizeVolume& resize) {
  constexpr std::string_view kWhat = "RESIZE_VOLUME";
  if (auto ok = checkSerial(kWhat, resize.serial); !ok) {
    return tl::unexpected(std::move(ok).error());
  }
  if (resize.size_bytes == 0) {
    return makeError(ErrorCode::kInvalidValue, "RESIZE_VOLUME: size_bytes must be above 0");
  }
  std::string payload;
  putU32(payload, resize.id);
  putU32(payload, 0);
  putU64(payload, resize.size_bytes);
  payload.append(resize.serial);
  return control(FrameType::kResizeVolume, payload);
}

Result<ResizeVolume> decodeResizeVolume(std::string_view payload) {
  constexpr std::string_view kWhat = "RESIZE_VOLUME";
  if (payload.size() < kResizeVolumeHeaderBytes) return malformed(kWhat, "shorter than 16 bytes");
  ResizeVolume r{getU32(payload, 0), getU64(payload, 8),
                 std::string(payload.substr(kResizeVolumeHeaderBytes))};
  if (getU32(payload, 4) != 0) {
    return makeError(ErrorCode::kInvalidValue, "RESIZE_VOLUME: reserved bytes must be 0");
  }
  if (r.size_bytes == 0) {
    return makeError(ErrorCode::kInvalidValue, "RESIZE_VOLUME: size_bytes must be above 0");
  }
  if (auto ok = checkSerial(kWhat, r.serial); !ok) return tl::unexpected(std::move(ok).error());
  return r;
}

Result<std::string> encode(const Freeze& freeze) {
  if (auto ok = checkSerial("FREEZE", freeze.serial); !ok) {
    return tl::unexpected(std::move(ok).error());
  }
  std::string payload;
  putU32(payload, freeze.id);
  payload.append(freeze.serial);
  return control(FrameType::kFreeze, payload);
}

Result<Freeze> decodeFreeze(std::string_view payload) {
  constexpr std::string_view kWhat = "FREEZE";
  if (payload.size() < kVolumeOpHeaderBytes) return malformed(kWhat, "shorter than its id");
  Freeze f{getU32(payload, 0), std::string(payload.substr(kVolumeOpHeaderBytes))};
  if (auto ok = checkSerial(kWhat, f.serial); !ok) return tl::unexpected(std::move(ok).error());
  return f;
}

std::string encode(const VolumeResized& resized) {
  std::string payload;
  putU32(payload, resized.id);
  putU32(payload, 0);
  putU64(payload, resized.size_bytes);
  return control(FrameType::kVolumeResized, payload);
}

Result<VolumeResized> decodeVolumeResized(std::string_view payload) {
  if (auto ok = exactSize("VOLUME_RESIZED", payload, kVolumeResizedBytes); !ok) {
    return tl::unexpected(std::move(ok).error());
  }
  if (getU32(payload, 4) != 0) {
    return makeError(ErrorCode::kInvalidValue, "VOLUME_RESIZED: reserved bytes must be 0");
  }
  return VolumeResized{getU32(payload, 0), getU64(payload, 8)};
}

Result<std::string> encode(const VolumeFailed& failed) {
  if (failed.message.empty() || failed.message.size() > kMaxVolumeFailureBytes) {
    return makeError(ErrorCode::kInvalidValue, "VOLUME_FAILED: the message must be 1 to " +
                                                   std::to_string(kMaxVolumeFailureBytes) +
                                                   " bytes");
  }
  std::string payload;
  putU32(payload, failed.id);
  payload.append(failed.message);
  return control(FrameType::kVolumeFailed, payload);
}

Result<VolumeFailed> decodeVolumeFailed(std::string_view payload) {
  if (payload.size() <= kVolumeOpHeaderBytes ||
      payload.size() > kVolumeOpHeaderBytes + kMaxVolumeFailureBytes) {
    return malformed("VOLUME_FAILED", "needs an id and a message of 1 to " +
                                          std::to_string(kMaxVolumeFailureBytes) + " bytes");
  }
  return VolumeFailed{getU32(payload, 0), std::string(payload.substr(kVolumeOpHeaderBytes))};
}

std::string encodeFrozen(const VolumeOpId& frozen) {
  std::string payload;
  putU32(payload, frozen.id);
  return control(FrameType::kFrozen, payload);
}

std::string encodeThaw(const VolumeOpId& thaw) {
  std::string payload;
  putU32(payload, thaw.id);
  return control(FrameType::kThaw, payload);
}

Result<VolumeOpId> decodeVolumeOpId(std::string_view payload) {
  if (auto ok = exactSize("FROZEN/THAW", payload, kVolumeOpHeaderBytes); !ok) {
    return tl::unexpected(std::move(ok).error());
  }
  return VolumeOpId{getU32(payload, 0)};
}

std::string encode(const Thawed& thawed) {
  std::string payload;
  putU32(payload, thawed.id);
  putU8(payload, static_cast<uint8_t>(thawed.kind));
  payload.append(3, '\0');
  return control(FrameType::kThawed, payload);
}

Result<Thawed> decodeThawed(std::string_view payload) {
  if (auto ok = exactSize("THAWED", payload, kThawedBytes); !ok) {
    return tl::unexpected(std::move(ok).error());
  }
  const uint8_t kind = getU8(payload, 4);
  if (kind != static_cast<uint8_t>(ThawKind::kOnThaw) &&
      kind != static_cast<uint8_t>(ThawKind::kTimeout)) {
    return makeError(ErrorCode::kInvalidValue, "THAWED: kind must be 1 or 2");
  }
  if (getU8(payload, 5) != 0 || getU8(payload, 6) != 0 || getU8(payload, 7) != 0) {
    return makeError(ErrorCode::kInvalidValue, "THAWED: reserved bytes must be 0");
  }
  return Thawed{getU32(payload, 0), static_cast<ThawKind>(kind)};
}

}  // namespace plfm::guest_proto
