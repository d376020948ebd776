// A typed view of the API's volume object (docs/specs/api/v1.md "Volumes"),
// parsed once from its JSON for `vt volumes` (commands_volumes.cc). Lenient
// like exec_view.h: a missing or null field is empty (or 0, or nullopt).
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
};

[[nodiscard]] VolumeView parseVolume(const nlohmann::json& j);

}  // namespace plfm::vt
