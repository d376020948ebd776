// Rendering for `vt`: tables, JSON, receipts and progress.
//
// The contract (docs/specs/cli/output.md):
// - stdout carries the result only: a table (default on a terminal) or JSON
//   (`--format json`, and the default when stdout is not a terminal).
// - stderr carries progress, warnings and errors, so JSON never mixes with
//   progress text.
// - Tables have a fixed column order; callers sort rows by a stable key.
// - JSON is pretty-printed with sorted keys.
// - Colour only on a terminal, and never when NO_COLOR is set.
// - --quiet prints only IDs (one per line) and errors.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace plfm::vt {

enum class Format { kTable, kJson };

// What a mutating command did: shown as text, or as
// {"action","ids","message","next","result"} in JSON.
struct Receipt {
  std::string action{};              // "app.created"
  std::string message{};             // "Created app hello (app_01...)"
  std::vector<std::string> ids{};    // what changed
  std::vector<std::string> notes{};  // extra lines, e.g. "also created env prod"
  std::vector<std::string> next{};   // exact commands to run next
};

class Output {
 public:
  // `color` is for stdout, `err_color` for stderr (warnings and errors).
  Output(std::ostream& out, std::ostream& err, Format format, bool quiet, bool color,
         bool err_color);

  [[nodiscard]] Format format() const { return format_; }
  [[nodiscard]] bool quiet() const { return quiet_; }
  [[nodiscard]] bool color() const { return color_; }
  [[nodiscard]] bool errColor() const { return err_color_; }

  // rows are printed in the order given.
  void table(const std::vector<std::string>& headers,
             const std::vector<std::vector<std::string>>& rows);
  // "key: value" lines for a single resource.
  void fields(const std::vector<std::pair<std::string, std::string>>& kv);
  void json(const nlohmann::json& value);
  void line(const std::string& text);  // a plain stdout line (table mode only)
  // A receipt; `result` is the resource in JSON mode. `ok` false marks what
  // failed (a ✗ instead of the ✓).
  void receipt(const Receipt& r, const nlohmann::json& result, bool ok = true);
  // To stderr, unless --quiet.
  void progress(const std::string& text);
  void warn(const std::string& text);
  // One line on stderr: "error: <message>" plus an optional "hint: ...".
  void error(const std::string& message, const std::string& hint);

  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }

 private:
  [[nodiscard]] std::string paint(const std::string& text, const char* code) const;

  std::ostream& out_;
  std::ostream& err_;
  Format format_;
  bool quiet_;
  bool color_;
  bool err_color_;
};

// Whether colour is allowed for a stream (a terminal, NO_COLOR unset, TERM
// not "dumb").
[[nodiscard]] bool colorAllowed(int fd);

// j[key], or null when j is not an object or has no such key. Use it on
// const JSON from the server: operator[] on a const json with a missing key
// is undefined behaviour, and a server of another version may leave a field
// out. (A null where a string is needed then throws, which cli.cc reports.)
[[nodiscard]] const nlohmann::json& field(const nlohmann::json& j, std::string_view key);

// Values for table cells: null -> "-", strings as-is, others dumped.
[[nodiscard]] std::string cell(const nlohmann::json& v);
// "2026-11-26T11:46:40.123456Z" -> "2026-11-26 11:46:40" for tables.
[[nodiscard]] std::string shortTime(const nlohmann::json& v);
// A --ttl value: "90s", "15m", "12h", "30d" or plain seconds -> seconds; -1
// when malformed.
[[nodiscard]] int64_t parseDuration(const std::string& s);

}  // namespace plfm::vt
