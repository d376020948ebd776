// Field lookup for nlohmann::json that returns a pointer (nullptr when the
// field is absent or `obj` is not an object). Iterator-based lookups trip
// GCC 12's -Wnull-dereference false positives; pointers do not.
#pragma once

#include <string_view>

#include "plfm/core/json.h"

namespace plfm::image {

[[nodiscard]] inline const json::Json* findField(const json::Json& obj, std::string_view name) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(name);
  if (it == obj.end()) return nullptr;
  return &*it;
}

}  // namespace plfm::image
