#include "rules.h"

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "plfm/core/strings.h"

namespace plfm::manifest::rules {
namespace {

bool isLower(char c) { return c >= 'a' && c <= 'z'; }
bool isUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isAlnum(char c) { return isLower(c) || isUpper(c) || isDigit(c); }

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t end = s.find(sep, start);
    if (end == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, end - start));
    start = end + 1;
  }
}

// A registry host: DNS-ish labels of letters, digits and '-', plus an
// optional numeric port.
bool isRegistry(std::string_view s) {
  const size_t colon = s.find(':');
  if (colon != std::string_view::npos) {
    const std::string_view port = s.substr(colon + 1);
    if (port.empty() || port.size() > 5) return false;
    for (char c : port) {
      if (!isDigit(c)) return false;
    }
    s = s.substr(0, colon);
  }
  if (s.empty()) return false;
  for (std::string_view label : split(s, '.')) {
    if (label.empty() || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!isAlnum(c) && c != '-') return false;
    }
  }
  return true;
}

// One path component of a repository name: [a-z0-9]+ joined by '.', '_',
// '__' or runs of '-' (the OCI distribution grammar).
bool isPathComponent(std::string_view s) {
  if (s.empty() || !(isLower(s.front()) || isDigit(s.front()))) return false;
  if (!(isLower(s.back()) || isDigit(s.back()))) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (isLower(c) || isDigit(c)) continue;
    if (c == '.' || c == '_' || c == '-') {
      const char next = s[i + 1];  // in range: the last char is alphanumeric
      if (c == '.' && (next == '.' || next == '_' || next == '-')) return false;
      if (c == '_' && next == '_' && i + 2 < s.size() && s[i + 2] == '_') return false;
      if (c == '_' && (next == '-' || next == '.')) return false;
      if (c == '-' && (next == '.' || next == '_')) return false;
      continue;
    }
    return false;
  }
  return true;
}

bool isTag(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  if (!(isAlnum(s.front()) || s.front() == '_')) return false;
  for (char c : s) {
    if (!isAlnum(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

bool isSha256Digest(std::string_view s) {
  constexpr std::string_view kPrefix = "sha256:";
  if (!startsWith(s, kPrefix) || s.size() != kPrefix.size() + 64) return false;
  for (char c : s.substr(kPrefix.size())) {
    if (!isDigit(c) && !(c >= 'a' && c <= 'f')) return false;
  }
  return true;
}

bool hasNul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

// TOML text is always UTF-8, but a Manifest built in code or read from JSON
// need not be, and nlohmann::json::dump() throws on invalid UTF-8.
bool isUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr std::array<std::uint32_t, 5> kMin = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

// Parses a run of decimal digits at the front of `s` (at most 12 so that
// every later multiplication fits in 64 bits) and advances past it.
std::optional<std::uint64_t> takeNumber(std::string_view& s) {
  size_t n = 0;
  std::uint64_t value = 0;
  while (n < s.size() && isDigit(s[n])) {
    if (n == 12) return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(s[n] - '0');
    ++n;
  }
  if (n == 0) return std::nullopt;
  s.remove_prefix(n);
  return value;
}

}  // namespace

std::string IntRange::expected() const {
  return "an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
}

std::optional<std::string> checkName(std::string_view s) {
  static const std::string kExpected =
      "a name of 1 to 63 lower-case letters, digits and '-', starting with a letter and not "
      "ending with '-'";
  if (s.empty() || s.size() > kMaxNameLen || !isLower(s.front()) || s.back() == '-') {
    return kExpected;
  }
  for (char c : s) {
    if (!isLower(c) && !isDigit(c) && c != '-') return kExpected;
  }
  return std::nullopt;
}

std::optional<std::string> checkImage(std::string_view s) {
  static const std::string kExpected =
      "an image reference like \"registry.example.com/team/app:1.2\" or "
      "\"team/app@sha256:<64 hex digits>\"";
  if (s.empty() || s.size() > kMaxImageLen) return kExpected;
  std::string_view name = s;
  const size_t at = name.find('@');
  if (at != std::string_view::npos) {
    if (!isSha256Digest(name.substr(at + 1))) return kExpected;
    name = name.substr(0, at);
  }
  const size_t colon = name.rfind(':');
  const size_t slash = name.rfind('/');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    if (!isTag(name.substr(colon + 1))) return kExpected;
    name = name.substr(0, colon);
  }
  if (name.empty() || name.size() > 255) return kExpected;
  std::vector<std::string_view> parts = split(name, '/');
  size_t first = 0;
  if (parts.size() > 1) {
    const std::string_view head = parts.front();
    const bool looksLikeHost = head.find('.') != std::string_view::npos ||
                               head.find(':') != std::string_view::npos || head == "localhost";
    if (looksLikeHost) {
      if (!isRegistry(head)) return kExpected;
      first = 1;
    }
  }
  for (size_t i = first; i < parts.size(); ++i) {
    if (!isPathComponent(parts[i])) return kExpected;
  }
  return std::nullopt;
}

std::optional<std::string> checkEnvKey(std::string_view s) {
  if (s.empty() || s.size() > kMaxEnvKeyLen || isDigit(s.front())) {
    return "a key of 1 to 256 letters, digits and '_' not starting with a digit";
  }
  for (char c : s) {
    if (!isAlnum(c) && c != '_') {
      return "a key of 1 to 256 letters, digits and '_' not starting with a digit";
    }
  }
  if (startsWith(s, kReservedEnvPrefix)) {
    return "a key not starting with " + std::string(kReservedEnvPrefix) +
           " (reserved for the platform)";
  }
  return std::nullopt;
}

std::optional<std::string> checkEnvValue(std::string_view s) {
  if (s.size() > kMaxEnvValueLen || hasNul(s) || !isUtf8(s)) {
    return "a UTF-8 string of at most " + std::to_string(kMaxEnvValueLen) + " bytes without NUL";
  }
  return std::nullopt;
}

std::optional<std::string> checkSecretName(std::string_view s) {
  static const std::string kExpected =
      "a secret name of 1 to 256 upper-case letters, digits and '_', not starting with a digit";
  if (s.empty() || s.size() > kMaxSecretNameLen || isDigit(s.front())) return kExpected;
  for (char c : s) {
    if (!isUpper(c) && !isDigit(c) && c != '_') return kExpected;
  }
  return std::nullopt;
}

std::optional<std::string> checkArg(std::string_view s) {
  if (s.size() > kMaxArgLen || hasNul(s) || !isUtf8(s)) {
    return "a UTF-8 string of at most " + std::to_string(kMaxArgLen) + " bytes without NUL";
  }
  return std::nullopt;
}

std::optional<std::string> checkHostname(std::string_view s) {
  static const std::string kExpected =
      "a DNS name like \"app.example.com\" or \"*.example.com\": at least two labels of 1 to 63 "
      "lower-case letters, digits and '-', at most 253 characters";
  if (s.empty() || s.size() > kMaxHostnameLen) return kExpected;
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) {
      return "a DNS name in ASCII (write an internationalized name in its xn-- form)";
    }
  }
  if (s.back() == '.') return "a DNS name without the trailing '.'";
  std::string_view rest = s;
  if (startsWith(rest, "*.")) rest.remove_prefix(2);
  const std::vector<std::string_view> labels = split(rest, '.');
  if (labels.size() < 2) return kExpected;
  for (std::string_view label : labels) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return kExpected;
    }
    for (char c : label) {
      if (c == '*') return "a DNS name with '*' only as the whole first label (\"*.example.com\")";
      if (!isLower(c) && !isDigit(c) && c != '-') return kExpected;
    }
  }
  bool numeric = true;
  for (char c : labels.back()) numeric = numeric && isDigit(c);
  if (numeric) return "a DNS name, not an IP address";
  return std::nullopt;
}

std::optional<std::string> checkMount(std::string_view s) {
  static const std::string kExpected =
      "an absolute path like \"/data\" without '.', '..' or empty parts, of letters, digits and "
      "'._-+@'";
  if (s == "/") return "a directory below / like \"/data\" (a volume cannot be the root)";
  if (s.size() < 2 || s.size() > kMaxMountLen || s.front() != '/') return kExpected;
  for (std::string_view part : split(s.substr(1), '/')) {
    if (part.empty() || part == "." || part == "..") return kExpected;
    for (char c : part) {
      if (!isAlnum(c) && c != '.' && c != '_' && c != '-' && c != '+' && c != '@') {
        return kExpected;
      }
    }
  }
  static constexpr std::array<std::string_view, 4> kReserved = {"/proc", "/sys", "/dev", "/run"};
  for (std::string_view r : kReserved) {
    if (s == r || (startsWith(s, r) && s[r.size()] == '/')) {
      return "a path outside /proc, /sys, /dev and /run (the platform mounts those)";
    }
  }
  return std::nullopt;
}

std::optional<std::string> checkHttpPath(std::string_view s) {
  if (s.empty() || s.size() > kMaxHttpPathLen || s.front() != '/') {
    return "an HTTP path starting with '/' like \"/healthz\"";
  }
  for (char c : s) {
    if (c <= 0x20 || c >= 0x7f) return "an HTTP path of printable ASCII without spaces";
  }
  return std::nullopt;
}

std::string toLowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (isUpper(c)) c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::optional<std::int64_t> parseDuration(std::string_view s) {
  static constexpr std::array<std::pair<std::string_view, std::int64_t>, 4> kUnits = {
      {{"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}}};
  constexpr std::int64_t kDay = 86'400'000;
  if (s.empty()) return std::nullopt;
  std::int64_t total = 0;
  while (!s.empty()) {
    auto amount = takeNumber(s);
    if (!amount) return std::nullopt;
    std::int64_t scale = 0;
    for (const auto& [unit, ms] : kUnits) {  // "ms" is tried before "m"
      if (startsWith(s, unit)) {
        scale = ms;
        s.remove_prefix(unit.size());
        break;
      }
    }
    if (scale == 0 || *amount > static_cast<std::uint64_t>(kDay)) return std::nullopt;
    total += static_cast<std::int64_t>(*amount) * scale;
    if (total > kDay) return std::nullopt;
  }
  return total;
}

std::string formatDuration(std::int64_t ms) {
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::optional<std::int64_t> parseBackupEvery(std::string_view s) {
  if (s == "off") return 0;
  if (s.find("ms") != std::string_view::npos) return std::nullopt;  // s, m and h only
  auto ms = parseDuration(s);
  if (!ms || *ms % 1000 != 0) return std::nullopt;
  return *ms / 1000;
}

std::optional<std::uint64_t> parseSize(std::string_view s) {
  static constexpr std::array<std::pair<std::string_view, int>, 5> kUnits = {
      {{"B", 0}, {"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}}};
  auto amount = takeNumber(s);
  if (!amount) return std::nullopt;
  for (const auto& [unit, shift] : kUnits) {
    if (s == unit) {
      if (*amount > (UINT64_MAX >> shift)) return std::nullopt;
      return *amount << shift;
    }
  }
  return std::nullopt;
}

std::string formatSize(std::uint64_t bytes) {
  static constexpr std::array<std::pair<std::string_view, int>, 4> kUnits = {
      {{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}}};
  for (const auto& [unit, shift] : kUnits) {
    const std::uint64_t size = std::uint64_t{1} << shift;
    if (bytes != 0 && bytes % size == 0) return std::to_string(bytes / size) + std::string(unit);
  }
  return std::to_string(bytes) + "B";
}

std::string quote(std::string_view s) {
  constexpr size_t kMaxShown = 40;
  size_t cut = s.size();
  if (cut > kMaxShown) {
    cut = kMaxShown;
    // Back off to a character boundary so the excerpt stays valid UTF-8.
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  }
  std::string shown(s.substr(0, cut));
  if (!isUtf8(shown)) {
    for (char& c : shown) {
      if (static_cast<unsigned char>(c) >= 0x80) c = '?';
    }
  }
  return "\"" + jsonEscape(shown) + (cut < s.size() ? "...\"" : "\"");
}

}  // namespace plfm::manifest::rules
