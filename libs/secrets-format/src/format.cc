#include "plfm/secrets/format.h"

#include <algorithm>
#include <cstdint>
#include <cstring>  // explicit_bzero (glibc)
#include <utility>

#include "escape.h"

namespace plfm::secrets {

using internal::hexValue;
using internal::isKeyChar;
using internal::isKeyStart;

std::string_view codeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kSyntax:
      return "secrets.syntax";
    case ErrorCode::kBadHeader:
      return "secrets.bad_header";
    case ErrorCode::kUnsupportedVersion:
      return "secrets.unsupported_version";
    case ErrorCode::kInvalidKey:
      return "secrets.invalid_key";
    case ErrorCode::kUnsortedKeys:
      return "secrets.unsorted_keys";
    case ErrorCode::kDuplicateKey:
      return "secrets.duplicate_key";
    case ErrorCode::kBadEscape:
      return "secrets.bad_escape";
    case ErrorCode::kInvalidUtf8:
      return "secrets.invalid_utf8";
    case ErrorCode::kNonCanonical:
      return "secrets.non_canonical";
    case ErrorCode::kLimitExceeded:
      return "secrets.limit_exceeded";
  }
  return "secrets.unknown";
}

std::string Error::toString() const {
  if (line == 0) return message;
  return "line " + std::to_string(line) + ", column " + std::to_string(column) + ": " + message;
}

bool validKey(std::string_view key) {
  if (key.empty() || key.size() > kMaxKeyBytes || !isKeyStart(key.front())) return false;
  return std::all_of(key.begin(), key.end(), isKeyChar);
}

void wipe(std::string& s) noexcept {
  // Grow to the capacity (no reallocation) so stale bytes past size() from
  // an earlier, longer content are wiped too, including the SSO buffer.
  s.resize(s.capacity());
  ::explicit_bzero(s.data(), s.size());
  s.clear();
}

void wipe(SecretMap& secrets) noexcept {
  for (auto& entry : secrets) wipe(entry.second);
  secrets.clear();
}

Result<std::string> encode(const SecretMap& secrets) {
  if (secrets.size() > kMaxKeys) {
    return Error{ErrorCode::kLimitExceeded, std::to_string(secrets.size()) +
                                                " keys; the limit is " + std::to_string(kMaxKeys)};
  }
  size_t total = kHeader.size() + 1;
  size_t index = 0;
  for (const auto& [key, value] : secrets) {
    ++index;
    if (!validKey(key)) {
      // The key itself is not echoed: a caller that passes garbage as a key
      // may be passing secret material.
      return Error{ErrorCode::kInvalidKey,
                   "key #" + std::to_string(index) +
                       " (in sorted order) is invalid; keys match [A-Z_][A-Z0-9_]* and are at "
                       "most " +
                       std::to_string(kMaxKeyBytes) + " bytes"};
    }
    if (value.size() > kMaxValueBytes) {
      return Error{ErrorCode::kLimitExceeded,
                   "the value of " + key + " is " + std::to_string(value.size()) +
                       " bytes; the limit is " + std::to_string(kMaxValueBytes)};
    }
    total += key.size() + 4 + internal::escapedSize(value);  // ="...\n
  }
  if (total > kMaxFileBytes) {
    return Error{ErrorCode::kLimitExceeded, "the encoded file would be " + std::to_string(total) +
                                                " bytes; the limit is " +
                                                std::to_string(kMaxFileBytes)};
  }
  std::string out;
  out.reserve(total);  // exact, so appending never reallocates a partial copy
  out.append(kHeader);
  out.push_back('\n');
  for (const auto& [key, value] : secrets) {
    out.append(key);
    out.append("=\"");
    internal::appendEscaped(out, value);
    out.append("\"\n");
  }
  return out;
}

namespace {

// The strict reader. One entry per line, so it tracks the current line and
// where it starts to report columns.
class Decoder {
 public:
  explicit Decoder(std::string_view in) : in_(in) {}
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;
  ~Decoder() { wipe(out_); }

  Result<SecretMap> run() {
    if (in_.size() > kMaxFileBytes) {
      return Error{ErrorCode::kLimitExceeded, "the file is " + std::to_string(in_.size()) +
                                                  " bytes; the limit is " +
                                                  std::to_string(kMaxFileBytes)};
    }
    auto header = parseHeader();
    if (!header) return header.error();
    while (pos_ < in_.size()) {
      auto entry = parseEntry();
      if (!entry) return entry.error();
    }
    return std::exchange(out_, {});
  }

 private:
  [[nodiscard]] Error fail(ErrorCode code, size_t at, std::string message) const {
    return Error{code, std::move(message), line_, at - line_start_ + 1};
  }

  Result<void> parseHeader() {
    line_ = 1;
    const std::string_view first = in_.substr(0, in_.find('\n'));
    const size_t common = std::min(first.size(), kHeaderPrefix.size());
    for (size_t i = 0; i < common; ++i) {
      if (first[i] != kHeaderPrefix[i]) return badHeader(i);
    }
    if (first.size() < kHeaderPrefix.size()) return badHeader(first.size());
    size_t i = kHeaderPrefix.size();
    while (i < first.size() && first[i] >= '0' && first[i] <= '9') ++i;
    const std::string_view version = first.substr(kHeaderPrefix.size(), i - kHeaderPrefix.size());
    if (version.empty()) return badHeader(i);
    if (i < first.size()) {
      if (first[i] == '\r') return fail(ErrorCode::kSyntax, i, "CRLF line endings are not allowed");
      return badHeader(i);
    }
    if (version != "1") {
      return fail(ErrorCode::kUnsupportedVersion, kHeaderPrefix.size(),
                  "unsupported format version v" + std::string(version.substr(0, 9)) +
                      " (this reader supports v" + std::to_string(kVersion) + ")");
    }
    if (first.size() == in_.size()) {
      return fail(ErrorCode::kSyntax, first.size(), "missing newline after the header");
    }
    pos_ = first.size() + 1;
    return {};
  }

  [[nodiscard]] Error badHeader(size_t at) const {
    return fail(ErrorCode::kBadHeader, at,
                "expected the header line \"" + std::string(kHeader) + "\"");
  }

  Result<void> parseEntry() {
    ++line_;
    line_start_ = pos_;
    size_t k = pos_;
    while (k < in_.size() && isKeyChar(in_[k])) ++k;
    const std::string_view key = in_.substr(pos_, k - pos_);
    auto checked = checkKey(key, k);
    if (!checked) return checked;
    if (k + 1 == in_.size() || in_[k + 1] != '"') {
      return fail(ErrorCode::kSyntax, k + 1, "expected '\"': values are written in double quotes");
    }
    std::string value;
    internal::WipeOnExit wipe_value(value);
    const size_t value_start = k + 2;
    auto end = parseValue(key, value_start, value);
    if (!end) return std::move(end).error();
    const size_t mismatch =
        internal::firstNonCanonical(value, in_.substr(value_start, *end - value_start));
    if (mismatch != std::string_view::npos) {
      return fail(ErrorCode::kNonCanonical, value_start + mismatch,
                  "non-canonical escaping: bytes that form well-formed UTF-8 are written as-is");
    }
    size_t i = *end + 1;
    if (i == in_.size()) return fail(ErrorCode::kSyntax, i, "missing newline at the end of file");
    if (in_[i] == '\r') return fail(ErrorCode::kSyntax, i, "CRLF line endings are not allowed");
    if (in_[i] != '\n')
      return fail(ErrorCode::kSyntax, i, "unexpected bytes after the closing quote");
    out_.emplace_hint(out_.end(), key, std::move(value));
    prev_key_ = key;
    prev_line_ = line_;
    pos_ = i + 1;
    return {};
  }

  // Checks the key at pos_ that ends at `k` (the first non-key byte), its
  // order relative to the previous key and the '=' after it.
  Result<void> checkKey(std::string_view key, size_t k) {
    if (key.empty()) {
      if (k == in_.size()) return fail(ErrorCode::kSyntax, k, "unexpected end of file");
      const char c = in_[k];
      if (c == '\n' || c == '\r') return fail(ErrorCode::kSyntax, k, "blank lines are not allowed");
      if (c == '#') return fail(ErrorCode::kSyntax, k, "comments are allowed only in the header");
      return invalidKey(k);
    }
    if (!isKeyStart(key.front())) {
      return fail(ErrorCode::kInvalidKey, pos_, "a key must not start with a digit");
    }
    if (key.size() > kMaxKeyBytes) {
      return fail(ErrorCode::kLimitExceeded, pos_ + kMaxKeyBytes,
                  "key longer than " + std::to_string(kMaxKeyBytes) + " bytes");
    }
    if (k == in_.size()) return fail(ErrorCode::kSyntax, k, "unexpected end of file");
    if (in_[k] != '=') {
      const char c = in_[k];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        return fail(ErrorCode::kSyntax, k, "expected '=' right after the key");
      }
      return invalidKey(k);
    }
    if (!prev_key_.empty()) {
      if (key == prev_key_) {
        return fail(ErrorCode::kDuplicateKey, pos_,
                    "duplicate key " + std::string(key) + " (first on line " +
                        std::to_string(prev_line_) + ")");
      }
      if (key < prev_key_) {
        return fail(ErrorCode::kUnsortedKeys, pos_,
                    "key " + std::string(key) + " must come before " + std::string(prev_key_) +
                        ": keys are in ascending byte order");
      }
    }
    if (out_.size() == kMaxKeys) {
      return fail(ErrorCode::kLimitExceeded, pos_,
                  "more than " + std::to_string(kMaxKeys) + " keys");
    }
    return {};
  }

  [[nodiscard]] Error invalidKey(size_t at) const {
    const char c = in_[at];
    std::string why = "invalid byte in key; keys match [A-Z_][A-Z0-9_]*";
    if (c >= 'a' && c <= 'z') why = "keys are upper case; they match [A-Z_][A-Z0-9_]*";
    return fail(ErrorCode::kInvalidKey, at, why);
  }

  // Decodes the value starting at `start` (just after the opening quote) into
  // `value`; returns the offset of the closing quote.
  Result<size_t> parseValue(std::string_view key, size_t start, std::string& value) {
    // Size the buffer once (the decoded value is never longer than its
    // escaped form) so that growing it never leaves a copy behind.
    size_t end = start;
    while (end < in_.size() && in_[end] != '"' && in_[end] != '\n') end += in_[end] == '\\' ? 2 : 1;
    value.reserve(std::min(end - start, kMaxValueBytes + 4));
    size_t i = start;
    while (true) {
      if (i >= in_.size() || in_[i] == '\n') {
        return fail(ErrorCode::kSyntax, std::min(i, in_.size()),
                    "unterminated value: missing closing quote");
      }
      const auto b = static_cast<uint8_t>(in_[i]);
      if (b == '"') return i;
      const size_t at = i;
      if (b == '\\') {
        auto step = parseEscape(i, value);
        if (!step) return std::move(step).error();
        i += *step;
      } else if (b < 0x20 || b == 0x7F) {
        return fail(ErrorCode::kSyntax, i, "raw control byte in a value; it must be escaped");
      } else if (b == '$' || b == '`') {
        return fail(ErrorCode::kNonCanonical, i, "'$' and '`' must be escaped as \\$ and \\`");
      } else if (b >= 0x80) {
        const size_t n = internal::utf8SequenceLength(in_, i);
        if (n == 0) {
          return fail(ErrorCode::kInvalidUtf8, i,
                      "invalid UTF-8; bytes that are not UTF-8 are written as \\xNN");
        }
        value.append(in_.substr(i, n));
        i += n;
      } else {
        value.push_back(static_cast<char>(b));
        ++i;
      }
      if (value.size() > kMaxValueBytes) {
        return fail(ErrorCode::kLimitExceeded, at,
                    "the value of " + std::string(key) + " is longer than " +
                        std::to_string(kMaxValueBytes) + " bytes");
      }
    }
  }

  // Decodes the escape at in_[i] (a backslash) into `value`; returns its
  // length in the file.
  Result<size_t> parseEscape(size_t i, std::string& value) {
    if (i + 1 >= in_.size()) {
      return fail(ErrorCode::kSyntax, i, "unterminated value: missing closing quote");
    }
    const char e = in_[i + 1];
    switch (e) {
      case 'n':
        value.push_back('\n');
        return 2;
      case 'r':
        value.push_back('\r');
        return 2;
      case 't':
        value.push_back('\t');
        return 2;
      case '\\':
      case '"':
      case '$':
      case '`':
        value.push_back(e);
        return 2;
      case 'x':
        break;
      default:
        return fail(ErrorCode::kBadEscape, i,
                    R"(unknown escape; the escapes are \n \r \t \\ \" \$ \` and \xNN)");
    }
    const int hi = i + 2 < in_.size() ? hexValue(in_[i + 2]) : -1;
    const int lo = i + 3 < in_.size() ? hexValue(in_[i + 3]) : -1;
    if (hi < 0 || lo < 0) {
      return fail(ErrorCode::kBadEscape, i, "\\x must be followed by two lowercase hex digits");
    }
    const auto b = static_cast<uint8_t>(hi * 16 + lo);
    if (b < 0x80 && !internal::needsHexEscape(b)) {
      return fail(ErrorCode::kNonCanonical, i,
                  "unnecessary \\x escape: this byte is written as-is or with a short escape");
    }
    value.push_back(static_cast<char>(b));
    return 4;
  }

  std::string_view in_;
  size_t pos_ = 0;
  size_t line_ = 0;
  size_t line_start_ = 0;
  std::string_view prev_key_;
  size_t prev_line_ = 0;
  SecretMap out_;
};

}  // namespace

Result<SecretMap> decode(std::string_view file) {
  Decoder decoder(file);
  return decoder.run();
}

}  // namespace plfm::secrets
