// The manifest's volume rules, for the other places that take a volume's
// name or size from a user: the control plane's volume API (POST
// /v1/envs/{env_id}/volumes, extend) and `vt volumes`. They apply exactly
// what a [[volumes]] table in vt.toml is checked against
// (docs/specs/manifest/manifest-schema.md, docs/specs/runtime/volume-mounts.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace plfm::manifest {

// A volume's size: 16 MiB .. 16 TiB.
inline constexpr std::uint64_t kMinVolumeBytes = std::uint64_t{16} << 20;
inline constexpr std::uint64_t kMaxVolumeBytes = std::uint64_t{16} << 40;

// nullopt when `s` is a valid volume name (the manifest's names, at most 59
// characters so that `<name>-<slot>` is a name), else what was expected
// ("a name of 1 to 63 lower-case letters, ...").
[[nodiscard]] std::optional<std::string> checkVolumeName(std::string_view s);

// "10GiB", "512MiB", "1TiB" -> bytes (binary units only); nullopt otherwise.
[[nodiscard]] std::optional<std::uint64_t> parseVolumeSize(std::string_view s);

// A volume's snapshot-and-backup policy when the manifest gives none (or
// declares no such volume: one made by the API, a restore or a fork).
inline constexpr std::int64_t kDefaultBackupEverySeconds = 900;  // "15m"
inline constexpr int kDefaultBackupKeep = 96;

// backup_every seconds -> "15m", "1h30m"-style text ("90m"), or "off" for 0.
[[nodiscard]] std::string formatBackupEvery(std::int64_t seconds);

// Bytes -> "10GiB" in the largest unit that divides it exactly.
[[nodiscard]] std::string formatVolumeSize(std::uint64_t bytes);

// nullopt when `bytes` is within kMinVolumeBytes..kMaxVolumeBytes, else
// what was expected: "a size from 16MiB to 16TiB (got 1MiB)".
[[nodiscard]] std::optional<std::string> checkVolumeSize(std::uint64_t bytes);

}  // namespace plfm::manifest
