#include "plfm/core/json.h"

#include <algorithm>

namespace plfm::json {

namespace {
Error fieldError(std::string_view path, std::string_view field, std::string_view what) {
  std::string name = fieldPath(path, field);
  return Error(errc::kInvalidArgument, "field '" + name + "' " + std::string(what))
      .with("field", name);
}

Result<const Json*> member(const Json& obj, std::string_view field, std::string_view path) {
  if (!obj.is_object()) {
    return Error(errc::kInvalidArgument,
                 "'" + (path.empty() ? std::string("body") : std::string(path)) +
                     "' must be a JSON object")
        .with("field", path.empty() ? std::string("body") : std::string(path));
  }
  auto it = obj.find(field);
  if (it == obj.end()) return fieldError(path, field, "is required");
  return &*it;
}
}  // namespace

std::string fieldPath(std::string_view path, std::string_view field) {
  if (path.empty()) return std::string(field);
  return std::string(path) + "." + std::string(field);
}

Result<void> checkLimits(std::string_view text, Limits limits) {
  // Outside strings, every value but the first opens a container or follows
  // a ',': counting those bounds the element count without a parse. Text
  // that is malformed is left for the parser to report.
  int depth = 0;
  std::size_t elements = 1;
  bool in_string = false;
  auto fail = [&](std::string_view reason, const std::string& what, std::size_t at) {
    return Error(errc::kInvalidArgument, what + " at byte " + std::to_string(at))
        .with("reason", std::string(reason))
        .with("offset", std::to_string(at));
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // an escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      continue;
    }
    if (c == '[' || c == '{') {
      if (++depth > limits.max_depth) {
        return fail(kTooDeep,
                    "JSON nests deeper than " + std::to_string(limits.max_depth) + " levels", i);
      }
    } else if (c == ']' || c == '}') {
      --depth;
      continue;
    } else if (c != ',') {
      continue;
    }
    if (++elements > limits.max_elements) {
      return fail(kTooManyElements,
                  "JSON has more than " + std::to_string(limits.max_elements) + " elements", i);
    }
  }
  return ok();
}

Result<Json> parse(std::string_view text, Limits limits) {
  PLFM_TRY(checkLimits(text, limits));
  // nlohmann reports the position only through its exception; this is the
  // adapter boundary where library exceptions become Errors.
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    return Error(errc::kInvalidArgument, "malformed JSON at byte " + std::to_string(e.byte))
        .with("reason", std::string(kMalformed))
        .with("offset", std::to_string(e.byte));
  } catch (const Json::exception& e) {
    // out_of_range: a number literal too large for any JSON number type
    // (found by image_parsers_fuzz; it escaped as std::terminate).
    return Error(errc::kInvalidArgument, std::string("malformed JSON: ") + e.what())
        .with("reason", std::string(kMalformed));
  }
}

std::string dump(const Json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<std::string> getString(const Json& obj, std::string_view field, std::string_view path) {
  PLFM_ASSIGN_OR_RETURN(const Json* v, member(obj, field, path));
  if (!v->is_string()) return fieldError(path, field, "must be a string");
  return v->get<std::string>();
}

Result<int64_t> getInt(const Json& obj, std::string_view field, std::string_view path) {
  PLFM_ASSIGN_OR_RETURN(const Json* v, member(obj, field, path));
  if (!v->is_number_integer()) return fieldError(path, field, "must be an integer");
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    return fieldError(path, field, "is out of range");
  }
  return v->get<int64_t>();
}

Result<bool> getBool(const Json& obj, std::string_view field, std::string_view path) {
  PLFM_ASSIGN_OR_RETURN(const Json* v, member(obj, field, path));
  if (!v->is_boolean()) return fieldError(path, field, "must be a boolean");
  return v->get<bool>();
}

Result<const Json*> getObject(const Json& obj, std::string_view field, std::string_view path) {
  PLFM_ASSIGN_OR_RETURN(const Json* v, member(obj, field, path));
  if (!v->is_object()) return fieldError(path, field, "must be an object");
  return v;
}

Result<void> rejectUnknownFields(const Json& obj, std::initializer_list<std::string_view> allowed,
                                 std::string_view path) {
  if (!obj.is_object()) return ok();
  for (const auto& [key, _] : obj.items()) {  // nlohmann's object map iterates sorted
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return fieldError(path, key, "is not a known field");
    }
  }
  return ok();
}

}  // namespace plfm::json
