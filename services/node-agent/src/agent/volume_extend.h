// Online extend of a running instance's volumes (docs/specs/runtime/
// volume-mounts.md §Node side "Extend"): when the plan gives a volume of a
// running VM a larger size_bytes, the worker grows the file, tells the VMM
// (MicroVmRuntime::resizeDrive) and sends RESIZE_VOLUME; the volume is
// reported at its new size only once the guest answers VOLUME_RESIZED. A
// guest without HELLO volume_revision gets nothing: its extend takes effect
// at its next start (vt-init grows the filesystem at mount time).
//
// VolumeExtender holds the decisions (what to grow, what an answer means),
// with no I/O, so unit tests cover them; InstanceWorker acts on them.
//
//   extender.started(workload.volumes, sizes_the_vm_booted_with);
//   for (auto& r : extender.due(workload.volumes, now)) { grow, resizeDrive, send }
//   if (auto done = extender.answered(id, size, error)) report done->volume_id
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/instance_record.h"

namespace plfm::agent {

class VolumeExtender {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;
  // An unanswered RESIZE_VOLUME is given up after this long (the guest waits
  // up to 5 s for the disk; the rest is slack for a TCG guest).
  static constexpr std::chrono::seconds kAnswerTimeout{30};

  struct Request {
    uint32_t id = 0;
    size_t index = 0;  // in WorkloadSpec.volumes: drive vol-<index>
    std::string volume_id;
    uint64_t size_bytes = 0;
  };
  struct Outcome {
    std::string volume_id;
    std::string name;
    uint64_t size_bytes = 0;  // the disk's size when grown
    std::string error;        // empty: grown
  };

  // The sizes each volume's disk had when the VM booted. A volume never
  // started (an adopted VM) counts as 0, so it is resized once to its file's
  // size, which the guest answers without growing anything when it is
  // already there.
  void started(const std::vector<WorkloadVolume>& volumes, const std::vector<uint64_t>& sizes);

  // The resizes to start now: a volume whose plan size is above what its
  // guest has, with none in flight, and not already refused at that size.
  [[nodiscard]] std::vector<Request> due(const std::vector<WorkloadVolume>& volumes,
                                         SteadyTime now);
  // VOLUME_RESIZED (`error` empty), VOLUME_FAILED, or the host side of the
  // request failed (growing the file, the VMM) for `id`; a failed size is
  // not asked again. nullopt for an id not in flight (a stale or forged
  // answer).
  [[nodiscard]] std::optional<Outcome> answered(uint32_t id, const std::string& error);
  // Requests unanswered for kAnswerTimeout, given up.
  [[nodiscard]] std::vector<Outcome> expire(SteadyTime now);

 private:
  struct State {
    std::string name;
    uint64_t guest_bytes = 0;    // the disk size the guest has (grown to)
    uint64_t refused_bytes = 0;  // a size that failed: not asked again
    std::optional<uint32_t> in_flight;
    uint64_t in_flight_bytes = 0;
    SteadyTime sent;
  };
  std::map<std::string, State> volumes_;  // by volume id
  uint32_t next_id_ = 1;
};

}  // namespace plfm::agent
