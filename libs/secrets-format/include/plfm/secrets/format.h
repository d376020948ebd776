// The platform secrets file: a fixed, versioned, line-oriented format that the
// node agent hands to vt-init and vt-init writes for the workload (ADR 0008,
// docs/specs/secrets/secrets-file-format.md).
//
//   # plfm-secrets v1
//   API_TOKEN="s3cr\$t"
//   DATABASE_URL="postgres://u:p@db/app"
//   PEM="-----BEGIN KEY-----\nMIIB...\n-----END KEY-----\n"
//
// encode() writes the one canonical form of a key/value map; decode() is a
// strict parser that accepts exactly that form and nothing else, so
// encode(decode(x)) == x whenever decode succeeds, and decode(encode(m)) == m
// for every map within the limits. Values are byte strings: any byte,
// including NUL and invalid UTF-8, round-trips (it is written as \xNN).
// The escaping is chosen so that a POSIX shell sourcing the file reads the
// same value whenever it contains no control bytes.
//
// Secret hygiene: both functions size their buffers up front so no partial
// copy of a value is left behind by a reallocation, and they wipe their
// temporaries. Wipe what you get back with wipe() when done.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

#include "plfm/secrets/error.h"

namespace plfm::secrets {

using SecretMap = std::map<std::string, std::string>;

// The first line of a v1 file (followed by '\n').
inline constexpr std::string_view kHeaderPrefix = "# plfm-secrets v";
inline constexpr std::string_view kHeader = "# plfm-secrets v1";
inline constexpr int kVersion = 1;

// Where vt-init writes the file in the guest: tmpfs, mode 0400, owned by the
// workload user.
inline constexpr std::string_view kGuestPath = "/run/secrets/platform.env";
inline constexpr unsigned kGuestFileMode = 0400;

// Limits, enforced by encode(), decode() and parseDotenv() alike.
inline constexpr size_t kMaxKeys = 256;
inline constexpr size_t kMaxKeyBytes = 128;
inline constexpr size_t kMaxValueBytes = size_t{64} * 1024;   // decoded bytes
inline constexpr size_t kMaxFileBytes = size_t{1024} * 1024;  // encoded bytes

// True when `key` matches [A-Z_][A-Z0-9_]* and is at most kMaxKeyBytes long.
[[nodiscard]] bool validKey(std::string_view key);

// The canonical file for `secrets`: the header, then one KEY="value" line per
// entry in ascending byte order of the keys. Fails (without a position) on an
// invalid key or when a limit is exceeded.
[[nodiscard]] Result<std::string> encode(const SecretMap& secrets);

// Parses a file written by encode(). Rejects everything else with the line
// and column of the first offending byte: a missing or unknown header,
// invalid, unsorted or duplicate keys, bad or unnecessary escapes, raw control
// bytes, invalid UTF-8, CRLF line endings, a missing final newline, trailing
// bytes, and inputs over the limits.
[[nodiscard]] Result<SecretMap> decode(std::string_view file);

// Overwrites the bytes of `s` (its whole capacity, with explicit_bzero so the
// compiler cannot drop the stores) and empties it. The heap block itself is
// not freed or shrunk, so nothing is left in freed memory.
void wipe(std::string& s) noexcept;
// Wipes every value (keys are not secret) and clears the map.
void wipe(SecretMap& secrets) noexcept;

}  // namespace plfm::secrets
