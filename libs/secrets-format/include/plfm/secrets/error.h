// Error and Result types of the secrets-format library.
//
// This library is linked into vt-init, a static guest binary, so it depends on
// nothing but the C++ standard library and header-only tl::expected. That is
// why it has its own small Error instead of plfm::Error (whose implementation
// lives in plfm_core, next to spdlog and OpenSSL). Callers that speak
// plfm::Error convert at the boundary:
//
//   auto parsed = plfm::secrets::decode(text);
//   if (!parsed) return plfm::Error(codeName(parsed.error().code), parsed.error().toString());
//
// Messages never contain secret values, not even single bytes of them: only
// key names (which are not secret), positions and limits.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <utility>

namespace plfm::secrets {

enum class ErrorCode {
  kSyntax,              // structure: quotes, '=', line endings, trailing bytes
  kBadHeader,           // first line is not "# plfm-secrets v<N>"
  kUnsupportedVersion,  // a header from a newer (or unknown) format version
  kInvalidKey,          // a key outside [A-Z_][A-Z0-9_]*
  kUnsortedKeys,        // keys not in ascending byte order
  kDuplicateKey,        // the same key twice
  kBadEscape,           // an unknown or malformed backslash escape
  kInvalidUtf8,         // raw bytes that are not well-formed UTF-8
  kNonCanonical,        // decodable, but not how encode() writes it
  kLimitExceeded,       // too many keys, a key or value too long, file too big
};

// Stable dotted code for each ErrorCode ("secrets.bad_escape"); part of the
// API contract, like plfm::errc.
[[nodiscard]] std::string_view codeName(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kSyntax;
  std::string message;
  // 1-based position of the offending byte; 0 when the error is not about a
  // position in a text (encode() errors). The column counts bytes.
  size_t line = 0;
  size_t column = 0;

  // "line 3, column 7: message" (or just the message without a position).
  [[nodiscard]] std::string toString() const;
};

// tl::expected<T, Error> marked [[nodiscard]], shaped like plfm::Result.
template <class T>
class [[nodiscard]] Result : public tl::expected<T, Error> {
 public:
  using Base = tl::expected<T, Error>;
  using Base::Base;

  Result(Base base) : Base(std::move(base)) {}  // NOLINT(google-explicit-constructor)
  Result(Error error)                           // NOLINT(google-explicit-constructor)
      : Base(tl::unexpect, std::move(error)) {}
};

}  // namespace plfm::secrets
