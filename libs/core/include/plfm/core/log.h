// Structured JSON logging. One line per record:
//   {"ts":"2026-11-26T11:46:40.123456Z","level":"info","component":"control-plane",
//    "msg":"deploy created","request_id":"req_...","deploy_id":"dep_..."}
//
// Fields are typed key/value pairs; keys are stable names (request_id,
// instance_id, ...). Every sink passes through the global Redactor, so a
// registered secret value is masked even if it reaches a message by mistake.
// spdlog does the I/O; it stays out of this header.
#pragma once

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <string>
#include <string_view>

#include "plfm/core/result.h"

namespace plfm::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

[[nodiscard]] Result<Level> parseLevel(std::string_view name);
[[nodiscard]] std::string_view levelName(Level level);

// A key and its value, already rendered as JSON text.
class Field {
 public:
  Field(std::string_view key, std::string_view value);
  Field(std::string_view key, const char* value) : Field(key, std::string_view(value)) {}
  Field(std::string_view key, const std::string& value) : Field(key, std::string_view(value)) {}
  Field(std::string_view key, bool value);
  Field(std::string_view key, double value);
  template <std::integral T>
  requires(!std::same_as<T, bool>) Field(std::string_view key, T value)
      : key_(key), json_(std::to_string(value)) {}

  [[nodiscard]] std::string_view key() const { return key_; }
  [[nodiscard]] const std::string& json() const { return json_; }

 private:
  std::string_view key_;
  std::string json_;
};

using Fields = std::initializer_list<Field>;

struct Options {
  std::string component = "plfm";  // the "component" field of every line
  Level level = Level::kInfo;
  std::string file;                // append to this file; empty: stderr
  std::ostream* stream = nullptr;  // write here instead (tests)
};

// (Re)configures the process-wide logger. Without init(), records go to
// stderr with component "plfm" at level info.
void init(const Options& options);
void setLevel(Level level);
[[nodiscard]] bool enabled(Level level);
void flush();

void write(Level level, std::string_view msg, Fields fields = {});

// Renders one record as a JSON line (without the newline). Exposed for tests
// and for components that ship log lines elsewhere.
[[nodiscard]] std::string formatRecord(std::string_view ts, Level level, std::string_view component,
                                       std::string_view msg, Fields fields);

inline void debug(std::string_view msg, Fields f = {}) { write(Level::kDebug, msg, f); }
inline void info(std::string_view msg, Fields f = {}) { write(Level::kInfo, msg, f); }
inline void warn(std::string_view msg, Fields f = {}) { write(Level::kWarn, msg, f); }
inline void error(std::string_view msg, Fields f = {}) { write(Level::kError, msg, f); }

}  // namespace plfm::log
