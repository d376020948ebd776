#include "plfm/manifest/volume_rules.h"

#include "rules.h"

namespace plfm::manifest {

static_assert(kMinVolumeBytes == rules::kMinVolumeBytes);
static_assert(kMaxVolumeBytes == rules::kMaxVolumeBytes);
static_assert(kDefaultBackupEverySeconds == rules::kDefaultBackupEverySeconds);
static_assert(kDefaultBackupKeep == rules::kDefaultBackupKeep);

std::string formatBackupEvery(std::int64_t seconds) {
  if (seconds <= 0) return "off";
  return rules::formatDuration(seconds * 1000);
}

std::optional<std::string> checkVolumeName(std::string_view s) {
  if (auto why = rules::checkName(s)) return why;
  if (s.size() > rules::kMaxVolumeNameLen) {
    return "a volume name of at most " + std::to_string(rules::kMaxVolumeNameLen) +
           " characters (each slot's volume is named <name>-<slot>, at most 63)";
  }
  return std::nullopt;
}

std::optional<std::uint64_t> parseVolumeSize(std::string_view s) { return rules::parseSize(s); }

std::string formatVolumeSize(std::uint64_t bytes) { return rules::formatSize(bytes); }

std::optional<std::string> checkVolumeSize(std::uint64_t bytes) {
  if (bytes >= kMinVolumeBytes && bytes <= kMaxVolumeBytes) return std::nullopt;
  return "a size from " + rules::formatSize(kMinVolumeBytes) + " to " +
         rules::formatSize(kMaxVolumeBytes) + " (got " + rules::formatSize(bytes) + ")";
}

}  // namespace plfm::manifest
