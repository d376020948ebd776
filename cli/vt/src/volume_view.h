// Typed views of the API's volume, snapshot and volume op objects
// (docs/specs/api/v1.md "Volumes"), parsed once from their JSON for `vt
// volumes` (commands_volumes.cc). Lenient like exec_view.h: a missing or
// null field is empty (or 0, or nullopt).
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

namespace plfm::vt {

struct VolumeView {
  std::string id, env_id, process, name, full_name, state, reason, created_at, updated_at;
  std::optional<std::string> node_id;  // nullopt while pending
  int64_t slot = 0;
  std::optional<uint64_t> size_bytes, reported_size_bytes;
  // Snapshots, backups and restore drills; nullopt until there is one.
  std::optional<std::string> last_snapshot_at, last_backup_at, last_verified_at;
  std::optional<uint64_t> rpo_seconds, backup_every_seconds, backup_keep;
  std::optional<bool> last_verify_ok;
  std::string last_verify_reason;
};

[[nodiscard]] VolumeView parseVolume(const nlohmann::json& j);

struct SnapshotView {
  std::string id, volume_id, node_id, origin, state, reason, created_at;
  std::optional<std::string> method, sha256, taken_at, backup_id, backed_up_at;
  std::optional<uint64_t> size_bytes;
  std::optional<int64_t> freeze_ms;
  std::optional<bool> consistent;
  bool local = false, backup_expired = false;
};

[[nodiscard]] SnapshotView parseSnapshot(const nlohmann::json& j);

// A restore or verify op.
struct VolumeOpView {
  std::string id, kind, volume_id, source_volume_id, snapshot_id, node_id, source, origin, state,
      reason, created_at, updated_at;
  bool in_place = false;
};

[[nodiscard]] VolumeOpView parseVolumeOp(const nlohmann::json& j);

}  // namespace plfm::vt
