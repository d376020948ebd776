// JSON helpers over nlohmann::json that report errors as plfm::Error values
// instead of exceptions, and name the offending field path. Include this only
// from .cc files: nlohmann/json.hpp is heavy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "plfm/core/result.h"

namespace plfm::json {

using Json = nlohmann::json;

// Bounds on a document's shape, checked by a non-recursive scan before the
// parser builds anything: nlohmann copies and dumps recurse, so a body of
// 100,000 nested '[' would overflow the stack of whoever touches it next.
struct Limits {
  int max_depth = 64;                  // nested arrays and objects
  std::size_t max_elements = 1 << 20;  // values in the whole document
};

// The limits for bodies that come from the network (API requests): wide
// enough for the largest valid manifest, narrow enough that one request
// cannot make the server allocate hundreds of megabytes.
inline constexpr Limits kRequestLimits{64, 100'000};

// Error codes of parse(), also in the "reason" detail.
inline constexpr std::string_view kTooDeep = "too_deep";
inline constexpr std::string_view kTooManyElements = "too_many_elements";
inline constexpr std::string_view kMalformed = "malformed";

// Parses `text` as one JSON document within `limits`. Errors are
// invalid_argument with a "reason" detail (too_deep, too_many_elements or
// malformed); malformed ones also carry the byte "offset".
[[nodiscard]] Result<Json> parse(std::string_view text, Limits limits = {});

// The shape check alone (what parse() runs first): ok, or the error parse()
// would give for the depth or element count. Malformed text passes here.
[[nodiscard]] Result<void> checkLimits(std::string_view text, Limits limits);

// Serializes compactly with object keys in sorted order (nlohmann's default
// map), so equal values always give byte-identical text.
[[nodiscard]] std::string dump(const Json& j);

// Field readers. `path` is the object's own path ("" for the root, "spec"),
// used to name the field in errors: "spec.memory_mb must be an integer".
[[nodiscard]] Result<std::string> getString(const Json& obj, std::string_view field,
                                            std::string_view path = "");
[[nodiscard]] Result<int64_t> getInt(const Json& obj, std::string_view field,
                                     std::string_view path = "");
[[nodiscard]] Result<bool> getBool(const Json& obj, std::string_view field,
                                   std::string_view path = "");
[[nodiscard]] Result<const Json*> getObject(const Json& obj, std::string_view field,
                                            std::string_view path = "");

// Fails with the first (sorted) key of `obj` that is not in `allowed`.
[[nodiscard]] Result<void> rejectUnknownFields(const Json& obj,
                                               std::initializer_list<std::string_view> allowed,
                                               std::string_view path = "");

// "a.b" joiner for error field paths.
[[nodiscard]] std::string fieldPath(std::string_view path, std::string_view field);

}  // namespace plfm::json
