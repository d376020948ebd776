// Error and Result types of guest-proto.
//
// vt-init links this library into a static binary, so, like secrets-format,
// it depends on the C++ standard library and header-only tl::expected only,
// not on plfm_core (which drags spdlog, fmt and OpenSSL into the link).
// Callers that speak plfm::Error convert at the boundary:
//
//   if (!r) return plfm::Error(codeName(r.error().code), r.error().message);
//
// Messages name frame types, tags, lengths and limits; they never quote
// payload bytes (a CONFIG carries secrets).
#pragma once

#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <utility>

namespace plfm::guest_proto {

enum class ErrorCode {
  kOversized,         // a length above its limit (frame, LOG data, field)
  kUnknownFrameType,  // a type byte this version does not define
  kBadHeader,         // nonzero flags, or a stream id the type may not use
  kMalformed,         // a payload that does not parse (size, TLV structure)
  kMissingField,      // a required TLV field is absent
  kDuplicateField,    // a field that may appear once appears twice
  kUnknownField,      // a TLV tag this version does not define
  kInvalidValue,      // a field that parses but is not allowed (bad path, MTU)
  kUnsupportedVersion,
};

// Stable dotted code ("guest_proto.oversized"); part of the API contract.
[[nodiscard]] std::string_view codeName(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kMalformed;
  std::string message;

  // "guest_proto.oversized: message".
  [[nodiscard]] std::string toString() const;
};

template <class T = void>
class [[nodiscard]] Result : public tl::expected<T, Error> {
 public:
  using Base = tl::expected<T, Error>;
  using Base::Base;

  Result(Base base) : Base(std::move(base)) {}  // NOLINT(google-explicit-constructor)
  Result(Error error)                           // NOLINT(google-explicit-constructor)
      : Base(tl::unexpect, std::move(error)) {}
};

[[nodiscard]] inline Error makeError(ErrorCode code, std::string message) {
  return Error{code, std::move(message)};
}

}  // namespace plfm::guest_proto
