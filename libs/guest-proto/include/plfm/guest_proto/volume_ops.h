// Volume operations on a running guest (docs/specs/runtime/host-channel.md
// §Volume operations): the host asks vt-init to grow a mounted volume's
// filesystem after the disk grew (RESIZE_VOLUME), or to hold it still for a
// snapshot (FREEZE, THAW). Every request carries an id the host picks; the
// answer carries the same id. A failed operation is VOLUME_FAILED, never
// fatal to the VM. The host sends these only to a guest whose HELLO has
// volume_revision.
//
//   auto frame = gp::encode(gp::ResizeVolume{7, 64 << 20, "vol-0"});
//   auto answer = gp::decodeVolumeResized(frame_from_decoder.payload);
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "plfm/guest_proto/constants.h"
#include "plfm/guest_proto/error.h"

namespace plfm::guest_proto {

// RESIZE_VOLUME: grow the filesystem of the volume on disk `serial` to the
// disk's size (EXT4_IOC_RESIZE_FS) once the disk shows `size_bytes` (the
// VMM's capacity change reaches the guest's driver asynchronously).
struct ResizeVolume {
  uint32_t id = 0;
  uint64_t size_bytes = 0;  // the disk's new size, > 0
  std::string serial;       // a CONFIG volume's serial (validVolumeSerial)

  bool operator==(const ResizeVolume&) const = default;
};

// VOLUME_RESIZED: the filesystem's size after the resize, in bytes (block
// count times block size).
struct VolumeResized {
  uint32_t id = 0;
  uint64_t size_bytes = 0;

  bool operator==(const VolumeResized&) const = default;
};

// VOLUME_FAILED: the operation `id` failed; UTF-8, 1..kMaxVolumeFailureBytes,
// no secrets. The VM and its workload go on.
struct VolumeFailed {
  uint32_t id = 0;
  std::string message;

  bool operator==(const VolumeFailed&) const = default;
};

// FREEZE: sync() and FIFREEZE the volume on disk `serial`; the guest
// answers FROZEN and thaws by itself after kFreezeLimitMs.
struct Freeze {
  uint32_t id = 0;
  std::string serial;

  bool operator==(const Freeze&) const = default;
};

// FROZEN and THAW: the id of the FREEZE.
struct VolumeOpId {
  uint32_t id = 0;

  bool operator==(const VolumeOpId&) const = default;
};

// THAWED: the id of the FREEZE, and whether the THAW did it or the guest's
// own limit had already.
struct Thawed {
  uint32_t id = 0;
  ThawKind kind = ThawKind::kOnThaw;

  bool operator==(const Thawed&) const = default;
};

// Whole frames on the control stream.
[[nodiscard]] Result<std::string> encode(const ResizeVolume& resize);
[[nodiscard]] std::string encode(const VolumeResized& resized);
[[nodiscard]] Result<std::string> encode(const VolumeFailed& failed);
[[nodiscard]] Result<std::string> encode(const Freeze& freeze);
[[nodiscard]] std::string encodeFrozen(const VolumeOpId& frozen);
[[nodiscard]] std::string encodeThaw(const VolumeOpId& thaw);
[[nodiscard]] std::string encode(const Thawed& thawed);

[[nodiscard]] Result<ResizeVolume> decodeResizeVolume(std::string_view payload);
[[nodiscard]] Result<VolumeResized> decodeVolumeResized(std::string_view payload);
[[nodiscard]] Result<VolumeFailed> decodeVolumeFailed(std::string_view payload);
[[nodiscard]] Result<Freeze> decodeFreeze(std::string_view payload);
[[nodiscard]] Result<VolumeOpId> decodeVolumeOpId(std::string_view payload);  // FROZEN, THAW
[[nodiscard]] Result<Thawed> decodeThawed(std::string_view payload);

}  // namespace plfm::guest_proto
