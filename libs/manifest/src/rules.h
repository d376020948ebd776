// The manifest's limits and value grammars, shared by the TOML reader, the
// JSON reader and validate(), so each rule and its wording live in one place.
// docs/specs/manifest/manifest-schema.md and api/schemas/manifest.json repeat
// these numbers for users; change them together.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace plfm::manifest::rules {

// Whole file. Bounds on dotted keys and bracket nesting keep toml++ (whose
// tables free themselves recursively) far from the stack limit.
inline constexpr std::size_t kMaxFileBytes = 1 << 20;
inline constexpr int kMaxDotsPerLine = 32;
inline constexpr int kMaxBracketDepth = 32;

// An inclusive integer range and how to say it.
struct IntRange {
  std::int64_t lo = 0;
  std::int64_t hi = 0;
  [[nodiscard]] bool contains(std::int64_t v) const { return v >= lo && v <= hi; }
  // "an integer from 64 to 65536"
  [[nodiscard]] std::string expected() const;
};

inline constexpr IntRange kVcpus{1, 64};
inline constexpr IntRange kMemoryMb{64, 65536};
inline constexpr IntRange kPort{1, 65535};
inline constexpr IntRange kMaxSurge{0, 100};
inline constexpr IntRange kFailureThreshold{1, 100};
inline constexpr IntRange kMaxUnavailable{0, 100};
// A volume's backup_keep: backups the repository keeps.
inline constexpr IntRange kBackupKeep{1, 1000};

inline constexpr std::size_t kMaxProcesses = 32;
inline constexpr std::size_t kMaxServices = 64;
inline constexpr std::size_t kMaxRoutesPerService = 64;
inline constexpr std::size_t kMaxVolumes = 16;
// Nodes attach volumes (docs/specs/runtime/volume-mounts.md). Off, a
// manifest that declares one is refused rather than deployed without its
// data.
inline constexpr bool kVolumesSupported = true;
inline constexpr std::size_t kMaxEnv = 256;
inline constexpr std::size_t kMaxSecrets = 128;
inline constexpr std::size_t kMaxArgv = 256;  // elements of command, args

inline constexpr std::size_t kMaxNameLen = 63;
// A volume's full name is <name>-<slot> (slots 0..999: a process has at most
// 1000 instances), and must itself be a name of at most 63 characters.
inline constexpr std::size_t kMaxVolumeNameLen = kMaxNameLen - 4;
inline constexpr std::size_t kMaxImageLen = 512;
inline constexpr std::size_t kMaxArgLen = 4096;
inline constexpr std::size_t kMaxEnvKeyLen = 256;
inline constexpr std::size_t kMaxEnvValueLen = 32768;
inline constexpr std::size_t kMaxSecretNameLen = 256;
inline constexpr std::size_t kMaxHostnameLen = 253;
inline constexpr std::size_t kMaxMountLen = 1024;
inline constexpr std::size_t kMaxHttpPathLen = 1024;

inline constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
inline constexpr std::uint64_t kMinVolumeBytes = 16 * kMiB;
inline constexpr std::uint64_t kMaxVolumeBytes = std::uint64_t{16} << 40;  // 16 TiB

// Durations, in milliseconds.
inline constexpr std::int64_t kMinInterval = 1000;
inline constexpr std::int64_t kMaxInterval = 3'600'000;
inline constexpr std::int64_t kMinProgressDeadline = 10'000;      // 10s
inline constexpr std::int64_t kMaxProgressDeadline = 86'400'000;  // 24h
inline constexpr std::int64_t kMinDrainTimeout = 0;
inline constexpr std::int64_t kMaxDrainTimeout = 3'600'000;  // 1h
inline constexpr std::int64_t kMinTimeout = 100;
inline constexpr std::int64_t kMaxTimeout = 300'000;
inline constexpr std::int64_t kMaxGrace = 3'600'000;
// A volume's backup_every, in seconds ("off" is 0).
inline constexpr std::int64_t kMinBackupEverySeconds = 60;       // 1m
inline constexpr std::int64_t kMaxBackupEverySeconds = 86'400;   // 24h
inline constexpr std::int64_t kDefaultBackupEverySeconds = 900;  // 15m
inline constexpr int kDefaultBackupKeep = 96;

inline constexpr std::string_view kReservedEnvPrefix = "PLFM_";

// Every rule below returns nullopt when `s` is valid, else what was expected
// ("a name of 1 to 63 characters ..."), ready for "expected <...>, got ...".

// App, process and volume names: [a-z][a-z0-9-]*, at most 63, no trailing '-'.
[[nodiscard]] std::optional<std::string> checkName(std::string_view s);
// An OCI image reference: [registry[:port]/]path[:tag][@sha256:<64 hex>].
[[nodiscard]] std::optional<std::string> checkImage(std::string_view s);
// Env var keys: [A-Za-z_][A-Za-z0-9_]*, not starting with PLFM_.
[[nodiscard]] std::optional<std::string> checkEnvKey(std::string_view s);
// Env values, and elements of command/args: UTF-8, no NUL, bounded.
[[nodiscard]] std::optional<std::string> checkEnvValue(std::string_view s);
// Secret names: [A-Z_][A-Z0-9_]*.
[[nodiscard]] std::optional<std::string> checkSecretName(std::string_view s);
[[nodiscard]] std::optional<std::string> checkArg(std::string_view s);
// A lower-case DNS name of at least two labels, optionally "*." + such a name.
[[nodiscard]] std::optional<std::string> checkHostname(std::string_view s);
// An absolute, normalized guest path outside the directories the platform owns.
[[nodiscard]] std::optional<std::string> checkMount(std::string_view s);
// An HTTP request path: starts with '/', printable ASCII without spaces.
[[nodiscard]] std::optional<std::string> checkHttpPath(std::string_view s);

// ASCII lower case (hostnames are case-insensitive; we store them lower).
[[nodiscard]] std::string toLowerAscii(std::string_view s);

// "10s", "500ms", "1m30s", "2h" -> milliseconds. Units ms, s, m, h; integer
// amounts only; nullopt on anything else or on overflow past a day.
[[nodiscard]] std::optional<std::int64_t> parseDuration(std::string_view s);
// Milliseconds -> the shortest duration text parseDuration reads back.
[[nodiscard]] std::string formatDuration(std::int64_t ms);
// A volume's backup_every: "off" -> 0, else a duration in s, m and h units
// ("15m", "1h30m") -> whole seconds; nullopt when malformed (the range is
// checked apart).
[[nodiscard]] std::optional<std::int64_t> parseBackupEvery(std::string_view s);

// "512MiB", "1GiB", "1TiB", "4096KiB" -> bytes. Binary units only, so "1GB"
// can never mean two different sizes; nullopt on anything else.
[[nodiscard]] std::optional<std::uint64_t> parseSize(std::string_view s);
// Bytes -> "1GiB" in the largest unit that divides it exactly.
[[nodiscard]] std::string formatSize(std::uint64_t bytes);

// Renders a user string for a message: JSON-quoted, cut at 40 characters.
[[nodiscard]] std::string quote(std::string_view s);

}  // namespace plfm::manifest::rules
