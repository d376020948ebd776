#include "volume_view.h"

#include <nlohmann/json.hpp>

namespace plfm::vt {
namespace {

using nlohmann::json;

std::optional<std::string> optText(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

std::optional<uint64_t> count(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_unsigned()) return std::nullopt;
  return it->get<uint64_t>();
}

std::optional<int64_t> integer(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<int64_t>();
}

std::optional<bool> boolean(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_boolean()) return std::nullopt;
  return it->get<bool>();
}

}  // namespace

VolumeView parseVolume(const json& j) {
  if (!j.is_object()) return {};
  auto str = [&](const char* key) { return optText(j, key).value_or(""); };
  return {.id = str("volume_id"),
          .env_id = str("env_id"),
          .process = str("process"),
          .name = str("name"),
          .full_name = str("full_name"),
          .state = str("state"),
          .reason = str("reason"),
          .created_at = str("created_at"),
          .updated_at = str("updated_at"),
          .node_id = optText(j, "node_id"),
          .slot = static_cast<int64_t>(count(j, "slot").value_or(0)),
          .size_bytes = count(j, "size_bytes"),
          .reported_size_bytes = count(j, "reported_size_bytes"),
          .last_snapshot_at = optText(j, "last_snapshot_at"),
          .last_backup_at = optText(j, "last_backup_at"),
          .last_verified_at = optText(j, "last_verified_at"),
          .rpo_seconds = count(j, "rpo_seconds"),
          .backup_every_seconds = count(j, "backup_every_seconds"),
          .backup_keep = count(j, "backup_keep"),
          .last_verify_ok = boolean(j, "last_verify_ok"),
          .last_verify_reason = str("last_verify_reason")};
}

SnapshotView parseSnapshot(const json& j) {
  if (!j.is_object()) return {};
  auto str = [&](const char* key) { return optText(j, key).value_or(""); };
  return {.id = str("snapshot_id"),
          .volume_id = str("volume_id"),
          .node_id = str("node_id"),
          .origin = str("origin"),
          .state = str("state"),
          .reason = str("reason"),
          .created_at = str("created_at"),
          .method = optText(j, "method"),
          .sha256 = optText(j, "sha256"),
          .taken_at = optText(j, "taken_at"),
          .backup_id = optText(j, "backup_id"),
          .backed_up_at = optText(j, "backed_up_at"),
          .size_bytes = count(j, "size_bytes"),
          .freeze_ms = integer(j, "freeze_ms"),
          .consistent = boolean(j, "consistent"),
          .local = boolean(j, "local").value_or(false),
          .backup_expired = boolean(j, "backup_expired").value_or(false)};
}

VolumeOpView parseVolumeOp(const json& j) {
  if (!j.is_object()) return {};
  auto str = [&](const char* key) { return optText(j, key).value_or(""); };
  return {.id = str("op_id"),
          .kind = str("kind"),
          .volume_id = str("volume_id"),
          .source_volume_id = str("source_volume_id"),
          .snapshot_id = str("snapshot_id"),
          .node_id = str("node_id"),
          .source = str("source"),
          .origin = str("origin"),
          .state = str("state"),
          .reason = str("reason"),
          .created_at = str("created_at"),
          .updated_at = str("updated_at"),
          .in_place = boolean(j, "in_place").value_or(false)};
}

}  // namespace plfm::vt
