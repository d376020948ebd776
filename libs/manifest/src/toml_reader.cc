#include "toml_reader.h"

// How toml++ is configured here, and why:
// - Its internal assertions become optimizer assumptions in NDEBUG builds
//   under clang (TOML_ASSERT_ASSUME -> __builtin_assume), and toml++ 3.3
//   breaks some on malformed input ("[=]" reaches parse_key() with '='),
//   which is undefined behaviour. Without NDEBUG they go through TOML_ASSERT,
//   made a no-op here, so the parser's own error paths run instead; the
//   fuzzer (built with sanitizers) watches those paths.
// - TOML_EXCEPTIONS=0: syntax errors come back as values. Every toml++ user
//   in the tree (cli/vt/src/config.cc, libs/core/src/config_table.cc) uses
//   this same configuration: they share binaries, and two configurations of
//   its inline functions in one program are an ODR violation.
// toml++ is included only in this file.
#pragma push_macro("NDEBUG")
#undef NDEBUG
#define TOML_ASSERT(expr) static_cast<void>(0)
#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>
#pragma pop_macro("NDEBUG")

#include <algorithm>
#include <climits>
#include <exception>
#include <initializer_list>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "rules.h"

namespace plfm::manifest {
namespace {

Position pos(const toml::source_region& r) {
  return Position{static_cast<int>(r.begin.line), static_cast<int>(r.begin.column)};
}

// What a node is, for "got ...". `showValue` is false for env values, which
// may be sensitive.
std::string describe(const toml::node& n, bool showValue = true) {
  switch (n.type()) {
    case toml::node_type::string:
      return showValue ? rules::quote(n.as_string()->get()) : "a string";
    case toml::node_type::integer:
      return showValue ? std::to_string(n.as_integer()->get()) : "an integer";
    case toml::node_type::floating_point: {
      if (!showValue) return "a float";
      std::ostringstream out;
      out << n.as_floating_point()->get();
      return out.str() + " (a float)";
    }
    case toml::node_type::boolean:
      if (!showValue) return "a boolean";
      return n.as_boolean()->get() ? "true" : "false";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// "1GB" -> "1GiB": the decimal units people often write by habit.
std::string sizeHint(std::string_view s) {
  size_t n = 0;
  while (n < s.size() && s[n] >= '0' && s[n] <= '9') ++n;
  if (n == 0 || n + 3 < s.size()) return "";
  std::string unit = rules::toLowerAscii(s.substr(n));
  if (!unit.empty() && unit.back() == 'b') unit.pop_back();
  if (!unit.empty() && unit.back() == 'i') unit.pop_back();
  if (unit == "k" || unit == "m" || unit == "g" || unit == "t") {
    const char u = static_cast<char>(unit[0] - 'a' + 'A');
    return "did you mean \"" + std::string(s.substr(0, n)) + u + "iB\"?";
  }
  return "";
}

class Reader {
 public:
  explicit Reader(Sink& sink) : sink_(sink) {}

  Manifest read(const toml::table& root) {
    Manifest m;
    sink_.locate("", pos(root.source()));
    keys(
        root, "",
        {"app", "image", "processes", "services", "env", "secrets", "volumes", "checks", "deploy"});
    if (auto v = str(root, "app", "app")) m.app = *v;
    if (auto v = str(root, "image", "image")) m.image = *v;
    readProcesses(root, m);
    readServices(root, m);
    readVolumes(root, m);
    readChecks(root, m);
    readEnv(root, m);
    readSecrets(root, m);
    readDeploy(root, m);
    return m;
  }

 private:
  void bad(const std::string& path, std::string message, std::string hint = "") {
    sink_.report(path, std::move(message), std::move(hint));
    sink_.markBad(path);
  }

  // Reports every key of `t` outside `allowed`, at the key.
  void keys(const toml::table& t, const std::string& path,
            std::initializer_list<std::string_view> allowed, std::string_view extraHint = "",
            bool skipTables = false) {
    std::string list;
    for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    for (auto&& entry : t) {
      if (skipTables && entry.second.is_table()) continue;
      const toml::key& k = entry.first;
      const std::string_view name = k.str();
      if (std::find(allowed.begin(), allowed.end(), name) != allowed.end()) continue;
      std::string hint = didYouMean(name, std::vector<std::string_view>(allowed));
      if (hint.empty()) hint = std::string(extraHint);
      sink_.reportAt(pos(k.source()), keyPath(path, name), "unknown key, expected one of: " + list,
                     std::move(hint));
    }
  }

  const toml::node* field(const toml::table& t, std::string_view key, const std::string& path) {
    const toml::node* n = t.get(key);
    if (n != nullptr) sink_.locate(path, pos(n->source()));
    return n;
  }

  std::optional<std::string> str(const toml::table& t, std::string_view key,
                                 const std::string& path, std::string_view expected = "a string") {
    const toml::node* n = field(t, key, path);
    if (n == nullptr) return std::nullopt;
    if (!n->is_string()) {
      bad(path, "expected " + std::string(expected) + ", got " + describe(*n));
      return std::nullopt;
    }
    return n->as_string()->get();
  }

  // Range checks happen in checkManifest; here only values that do not even
  // fit in an int are turned away.
  std::optional<int> integer(const toml::table& t, std::string_view key, const std::string& path,
                             rules::IntRange range) {
    const toml::node* n = field(t, key, path);
    if (n == nullptr) return std::nullopt;
    if (!n->is_integer()) {
      bad(path, "expected " + range.expected() + ", got " + describe(*n));
      return std::nullopt;
    }
    const std::int64_t v = n->as_integer()->get();
    if (v < INT_MIN || v > INT_MAX) {
      bad(path, "expected " + range.expected() + ", got " + std::to_string(v));
      return std::nullopt;
    }
    return static_cast<int>(v);
  }

  std::optional<bool> boolean(const toml::table& t, std::string_view key, const std::string& path) {
    const toml::node* n = field(t, key, path);
    if (n == nullptr) return std::nullopt;
    if (!n->is_boolean()) {
      bad(path, "expected true or false, got " + describe(*n));
      return std::nullopt;
    }
    return n->as_boolean()->get();
  }

  // An array of strings; a non-string element becomes "" and is marked bad.
  std::optional<std::vector<std::string>> strings(const toml::table& t, std::string_view key,
                                                  const std::string& path) {
    const toml::node* n = field(t, key, path);
    if (n == nullptr) return std::nullopt;
    const toml::array* arr = n->as_array();
    if (arr == nullptr) {
      bad(path, R"(expected an array of strings, like ["a", "b"], got )" + describe(*n));
      return std::nullopt;
    }
    std::vector<std::string> out;
    out.reserve(arr->size());
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::node& el = *arr->get(i);
      const std::string p = indexPath(path, i);
      sink_.locate(p, pos(el.source()));
      if (el.is_string()) {
        out.push_back(el.as_string()->get());
      } else {
        bad(p, "expected a string, got " + describe(el));
        out.emplace_back();
      }
    }
    return out;
  }

  std::optional<std::int64_t> duration(const toml::table& t, std::string_view key,
                                       const std::string& path) {
    constexpr std::string_view kExpected = R"(a duration like "10s", "500ms" or "1m30s")";
    auto s = str(t, key, path, kExpected);
    if (!s) return std::nullopt;
    auto ms = rules::parseDuration(*s);
    if (!ms) bad(path, "expected " + std::string(kExpected) + ", got " + rules::quote(*s));
    return ms;
  }

  const toml::table* table(const toml::node& n, const std::string& path, std::string_view example) {
    const toml::table* t = n.as_table();
    if (t == nullptr) {
      bad(path, "expected a table like " + std::string(example) + ", got " + describe(n));
    }
    return t;
  }

  const toml::table* subTable(const toml::table& t, std::string_view key, const std::string& path,
                              std::string_view example) {
    const toml::node* n = field(t, key, path);
    return n == nullptr ? nullptr : table(*n, path, example);
  }

  // [[name]] sections; each element must be a table.
  std::vector<const toml::table*> tableArray(const toml::table& t, std::string_view key,
                                             const std::string& path) {
    std::vector<const toml::table*> out;
    const toml::node* n = field(t, key, path);
    if (n == nullptr) return out;
    const toml::array* arr = n->as_array();
    if (arr == nullptr) {
      bad(path, "expected an array of tables: write [[" + path + "]], not [" + path + "]");
      return out;
    }
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::node& el = *arr->get(i);
      const std::string p = indexPath(path, i);
      sink_.locate(p, pos(el.source()));
      const toml::table* elt = el.as_table();
      if (elt == nullptr) {
        bad(p, "expected a table, got " + describe(el));
        continue;
      }
      out.push_back(elt);
    }
    return out;
  }

  // The process a service, volume or check gets when it names none: the only
  // one. With several, naming it is required.
  std::string defaultProcess(const Manifest& m, const std::string& path) {
    if (m.processes.size() == 1) return m.processes.front().name;
    if (m.processes.size() > 1) {
      std::string names;
      for (const auto& p : m.processes) names += (names.empty() ? "" : ", ") + p.name;
      bad(path, "required when there are several processes: expected one of " + names);
    } else {
      sink_.markBad(path);  // "no processes" is reported once, on its own
    }
    return "";
  }

  void readProcesses(const toml::table& root, Manifest& m) {
    const toml::table* procs = subTable(root, "processes", "processes", "[processes.web]");
    if (procs == nullptr) {
      if (root.contains("processes")) sink_.markBad("processes");
      return;
    }
    for (auto&& entry : *procs) {
      const toml::key& k = entry.first;
      const std::string path = keyPath("processes", k.str());
      sink_.locate(path, pos(k.source()));
      const toml::table* t = table(entry.second, path, "[" + path + "]");
      Process p;
      p.name = std::string(k.str());
      if (t != nullptr) {
        keys(*t, path, {"command", "args", "resources"});
        if (auto v = strings(*t, "command", path + ".command")) p.command = std::move(*v);
        if (auto v = strings(*t, "args", path + ".args")) p.args = std::move(*v);
        const std::string rpath = path + ".resources";
        if (const auto* r = subTable(*t, "resources", rpath, "[" + rpath + "]")) {
          keys(*r, rpath, {"vcpus", "memory_mb"});
          if (auto v = integer(*r, "vcpus", rpath + ".vcpus", rules::kVcpus)) {
            p.resources.vcpus = *v;
          }
          if (auto v = integer(*r, "memory_mb", rpath + ".memory_mb", rules::kMemoryMb)) {
            p.resources.memory_mb = *v;
          }
        }
      }
      m.processes.push_back(std::move(p));
    }
  }

  void readServices(const toml::table& root, Manifest& m) {
    const auto services = tableArray(root, "services", "services");
    for (size_t i = 0; i < services.size(); ++i) {
      const toml::table& t = *services[i];
      const std::string path = indexPath("services", i);
      keys(t, path, {"process", "internal_port", "protocol", "routes"});
      Service s;
      if (auto v = str(t, "process", path + ".process")) {
        s.process = *v;
      } else if (!t.contains("process")) {
        s.process = defaultProcess(m, path + ".process");
      }
      if (auto v = integer(t, "internal_port", path + ".internal_port", rules::kPort)) {
        s.internal_port = *v;
      }
      if (auto v = str(t, "protocol", path + ".protocol")) s.protocol = *v;
      const auto routes = tableArray(t, "routes", path + ".routes");
      for (size_t j = 0; j < routes.size(); ++j) {
        const toml::table& rt = *routes[j];
        const std::string rpath = indexPath(path + ".routes", j);
        keys(rt, rpath, {"hostname", "port", "proxy_protocol"});
        Route r;
        if (auto v = str(rt, "hostname", rpath + ".hostname")) r.hostname = *v;
        if (auto v = integer(rt, "port", rpath + ".port", rules::kPort)) r.port = *v;
        if (auto v = str(rt, "proxy_protocol", rpath + ".proxy_protocol")) r.proxy_protocol = *v;
        s.routes.push_back(std::move(r));
      }
      m.services.push_back(std::move(s));
    }
  }

  void readVolumes(const toml::table& root, Manifest& m) {
    const auto volumes = tableArray(root, "volumes", "volumes");
    for (size_t i = 0; i < volumes.size(); ++i) {
      const toml::table& t = *volumes[i];
      const std::string path = indexPath("volumes", i);
      keys(t, path, {"name", "mount", "size", "process", "backup_every", "backup_keep"});
      Volume v;
      if (auto s = str(t, "name", path + ".name")) v.name = *s;
      if (auto s = str(t, "mount", path + ".mount")) v.mount = *s;
      if (auto s = str(t, "process", path + ".process")) {
        v.process = *s;
      } else if (!t.contains("process")) {
        v.process = defaultProcess(m, path + ".process");
      }
      constexpr std::string_view kSize = R"(a size like "512MiB" or "10GiB")";
      const std::string spath = path + ".size";
      if (auto s = str(t, "size", spath, kSize)) {
        if (auto bytes = rules::parseSize(*s)) {
          v.size_bytes = *bytes;
        } else {
          bad(spath,
              "expected " + std::string(kSize) + " (units B, KiB, MiB, GiB, TiB), got " +
                  rules::quote(*s),
              sizeHint(*s));
        }
      }
      constexpr std::string_view kEvery = R"(a duration like "15m", "1h" or "24h", or "off")";
      const std::string epath = path + ".backup_every";
      if (auto s = str(t, "backup_every", epath, kEvery)) {
        if (auto seconds = rules::parseBackupEvery(*s)) {
          v.backup_every_seconds = *seconds;
        } else {
          bad(epath,
              "expected " + std::string(kEvery) + " (units s, m, h), got " + rules::quote(*s));
        }
      }
      if (auto keep = integer(t, "backup_keep", path + ".backup_keep", rules::kBackupKeep)) {
        v.backup_keep = *keep;
      }
      m.volumes.push_back(std::move(v));
    }
  }

  // `skipTables`: tables in `t` were reported already (mixed check forms).
  void readCheck(const toml::table& t, const std::string& path, Check& c, bool skipTables = false) {
    keys(t, path,
         {"type", "port", "path", "command", "interval", "timeout", "grace", "failure_threshold"},
         "", skipTables);
    if (auto v = str(t, "type", path + ".type")) c.type = *v;
    if (auto v = integer(t, "port", path + ".port", rules::kPort)) c.port = *v;
    if (auto v = str(t, "path", path + ".path")) {
      c.path = *v;
    } else if (c.type == "http" && !t.contains("path")) {
      c.path = "/";
    }
    if (auto v = strings(t, "command", path + ".command")) c.command = std::move(*v);
    if (auto v = duration(t, "interval", path + ".interval")) c.interval_ms = *v;
    if (auto v = duration(t, "timeout", path + ".timeout")) c.timeout_ms = *v;
    if (auto v = duration(t, "grace", path + ".grace")) c.grace_ms = *v;
    if (auto v = integer(t, "failure_threshold", path + ".failure_threshold",
                         rules::kFailureThreshold)) {
      c.failure_threshold = *v;
    }
  }

  // [checks.<process>] tables, or, for an app with one process, the check
  // written directly under [checks].
  void readChecks(const toml::table& root, Manifest& m) {
    const toml::table* checks = subTable(root, "checks", "checks", "[checks.web]");
    if (checks == nullptr) return;
    bool direct = false;
    for (auto&& entry : *checks) direct = direct || !entry.second.is_table();
    if (!direct) {
      for (auto&& entry : *checks) {
        const toml::key& k = entry.first;
        const std::string path = keyPath("checks", k.str());
        sink_.locate(path, pos(k.source()));
        Check c;
        c.process = std::string(k.str());
        readCheck(*entry.second.as_table(), path, c);
        m.checks.push_back(std::move(c));
      }
      return;
    }
    // Mixed forms: every table here would be read as a per-process check.
    for (auto&& entry : *checks) {
      if (!entry.second.is_table()) continue;
      const toml::key& k = entry.first;
      sink_.reportAt(pos(k.source()), keyPath("checks", k.str()),
                     "a [checks.<process>] table cannot be mixed with a check written directly "
                     "under [checks]");
    }
    if (m.processes.size() > 1) {
      bad("checks",
          "a check written directly under [checks] needs exactly one process; with several, "
          "write one [checks.<process>] table per process");
      return;
    }
    if (m.processes.empty()) return;
    Check c;
    c.process = m.processes.front().name;
    const std::string path = keyPath("checks", c.process);
    sink_.alias(path, "checks");
    readCheck(*checks, path, c, true);
    m.checks.push_back(std::move(c));
  }

  void readEnv(const toml::table& root, Manifest& m) {
    const toml::table* env = subTable(root, "env", "env", "[env]");
    if (env == nullptr) return;
    for (auto&& entry : *env) {
      const toml::key& k = entry.first;
      const std::string path = keyPath("env", k.str());
      sink_.locate(path, pos(k.source()));
      if (entry.second.is_string()) {
        m.env[std::string(k.str())] = entry.second.as_string()->get();
      } else {
        const bool scalar = entry.second.is_integer() || entry.second.is_boolean() ||
                            entry.second.is_floating_point();
        bad(path, "expected a string, got " + describe(entry.second, false),
            scalar ? "env values are strings: " + path.substr(4) + " = \"...\"" : "");
        m.env[std::string(k.str())] = "";
      }
    }
  }

  void readSecrets(const toml::table& root, Manifest& m) {
    const toml::table* secrets = subTable(root, "secrets", "secrets", "[secrets]");
    if (secrets == nullptr) return;
    keys(*secrets, "secrets", {"names", "export_env"},
         "vt.toml lists secret names only, as names = [\"DATABASE_URL\"]; values are set with "
         "the CLI and never stored here");
    if (auto v = strings(*secrets, "names", "secrets.names")) m.secrets = std::move(*v);
    if (auto v = boolean(*secrets, "export_env", "secrets.export_env")) {
      m.secrets_export_env = *v;
    }
  }

  void readDeploy(const toml::table& root, Manifest& m) {
    const toml::table* d = subTable(root, "deploy", "deploy", "[deploy]");
    if (d == nullptr) return;
    keys(*d, "deploy",
         {"strategy", "max_surge", "max_unavailable", "progress_deadline", "drain_timeout",
          "auto_rollback"});
    if (auto v = str(*d, "strategy", "deploy.strategy")) m.deploy.strategy = *v;
    if (auto v = integer(*d, "max_surge", "deploy.max_surge", rules::kMaxSurge)) {
      m.deploy.max_surge = *v;
    }
    if (auto v = integer(*d, "max_unavailable", "deploy.max_unavailable", rules::kMaxUnavailable)) {
      m.deploy.max_unavailable = *v;
    }
    if (auto v = duration(*d, "progress_deadline", "deploy.progress_deadline")) {
      m.deploy.progress_deadline_ms = *v;
    }
    if (auto v = duration(*d, "drain_timeout", "deploy.drain_timeout")) {
      m.deploy.drain_timeout_ms = *v;
    }
    if (auto v = boolean(*d, "auto_rollback", "deploy.auto_rollback")) m.deploy.auto_rollback = *v;
  }

  Sink& sink_;
};

}  // namespace

std::optional<std::pair<Position, std::string>> tomlSyntaxError(std::string_view text) {
  try {
    toml::parse_result parsed = toml::parse(text);
    if (parsed) return std::nullopt;
    return std::pair(pos(parsed.error().source()), std::string(parsed.error().description()));
  } catch (const std::exception& e) {
    return std::pair(Position{}, std::string("cannot parse the manifest: ") + e.what());
  }
}

std::optional<Manifest> readToml(std::string_view text, Sink& sink) {
  // Only allocation failures can throw here; they must not escape either.
  try {
    toml::parse_result parsed = toml::parse(text);
    if (!parsed) {
      const toml::parse_error& e = parsed.error();
      sink.reportAt(pos(e.source()), "", std::string(e.description()));
      return std::nullopt;
    }
    return Reader(sink).read(parsed.table());
  } catch (const std::exception& e) {
    sink.reportAt({}, "", std::string("cannot parse the manifest: ") + e.what());
    return std::nullopt;
  }
}

}  // namespace plfm::manifest
