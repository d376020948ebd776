// The generic JSON codec over each event struct's visit(), instantiated once
// per type here so that includers of events.h compile no nlohmann templates.
#include "plfm/events/events.h"

namespace plfm::events {

namespace {

using json::Json;

Json toValue(const std::string& v) { return v; }
Json toValue(int64_t v) { return v; }
Json toValue(bool v) { return v; }
Json toValue(const Json& v) { return v; }
template <class V>
Json toValue(const std::optional<V>& v) {
  return v ? Json(*v) : Json(nullptr);
}
Json toValue(const std::vector<std::string>& v) { return v; }
template <class V>
Json toValue(const std::map<std::string, V>& v) {
  return v;
}

struct Writer {
  Json& out;
  template <class F>
  void operator()(const char* field, const F& value) {
    out[field] = toValue(value);
  }
};

Error fieldError(std::string_view field, std::string_view what) {
  return Error(plfm::errc::kInternal, "payload." + std::string(field) + " " + std::string(what));
}

Result<void> fromValue(std::string_view f, const Json& j, std::string& out) {
  if (!j.is_string()) return fieldError(f, "must be a string");
  out = j.get<std::string>();
  return ok();
}
Result<void> fromValue(std::string_view f, const Json& j, int64_t& out) {
  if (!j.is_number_integer()) return fieldError(f, "must be an integer");
  if (j.is_number_unsigned() && j.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    return fieldError(f, "is out of range");
  }
  out = j.get<int64_t>();
  return ok();
}
Result<void> fromValue(std::string_view f, const Json& j, bool& out) {
  if (!j.is_boolean()) return fieldError(f, "must be a boolean");
  out = j.get<bool>();
  return ok();
}
Result<void> fromValue(std::string_view f, const Json& j, Json& out) {
  if (!j.is_object()) return fieldError(f, "must be an object");
  out = j;
  return ok();
}
template <class V>
Result<void> fromValue(std::string_view f, const Json& j, std::optional<V>& out) {
  if (j.is_null()) {
    out.reset();
    return ok();
  }
  V v{};
  PLFM_TRY(fromValue(f, j, v));
  out = std::move(v);
  return ok();
}
Result<void> fromValue(std::string_view f, const Json& j, std::vector<std::string>& out) {
  if (!j.is_array()) return fieldError(f, "must be an array");
  out.clear();
  for (const auto& item : j) {
    if (!item.is_string()) return fieldError(f, "must hold strings");
    out.push_back(item.get<std::string>());
  }
  return ok();
}
template <class V>
Result<void> fromValue(std::string_view f, const Json& j, std::map<std::string, V>& out) {
  if (!j.is_object()) return fieldError(f, "must be an object");
  out.clear();
  for (const auto& [key, item] : j.items()) {
    V v{};
    PLFM_TRY(fromValue(std::string(f) + "." + key, item, v));
    out.emplace(key, std::move(v));
  }
  return ok();
}

template <class V>
constexpr bool kIsOptional = false;
template <class V>
constexpr bool kIsOptional<std::optional<V>> = true;

// Reads each field in turn; keeps the first error.
struct Reader {
  const Json& in;
  Result<void> status = ok();
  template <class F>
  void operator()(const char* field, F& value) {
    if (!status) return;
    auto it = in.find(field);
    if (it == in.end()) {
      if constexpr (kIsOptional<F>) {
        value.reset();
      } else {
        status = fieldError(field, "is missing");
      }
      return;
    }
    status = fromValue(field, *it, value);
  }
};

}  // namespace

template <class T>
Json toJson(const T& event) {
  Json out = Json::object();
  T::visit(event, Writer{out});
  return out;
}

template <class T>
std::string toPayload(const T& event) {
  return json::dump(toJson(event));
}

template <class T>
Result<T> fromPayload(const Json& payload) {
  if (!payload.is_object()) {
    return Error(plfm::errc::kInternal, std::string(T::kType) + ": payload must be an object");
  }
  T out;
  Reader reader{payload};
  T::visit(out, reader);
  if (!reader.status) {
    return std::move(reader.status.error()).context(std::string(T::kType));
  }
  return out;
}

#define PLFM_EVENTS_INSTANTIATE(T)             \
  template Json toJson<T>(const T&);           \
  template std::string toPayload<T>(const T&); \
  template Result<T> fromPayload<T>(const Json&);
PLFM_EVENTS_FOR_EACH(PLFM_EVENTS_INSTANTIATE)
#undef PLFM_EVENTS_INSTANTIATE

const std::vector<TypeInfo>& allTypes() {
#define PLFM_EVENTS_INFO(T)                                                                 \
  TypeInfo{T::kType, T::kVersion, T::kAggregate, [](const Json& j) -> Result<std::string> { \
             PLFM_ASSIGN_OR_RETURN(auto e, fromPayload<T>(j));                              \
             return toPayload(e);                                                           \
           }},
  static const std::vector<TypeInfo> all = {PLFM_EVENTS_FOR_EACH(PLFM_EVENTS_INFO)};
#undef PLFM_EVENTS_INFO
  return all;
}

}  // namespace plfm::events
