// JSON helpers over nlohmann::json that report errors as plfm::Error values
// instead of exceptions, and name the offending field path. Include this only
// from .cc files: nlohmann/json.hpp is heavy.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "plfm/core/result.h"

namespace plfm::json {

using Json = nlohmann::json;

// Parses `text` as one JSON document. Errors carry the byte offset.
[[nodiscard]] Result<Json> parse(std::string_view text);

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
