// Field lookup for nlohmann::json that returns a pointer (nullptr when the
// field is absent or `obj` is not an object). Iterator-based lookups trip
// GCC 12's -Wnull-dereference false positives; pointers do not.
#pragma once

#include <string>
#include <string_view>

#include "plfm/core/error.h"
#include "plfm/core/json.h"

namespace plfm::image {

[[nodiscard]] inline const json::Json* findField(const json::Json& obj, std::string_view name) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(name);
  if (it == obj.end()) return nullptr;
  return &*it;
}

// An optional string field: "" when absent or null; `bad(what)` makes the
// error (naming the field's path) when it is there but not a string.
template <typename BadFn>
[[nodiscard]] Result<std::string> optStringField(const json::Json& obj, std::string_view field,
                                                 std::string_view path, BadFn bad) {
  const json::Json* it = findField(obj, field);
  if (it == nullptr || it->is_null()) return std::string();
  if (!it->is_string()) return bad(json::fieldPath(path, field) + " must be a string");
  return it->get<std::string>();
}

}  // namespace plfm::image
