#include "config.h"

#include <sys/stat.h>

#include <cstdlib>

#include "plfm/core/process.h"
#include "plfm/core/strings.h"

// toml++ is configured exactly as in libs/manifest/src/toml_reader.cc and
// libs/core/src/config_table.cc (no exceptions, assertions off), because they
// end up in one binary: two configurations of its inline functions in one
// program are an ODR violation (it crashed). Keep the three blocks identical.
// clang-format off
#pragma push_macro("NDEBUG")
#undef NDEBUG
#define TOML_ASSERT(expr) static_cast<void>(0)
#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>
#pragma pop_macro("NDEBUG")
// clang-format on

namespace plfm::vt {
namespace {

std::string envOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe)
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

// TOML basic strings accept JSON's escapes (\" \\ \n \t \uXXXX ...).
std::string quote(std::string_view s) { return "\"" + jsonEscape(s) + "\""; }

Error bad(const std::filesystem::path& path, const toml::source_region& where,
          const std::string& what) {
  return Error(errc::kInvalidArgument, path.string() + ":" + std::to_string(where.begin.line) +
                                           ":" + std::to_string(where.begin.column) + ": " + what)
      .with("file", path.string());
}

}  // namespace

std::filesystem::path configDir() {
  std::string dir = envOr("VT_CONFIG_DIR", "");
  if (!dir.empty()) return dir;
  std::string xdg = envOr("XDG_CONFIG_HOME", "");
  if (!xdg.empty()) return std::filesystem::path(xdg) / "vt";
  return std::filesystem::path(envOr("HOME", "/root")) / ".config" / "vt";
}

std::filesystem::path configPath() { return configDir() / "config.toml"; }

bool validContextName(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Result<Config> loadConfig(const std::filesystem::path& path) {
  Config config;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return config;
  toml::parse_result parsed = toml::parse_file(path.string());
  if (!parsed) {
    return bad(path, parsed.error().source(), std::string(parsed.error().description()));
  }
  const toml::table& t = parsed.table();
  for (auto&& [key, node] : t) {
    if (key.str() == "current") {
      auto v = node.value<std::string>();
      if (!v) return bad(path, node.source(), "`current` must be a string");
      config.current = *v;
    } else if (key.str() == "contexts") {
      const toml::table* contexts = node.as_table();
      if (contexts == nullptr) return bad(path, node.source(), "`contexts` must be a table");
      for (auto&& [name, ctx_node] : *contexts) {
        const toml::table* ctx = ctx_node.as_table();
        if (ctx == nullptr) {
          return bad(path, ctx_node.source(),
                     "contexts." + std::string(name.str()) + " must be a table");
        }
        Context c;
        c.name = std::string(name.str());
        for (auto&& [field, value] : *ctx) {
          if (field.str() == "url" && value.is_array()) {
            // One URL per control-plane replica.
            for (auto&& item : *value.as_array()) {
              auto u = item.value<std::string>();
              if (!u) {
                return bad(path, item.source(),
                           "contexts." + c.name + ".url must be a string or an array of strings");
              }
              c.urls.push_back(*u);
            }
            continue;
          }
          auto s = value.value<std::string>();
          if (!s) {
            return bad(path, value.source(),
                       "contexts." + c.name + "." + std::string(field.str()) + " must be a string");
          }
          std::string_view f = field.str();
          if (f == "url") {
            c.urls = {*s};
          } else if (f == "token") {
            c.token = *s;
          } else if (f == "ca_file") {
            c.ca_file = *s;
          } else if (f == "org") {
            c.org = *s;
          } else if (f == "app") {
            c.app = *s;
          } else if (f == "env") {
            c.env = *s;
          } else {
            return bad(path, value.source(),
                       "unknown key contexts." + c.name + "." + std::string(f) +
                           " (expected url, token, ca_file, org, app, env)");
          }
        }
        config.contexts[c.name] = c;
      }
    } else {
      return bad(path, node.source(),
                 "unknown key `" + std::string(key.str()) + "` (expected current, contexts)");
    }
  }
  return config;
}

Result<void> saveConfig(const std::filesystem::path& path, const Config& config) {
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) {
    return Error(errc::kIo, "creating " + path.parent_path().string() + ": " + ec.message());
  }
  ::chmod(path.parent_path().c_str(), 0700);
  std::string text =
      "# vt contexts; written by `vt login` and `vt context use`. Holds tokens: keep it 0600.\n";
  text += "current = " + quote(config.current) + "\n";
  for (const auto& [name, c] : config.contexts) {
    text += "\n[contexts." + quote(name) + "]\n";
    if (c.urls.size() == 1) {
      text += "url = " + quote(c.urls.front()) + "\n";
    } else {
      text += "url = [";
      for (size_t i = 0; i < c.urls.size(); ++i) {
        if (i > 0) text += ", ";
        text += quote(c.urls[i]);
      }
      text += "]\n";
    }
    text += "token = " + quote(c.token) + "\n";
    if (!c.ca_file.empty()) text += "ca_file = " + quote(c.ca_file) + "\n";
    if (!c.org.empty()) text += "org = " + quote(c.org) + "\n";
    if (!c.app.empty()) text += "app = " + quote(c.app) + "\n";
    if (!c.env.empty()) text += "env = " + quote(c.env) + "\n";
  }
  return writeFileAtomic(path.string(), text, 0600);
}

}  // namespace plfm::vt

namespace plfm::vt {
std::string manifestAppName(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return "";
  toml::parse_result parsed = toml::parse_file(path.string());
  if (!parsed) return "";
  return parsed.table()["app"].value_or(std::string());
}
}  // namespace plfm::vt
