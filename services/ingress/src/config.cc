#include "config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <utility>

#include "plfm/core/log.h"
#include "plfm/core/strings.h"
#include "plfm/net/proxy_protocol.h"

namespace plfm::ingress {

namespace {

using Setter = std::function<Result<void>(const toml::node&)>;

struct Ctx {
  const std::string& file;
  const std::string& key;
  const toml::node& node;

  [[nodiscard]] Error bad(const std::string& what) const {
    const auto& b = node.source().begin;
    return Error(errc::kInvalidArgument, file + ":" + std::to_string(b.line) + ":" +
                                             std::to_string(b.column) + ": '" + key + "' " + what)
        .with("field", key);
  }
};

std::vector<std::string> splitComma(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

class Settings {
 public:
  Settings(const std::string& file, Config& cfg) : file_(file) {
    str("state_dir", cfg.state_dir);
    str("log_level", cfg.log_level);
    str("log_file", cfg.log_file);
    list("listen", cfg.listen);
    list("metrics_listen", cfg.metrics_listen);
    integer("workers", 1, 64, [&cfg](int64_t v) { cfg.workers = static_cast<int>(v); });
    add("source.kind", [&cfg](const Ctx& c) -> Result<void> {
      auto v = c.node.value<std::string>();
      if (v && *v == "file") {
        cfg.source = SourceKind::kFile;
      } else if (v && *v == "edge-feed") {
        cfg.source = SourceKind::kEdgeFeed;
      } else {
        return c.bad(R"(must be "file" or "edge-feed")");
      }
      return ok();
    });
    str("source.routes_file", cfg.routes_file);
    millis("source.watch_interval_ms", 0, 3'600'000, cfg.watch_interval);
    str("source.edge_url", cfg.edge_url);
    str("source.edge_token_file", cfg.edge_token_file);
    str("source.edge_ca_file", cfg.edge_ca_file);
    add("source.edge_unsafe_plain_http", [&cfg](const Ctx& c) -> Result<void> {
      const auto* v = c.node.as_boolean();
      if (v == nullptr) return c.bad("must be true or false");
      cfg.edge_unsafe_plain_http = v->get();
      return ok();
    });
    integer("source.edge_wait_seconds", 1, 300,
            [&cfg](int64_t v) { cfg.edge_wait = std::chrono::seconds(v); });
    millis("timeouts.client_hello_ms", 10, 600'000, cfg.client_hello_timeout);
    millis("timeouts.connect_ms", 10, 600'000, cfg.connect_timeout);
    millis("timeouts.idle_ms", 100, int64_t{86'400'000} * 7, cfg.idle_timeout);
    integer("timeouts.shutdown_grace_seconds", 0, 600,
            [&cfg](int64_t v) { cfg.shutdown_grace = std::chrono::seconds(v); });
    integer("limits.max_connections", 1, 10'000'000,
            [&cfg](int64_t v) { cfg.max_connections = static_cast<size_t>(v); });
    integer("limits.connect_attempts", 1, 64,
            [&cfg](int64_t v) { cfg.connect_attempts = static_cast<int>(v); });
    millis("limits.backend_holdoff_ms", 0, 600'000, cfg.backend_holdoff);
    millis("health.check_interval_ms", 0, 3'600'000, cfg.health_interval);
    millis("health.check_timeout_ms", 10, 60'000, cfg.health_timeout);
    integer("limits.backlog", 1, 65535, [&cfg](int64_t v) { cfg.backlog = static_cast<int>(v); });
    add("limits.defer_accept", [&cfg](const Ctx& c) -> Result<void> {
      const auto* v = c.node.as_boolean();  // value<bool>() would take 0 and 1
      if (v == nullptr) return c.bad("must be true or false");
      cfg.defer_accept = v->get();
      return ok();
    });
  }

  Result<void> apply(const toml::table& t, const std::string& prefix) {
    for (auto&& entry : t) {
      const std::string key = prefix + std::string(entry.first.str());
      const toml::node& node = entry.second;
      if (const auto* sub = node.as_table()) {
        PLFM_TRY(apply(*sub, key + "."));
        continue;
      }
      auto it = std::find_if(setters_.begin(), setters_.end(),
                             [&key](const auto& s) { return s.first == key; });
      if (it == setters_.end()) return unknown(key, node);
      PLFM_TRY(it->second(Ctx{file_, key, node}));
    }
    return ok();
  }

 private:
  void add(std::string key, std::function<Result<void>(const Ctx&)> fn) {
    setters_.emplace_back(std::move(key), std::move(fn));
  }
  void str(const std::string& key, std::string& out) {
    add(key, [&out](const Ctx& c) -> Result<void> {
      auto v = c.node.value<std::string>();
      if (!v) return c.bad("must be a string");
      out = *v;
      return ok();
    });
  }
  void list(const std::string& key, std::vector<std::string>& out) {
    add(key, [&out](const Ctx& c) -> Result<void> {
      const auto* arr = c.node.as_array();
      if (arr == nullptr) return c.bad("must be an array of addresses like \"[::1]:443\"");
      std::vector<std::string> values;
      for (auto&& el : *arr) {
        auto v = el.value<std::string>();
        if (!v) return c.bad("must contain strings like \"[::1]:443\"");
        values.push_back(*v);
      }
      out = std::move(values);
      return ok();
    });
  }
  void integer(const std::string& key, int64_t lo, int64_t hi, std::function<void(int64_t)> set) {
    add(key, [lo, hi, set = std::move(set)](const Ctx& c) -> Result<void> {
      auto v = c.node.value<int64_t>();
      if (!v || *v < lo || *v > hi) {
        return c.bad("must be an integer " + std::to_string(lo) + ".." + std::to_string(hi));
      }
      set(*v);
      return ok();
    });
  }
  void millis(const std::string& key, int64_t lo, int64_t hi, std::chrono::milliseconds& out) {
    integer(key, lo, hi, [&out](int64_t v) { out = std::chrono::milliseconds(v); });
  }

  Error unknown(const std::string& key, const toml::node& node) const {
    std::vector<std::string_view> known;
    known.reserve(setters_.size());
    for (const auto& s : setters_) known.emplace_back(s.first);
    std::string hint;
    if (auto m = closestMatch(key, known)) hint = "; did you mean '" + *m + "'?";
    return Ctx{file_, key, node}.bad("is not a known setting" + hint);
  }

  const std::string& file_;
  std::vector<std::pair<std::string, std::function<Result<void>(const Ctx&)>>> setters_;
};

}  // namespace

Result<void> loadConfigFile(const std::string& path, Config& cfg) {
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    return Error(errc::kInvalidArgument, path + ":" + std::to_string(b.line) + ":" +
                                             std::to_string(b.column) + ": " +
                                             std::string(e.description()));
  }
  Settings settings(path, cfg);
  return settings.apply(t, "");
}

Result<void> applyEnv(Config& cfg) {
  auto env = [](const char* name) -> const char* {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? v : nullptr;
  };
  if (const char* v = env("PLFM_INGRESS_LISTEN")) cfg.listen = splitComma(v);
  if (const char* v = env("PLFM_INGRESS_METRICS_LISTEN")) cfg.metrics_listen = splitComma(v);
  if (const char* v = env("PLFM_INGRESS_STATE_DIR")) cfg.state_dir = v;
  if (const char* v = env("PLFM_INGRESS_ROUTES_FILE")) {
    cfg.routes_file = v;
    cfg.source = SourceKind::kFile;
  }
  if (const char* v = env("PLFM_INGRESS_EDGE_URL")) {
    cfg.edge_url = v;
    cfg.source = SourceKind::kEdgeFeed;
  }
  if (const char* v = env("PLFM_INGRESS_EDGE_TOKEN_FILE")) cfg.edge_token_file = v;
  if (const char* v = env("PLFM_INGRESS_EDGE_CA_FILE")) cfg.edge_ca_file = v;
  if (const char* v = env("PLFM_INGRESS_LOG_LEVEL")) cfg.log_level = v;
  if (const char* v = env("PLFM_INGRESS_LOG_FILE")) cfg.log_file = v;
  if (const char* v = env("PLFM_INGRESS_WORKERS")) {
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (*end != '\0' || n < 1 || n > 64) {
      return Error(errc::kInvalidArgument, "PLFM_INGRESS_WORKERS must be an integer 1..64")
          .with("field", "workers");
    }
    cfg.workers = static_cast<int>(n);
  }
  return ok();
}

Result<void> validate(const Config& cfg) {
  auto invalid = [](std::string msg, std::string field) {
    return Error(errc::kInvalidArgument, std::move(msg)).with("field", std::move(field));
  };
  if (cfg.listen.empty()) return invalid("at least one listen address is needed", "listen");
  for (const auto& l : cfg.listen) {
    if (!net::IpEndpoint::parse(l)) {
      return invalid("listen address '" + l + R"(' must look like "[::]:443" or "0.0.0.0:443")",
                     "listen");
    }
  }
  PLFM_TRY(log::parseLevel(cfg.log_level));
  if (cfg.state_dir.empty()) return invalid("state_dir must not be empty", "state_dir");
  if (cfg.source == SourceKind::kFile && cfg.routes_file.empty()) {
    return invalid("source.routes_file is required with source.kind = \"file\" (or --routes)",
                   "source.routes_file");
  }
  if (cfg.source == SourceKind::kEdgeFeed) {
    if (!cfg.edge_url.starts_with("https://") && !cfg.edge_url.starts_with("http://") &&
        !cfg.edge_url.starts_with("unix:")) {
      return invalid("source.edge_url must be an https://, http:// or unix: URL (or --edge-url)",
                     "source.edge_url");
    }
    if (cfg.edge_token_file.empty()) {
      return invalid("source.edge_token_file is required with source.kind = \"edge-feed\"",
                     "source.edge_token_file");
    }
  }
  return ok();
}

}  // namespace plfm::ingress
