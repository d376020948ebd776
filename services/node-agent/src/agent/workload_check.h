// The agent's edge check of a WorkloadSpec (api/schemas/workload-spec.json).
// Plan fields end up in host paths (STATE/instances/<id>.json, vms/<id>/,
// logs/<id>.log, the cgroup), in QEMU option strings that split on ',', in
// netlink calls and in the guest's CONFIG; a control plane bug or a forged
// plan must not be able to steer any of them. So every field is held to its
// grammar here, before anything acts on it: ids are TypedIds, names and
// digests match the schema's patterns, addresses parse, numbers are in range,
// and no string that reaches a C API or a line-based protocol carries a NUL
// or a control character.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::agent {

struct Workload;
struct WorkloadVolume;

// Volume sizes both plans may carry (volume-mounts.md §Model).
inline constexpr uint64_t kMinVolumeBytes = uint64_t{16} << 20;
inline constexpr uint64_t kMaxVolumeBytes = uint64_t{16} << 40;
inline constexpr size_t kMaxWorkloadVolumes = 16;

// WorkloadSpec.volumes, typed and held to its grammar: at most 16; each a
// volume_id (vol_ and 26 Crockford characters), a name of [a-z0-9-]{1,63},
// a mount path (guest_proto::volumeMountProblem) and a size_bytes of 16 MiB
// to 16 TiB; ids and mounts distinct. Errors name the field.
[[nodiscard]] Result<std::vector<WorkloadVolume>> parseWorkloadVolumes(const nlohmann::json& list);

// One entry of NodePlan.volumes: a volume placed on this node.
struct NodeVolume {
  std::string volume_id;
  uint64_t size_bytes = 0;
  bool deleting = false;   // state "deleting"
  bool restoring = false;  // state "restoring": a restore op writes the file
  // The backup schedule (volume-mounts.md "NodePlan"): 0 (or absent) is
  // none, else 60 .. 86400; backup_keep 1 .. 1000 (absent: 96).
  int64_t backup_every_seconds = 0;
  int backup_keep = 96;

  bool operator==(const NodeVolume&) const = default;
};
// One NodePlan.volumes entry, typed; errors name the field.
[[nodiscard]] Result<NodeVolume> parseNodeVolume(const nlohmann::json& entry);

// One entry of NodePlan.volume_ops (volume-mounts.md "NodePlan"), typed:
// the agent acts on this, never on the JSON. Ids are TypedIds (snap_ for a
// snapshot's op id and every snapshot_id, vop_ for restore and verify, vol_
// for volumes), sha256 and backup_id 64 lowercase hex, size_bytes 16 MiB ..
// 16 TiB. Errors name the field.
struct VolumeOp {
  enum class Kind { kSnapshot, kRestore, kVerify };
  Kind kind = Kind::kSnapshot;
  std::string op_id;             // snapshot: the snapshot id
  std::string volume_id;         // restore: the target
  bool freeze = true;            // snapshot
  std::string snapshot_id;       // restore, verify (a snapshot: = op_id)
  std::string source_volume_id;  // restore (verify: = volume_id)
  bool from_backup = false;      // restore: source "backup" (verify: always)
  std::string backup_id;         // restore from a backup, verify
  std::string sha256;            // restore, verify: of the snapshot file
  uint64_t size_bytes = 0;       // restore: the target's size
  bool in_place = false;         // restore
  // Set only by refusedVolumeOp: why the entry was refused; the op is
  // reported failed with it and nothing else is done.
  std::string refusal;

  bool operator==(const VolumeOp&) const = default;
};
[[nodiscard]] Result<VolumeOp> parseVolumeOp(const nlohmann::json& entry);
// An entry parseVolumeOp refused whose op_id, kind, volume_id and
// snapshot_id are themselves valid, as an op carrying only those and the
// reason: the agent reports it failed, so it does not stay requested.
[[nodiscard]] std::optional<VolumeOp> refusedVolumeOp(const nlohmann::json& entry,
                                                      const std::string& reason);
[[nodiscard]] std::string_view volumeOpKindName(VolumeOp::Kind kind);

// Ok when every field of `w` is within its grammar; otherwise the first
// field that is not, named, with its value shown escaped and truncated.
[[nodiscard]] Result<void> checkWorkload(const Workload& w);

// The instance a refused spec names, when its instance_id and generation are
// themselves valid: the agent reports that instance failed (and only it).
struct RefusedInstance {
  std::string instance_id;
  int generation = 1;
};
[[nodiscard]] std::optional<RefusedInstance> refusedInstance(const nlohmann::json& spec);

// The first health check of a WorkloadSpec's `checks` (checked by
// checkWorkload), typed, with the schema's defaults; nullopt when there is
// none. The worker acts on this, never on the JSON.
struct CheckSpec {
  std::string type;                  // "tcp", "http" or "exec"
  int port = 0;                      // tcp and http
  std::string path = "/";            // http
  std::vector<std::string> command;  // exec
  std::chrono::milliseconds interval{10'000};
  std::chrono::milliseconds timeout{2'000};
  std::chrono::milliseconds grace{0};
  int failure_threshold = 3;  // consecutive failures that make it unhealthy
};
[[nodiscard]] std::optional<CheckSpec> firstCheck(const nlohmann::json& checks);

// `value` with bytes outside printable ASCII as \xNN, cut to `max` bytes: safe
// to put in an error, a log line or a report.
[[nodiscard]] std::string shownValue(std::string_view value, size_t max = 64);

}  // namespace plfm::agent
