#include "volume_view.h"

#include <nlohmann/json.hpp>

namespace plfm::vt {
namespace {

using nlohmann::json;

std::optional<std::string> text(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

std::optional<uint64_t> count(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_unsigned()) return std::nullopt;
  return it->get<uint64_t>();
}

}  // namespace

VolumeView parseVolume(const json& j) {
  if (!j.is_object()) return {};
  auto str = [&](const char* key) { return text(j, key).value_or(""); };
  return {.id = str("volume_id"),
          .env_id = str("env_id"),
          .process = str("process"),
          .name = str("name"),
          .full_name = str("full_name"),
          .state = str("state"),
          .reason = str("reason"),
          .created_at = str("created_at"),
          .updated_at = str("updated_at"),
          .node_id = text(j, "node_id"),
          .slot = static_cast<int64_t>(count(j, "slot").value_or(0)),
          .size_bytes = count(j, "size_bytes"),
          .reported_size_bytes = count(j, "reported_size_bytes")};
}

}  // namespace plfm::vt
