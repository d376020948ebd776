// `vt` contexts: which control plane to talk to, with which token, and the
// default org, app and env. Stored in $XDG_CONFIG_HOME/vt/config.toml
// (mode 0600, since it holds tokens), one [contexts.<name>] table each, plus
// `current = "<name>"`.
//
// Precedence, highest first: command-line flags (--context, --org, --app,
// --env), environment (VT_CONTEXT, VT_URL, VT_TOKEN, VT_CA_FILE, VT_ORG, VT_APP,
// VT_ENV),
// the selected context. VT_CONFIG_DIR overrides the directory (tests use it).
//
// A context's `url` is one URL or an array of them, one per control-plane
// replica (docs/specs/cli/vt.md, "Contexts"): vt tries them in order.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::vt {

struct Context {
  std::string name;
  // "https://cp.example:8443", "http://[::1]:8080": one per control-plane
  // replica, tried in order.
  std::vector<std::string> urls;
  std::string token;    // "vt_..."; never printed
  std::string ca_file;  // PEM CA that signed the control plane's certificate; "" = system
  std::string org;      // name or id; "" when unset
  std::string app;
  std::string env;
};

struct Config {
  std::string current;
  std::map<std::string, Context> contexts;
};

[[nodiscard]] std::filesystem::path configDir();
[[nodiscard]] std::filesystem::path configPath();

// A missing file is an empty config; a malformed one is an error naming the
// file, line and key.
[[nodiscard]] Result<Config> loadConfig(const std::filesystem::path& path);
// Atomic write, mode 0600; creates the directory (0700).
[[nodiscard]] Result<void> saveConfig(const std::filesystem::path& path, const Config& config);

// Context names: 1-63 of [A-Za-z0-9._-].
[[nodiscard]] bool validContextName(std::string_view name);

}  // namespace plfm::vt

namespace plfm::vt {
// The top-level `app` of a manifest file, or "" when the file is missing,
// unparsable or has none. Used to default --app inside a project directory.
[[nodiscard]] std::string manifestAppName(const std::filesystem::path& path);
}  // namespace plfm::vt
