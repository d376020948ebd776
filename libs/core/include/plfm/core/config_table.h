// A service's config file as a table of keys, each with a typed setter and
// its range: the one config parser of plfm-control-plane, plfm-ingress and
// plfm-node-agent. readToml() turns a TOML file into flat entries (a
// "[timeouts]" table's "connect_ms" is the key "timeouts.connect_ms"), and a
// ConfigTable applies them. Every error names the file, the line and column,
// and the key, and carries the key as the "field" detail:
//
//   ingress.toml:2:1: 'timeouts.conect_ms' is not a known setting; did you mean
//   'timeouts.connect_ms'?
//   cp.toml:4:16: 'db_pool_size' must be an integer 1..1000
//
// A typo never silently falls back to a default. Values are strict: an
// integer setting takes a TOML integer, a boolean one true or false. The TOML
// library stays out of this header.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::config {

struct Position {
  int line = 0;
  int column = 0;
};

// One value: monostate for a type no setting takes (a date, a table in an
// array, a nested array).
using Scalar = std::variant<std::monostate, bool, int64_t, double, std::string>;

// One key of a config file and its value.
struct Entry {
  std::string file;  // for messages
  std::string key;   // dotted: "timeouts.connect_ms"
  Position key_at;
  Position value_at;
  Scalar value;           // for a scalar
  bool is_array = false;  // then `items` holds its elements
  std::vector<Scalar> items;

  [[nodiscard]] const std::string* string() const { return std::get_if<std::string>(&value); }
  [[nodiscard]] std::optional<int64_t> integer() const;
  [[nodiscard]] std::optional<bool> boolean() const;

  // "FILE:LINE:COL: 'KEY' WHAT" at the value, with detail field=KEY.
  [[nodiscard]] Error invalid(std::string_view what) const;
};

// Parses `path` as TOML into entries, in file order, tables flattened into
// dotted keys. A syntax error reads "FILE:LINE:COL: what is wrong".
[[nodiscard]] Result<std::vector<Entry>> readToml(const std::string& path);

// The environment half of a service's config: the value of variable
// `name`, or nullptr when it is unset or empty.
[[nodiscard]] const char* envValue(const char* name);

// A list setting given as one variable: "a,b,,c" is {"a", "b", "c"}.
[[nodiscard]] std::vector<std::string> splitList(std::string_view s);

// "must be a non-empty array of addresses": what a list setting says.
struct ListRule {
  std::string not_a_list;  // the value is not an array (or is empty, with !allow_empty)
  std::string bad_item;    // an element is not a string
  bool allow_empty = true;
};

class ConfigTable {
 public:
  // Returns an error (from Entry::invalid) or applies the value.
  using Setter = std::function<Result<void>(const Entry&)>;

  ConfigTable& add(std::string key, Setter set);
  ConfigTable& string(std::string key, std::string& out);
  ConfigTable& boolean(std::string key, bool& out);
  ConfigTable& strings(std::string key, std::vector<std::string>& out, ListRule rule);
  // An integer in lo..hi, handed to `set`.
  ConfigTable& integer(std::string key, int64_t lo, int64_t hi, std::function<void(int64_t)> set);

  // An integer in lo..hi stored in `out` (int, size_t, int64_t ...).
  template <typename T>
  requires std::is_integral_v<T> ConfigTable& integer(std::string key, int64_t lo, int64_t hi,
                                                      T& out) {
    return integer(std::move(key), lo, hi, [&out](int64_t v) { out = static_cast<T>(v); });
  }
  // An integer in lo..hi, in the duration's own unit (the key says which:
  // "_ms", "_seconds").
  template <typename Rep, typename Period>
  ConfigTable& duration(std::string key, int64_t lo, int64_t hi,
                        std::chrono::duration<Rep, Period>& out) {
    return integer(std::move(key), lo, hi, [&out](int64_t v) {
      out = std::chrono::duration<Rep, Period>(static_cast<Rep>(v));
    });
  }

  // Applies each entry in order; stops at the first error. An unknown key
  // is an error at the key, with the closest known key as a hint, or the
  // list of known keys when none is close.
  [[nodiscard]] Result<void> apply(const std::vector<Entry>& entries) const;
  [[nodiscard]] Result<void> apply(const Entry& entry) const;

  // readToml(path), then apply().
  [[nodiscard]] Result<void> load(const std::string& path) const;

  [[nodiscard]] std::vector<std::string_view> keys() const;

 private:
  std::vector<std::pair<std::string, Setter>> setters_;
};

}  // namespace plfm::config
