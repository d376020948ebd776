#include "agent/restic_output.h"

#include <nlohmann/json.hpp>

namespace plfm::agent {
namespace {

using nlohmann::json;

std::string stringField(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

const json* arrayField(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_array() ? &*it : nullptr;
}

}  // namespace

std::optional<ResticBackupSummary> parseBackupSummary(std::string_view out) {
  std::optional<ResticBackupSummary> summary;
  size_t start = 0;
  while (start < out.size()) {
    size_t end = out.find('\n', start);
    if (end == std::string_view::npos) end = out.size();
    const json line = json::parse(out.substr(start, end - start), nullptr, false);
    start = end + 1;
    if (!line.is_object() || stringField(line, "message_type") != "summary") continue;
    ResticBackupSummary s;
    s.short_id = stringField(line, "snapshot_id");
    if (const auto it = line.find("data_added"); it != line.end() && it->is_number_unsigned()) {
      s.data_added = it->get<uint64_t>();
    }
    summary = s;
  }
  return summary;
}

std::string fullSnapshotId(std::string_view out, std::string_view short_id) {
  const json snaps = json::parse(out, nullptr, false);
  if (!snaps.is_array()) return "";
  for (const auto& s : snaps) {
    if (s.is_object() && !short_id.empty() && stringField(s, "short_id") == short_id) {
      return stringField(s, "id");
    }
  }
  return "";
}

Result<std::vector<std::vector<std::string>>> removedSnapshotTags(std::string_view out) {
  std::vector<std::vector<std::string>> removed;
  const json groups = json::parse(out.empty() ? std::string_view("[]") : out, nullptr, false);
  if (!groups.is_array()) return Error(errc::kIo, "restic forget printed no JSON");
  for (const auto& g : groups) {
    const json* remove = g.is_object() ? arrayField(g, "remove") : nullptr;
    if (remove == nullptr) continue;
    for (const auto& s : *remove) {
      if (!s.is_object()) continue;
      const json* tags = arrayField(s, "tags");
      std::vector<std::string>& out_tags = removed.emplace_back();
      if (tags == nullptr) continue;
      for (const auto& t : *tags) {
        if (t.is_string()) out_tags.push_back(t.get<std::string>());
      }
    }
  }
  return removed;
}

}  // namespace plfm::agent
