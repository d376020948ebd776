#include "plfm/core/config_table.h"

#include <algorithm>
#include <cstdlib>

// toml++ is configured exactly as in libs/manifest/src/toml_reader.cc and
// cli/vt/src/config.cc (no exceptions, assertions off): they end up in the
// same binaries, and two configurations of its inline functions in one
// program are an ODR violation (a mixed control plane misread its config
// file). Keep the three blocks identical.
// clang-format off
#pragma push_macro("NDEBUG")
#undef NDEBUG
#define TOML_ASSERT(expr) static_cast<void>(0)
#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>
#pragma pop_macro("NDEBUG")
// clang-format on

#include "plfm/core/strings.h"

namespace plfm::config {

namespace {

std::string at(const std::string& file, Position p) {
  return file + ":" + std::to_string(p.line) + ":" + std::to_string(p.column) + ": ";
}

Position position(const toml::source_region& where) {
  return {static_cast<int>(where.begin.line), static_cast<int>(where.begin.column)};
}

Scalar scalar(const toml::node& node) {
  if (const auto* v = node.as_boolean()) return v->get();
  if (const auto* v = node.as_integer()) return v->get();
  if (const auto* v = node.as_floating_point()) return v->get();
  if (const auto* v = node.as_string()) return v->get();
  return std::monostate{};
}

void flatten(const std::string& file, const toml::table& table, const std::string& prefix,
             std::vector<Entry>& out) {
  for (auto&& [k, node] : table) {
    std::string key = prefix + std::string(k.str());
    if (const auto* sub = node.as_table()) {
      flatten(file, *sub, key + ".", out);
      continue;
    }
    Entry e;
    e.file = file;
    e.key = std::move(key);
    e.key_at = position(k.source());
    e.value_at = position(node.source());
    if (const auto* arr = node.as_array()) {
      e.is_array = true;
      for (auto&& item : *arr) e.items.push_back(scalar(item));
    } else {
      e.value = scalar(node);
    }
    out.push_back(std::move(e));
  }
}

}  // namespace

std::optional<int64_t> Entry::integer() const {
  if (const auto* v = std::get_if<int64_t>(&value)) return *v;
  return std::nullopt;
}

std::optional<bool> Entry::boolean() const {
  if (const auto* v = std::get_if<bool>(&value)) return *v;
  return std::nullopt;
}

Error Entry::invalid(std::string_view what) const {
  return Error(errc::kInvalidArgument, at(file, value_at) + "'" + key + "' " + std::string(what))
      .with("field", key);
}

const char* envValue(const char* name) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read at start
  return v != nullptr && *v != '\0' ? v : nullptr;
}

std::vector<std::string> splitList(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string_view::npos) comma = s.size();
    if (comma > start) out.emplace_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

Result<std::vector<Entry>> readToml(const std::string& path) {
  toml::parse_result parsed = toml::parse_file(path);
  if (!parsed) {
    const toml::parse_error& e = parsed.error();
    return Error(errc::kInvalidArgument,
                 at(path, position(e.source())) + std::string(e.description()));
  }
  std::vector<Entry> out;
  flatten(path, parsed.table(), "", out);
  // toml++ tables are sorted by key; the file's order makes "the first
  // error" the first one a reader meets.
  std::stable_sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) {
    return std::pair(a.key_at.line, a.key_at.column) < std::pair(b.key_at.line, b.key_at.column);
  });
  return out;
}

ConfigTable& ConfigTable::add(std::string key, Setter set) {
  setters_.emplace_back(std::move(key), std::move(set));
  return *this;
}

ConfigTable& ConfigTable::string(std::string key, std::string& out) {
  return add(std::move(key), [&out](const Entry& e) -> Result<void> {
    const std::string* v = e.string();
    if (v == nullptr) return e.invalid("must be a string");
    out = *v;
    return ok();
  });
}

ConfigTable& ConfigTable::boolean(std::string key, bool& out) {
  return add(std::move(key), [&out](const Entry& e) -> Result<void> {
    auto v = e.boolean();
    if (!v) return e.invalid("must be true or false");
    out = *v;
    return ok();
  });
}

ConfigTable& ConfigTable::strings(std::string key, std::vector<std::string>& out, ListRule rule) {
  return add(std::move(key), [&out, rule = std::move(rule)](const Entry& e) -> Result<void> {
    if (!e.is_array || (e.items.empty() && !rule.allow_empty)) return e.invalid(rule.not_a_list);
    std::vector<std::string> values;
    for (const Scalar& item : e.items) {
      const auto* v = std::get_if<std::string>(&item);
      if (v == nullptr) return e.invalid(rule.bad_item);
      values.push_back(*v);
    }
    out = std::move(values);
    return ok();
  });
}

ConfigTable& ConfigTable::integer(std::string key, int64_t lo, int64_t hi,
                                  std::function<void(int64_t)> set) {
  return add(std::move(key), [lo, hi, set = std::move(set)](const Entry& e) -> Result<void> {
    auto v = e.integer();
    if (!v || *v < lo || *v > hi) {
      return e.invalid("must be an integer " + std::to_string(lo) + ".." + std::to_string(hi));
    }
    set(*v);
    return ok();
  });
}

std::vector<std::string_view> ConfigTable::keys() const {
  std::vector<std::string_view> out;
  out.reserve(setters_.size());
  for (const auto& s : setters_) out.emplace_back(s.first);
  return out;
}

Result<void> ConfigTable::apply(const Entry& entry) const {
  auto it = std::find_if(setters_.begin(), setters_.end(),
                         [&entry](const auto& s) { return s.first == entry.key; });
  if (it != setters_.end()) return it->second(entry);
  const std::vector<std::string_view> known = keys();
  std::string what = "is not a known setting";
  if (auto m = closestMatch(entry.key, known)) {
    what += "; did you mean '" + *m + "'?";
  } else {
    std::string list;
    for (auto name : known) list += (list.empty() ? "" : ", ") + std::string(name);
    what += " (known: " + list + ")";
  }
  return Error(errc::kInvalidArgument, at(entry.file, entry.key_at) + "'" + entry.key + "' " + what)
      .with("field", entry.key);
}

Result<void> ConfigTable::apply(const std::vector<Entry>& entries) const {
  for (const Entry& e : entries) PLFM_TRY(apply(e));
  return ok();
}

Result<void> ConfigTable::load(const std::string& path) const {
  PLFM_ASSIGN_OR_RETURN(auto entries, readToml(path));
  return apply(entries);
}

}  // namespace plfm::config
