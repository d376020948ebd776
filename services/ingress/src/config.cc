#include "config.h"

#include <cstdlib>
#include <utility>

#include "plfm/core/config_table.h"
#include "plfm/core/log.h"
#include "plfm/http/failover.h"
#include "plfm/net/proxy_protocol.h"

namespace plfm::ingress {

namespace {

// The file's settings, each with its type and range; [section] tables make
// dotted keys ("timeouts.connect_ms").
config::ConfigTable settings(Config& cfg) {
  const config::ListRule addresses{"must be an array of addresses like \"[::1]:443\"",
                                   "must contain strings like \"[::1]:443\""};
  config::ConfigTable t;
  t.string("state_dir", cfg.state_dir)
      .string("log_level", cfg.log_level)
      .string("log_file", cfg.log_file)
      .strings("listen", cfg.listen, addresses)
      .strings("metrics_listen", cfg.metrics_listen, addresses)
      .integer("workers", 1, 64, cfg.workers)
      .add("source.kind",
           [&cfg](const config::Entry& e) -> Result<void> {
             const std::string* v = e.string();
             if (v != nullptr && *v == "file") {
               cfg.source = SourceKind::kFile;
             } else if (v != nullptr && *v == "edge-feed") {
               cfg.source = SourceKind::kEdgeFeed;
             } else {
               return e.invalid(R"(must be "file" or "edge-feed")");
             }
             return ok();
           })
      .string("source.routes_file", cfg.routes_file)
      .duration("source.watch_interval_ms", 0, 3'600'000, cfg.watch_interval)
      .add("source.edge_url",
           [&cfg](const config::Entry& e) -> Result<void> {
             // One URL or an array of them (the control plane's replicas).
             std::vector<std::string> urls;
             if (const std::string* v = e.string()) urls.push_back(*v);
             for (const config::Scalar& item : e.items) {
               const auto* s = std::get_if<std::string>(&item);
               if (s == nullptr) return e.invalid("must contain URL strings");
               urls.push_back(*s);
             }
             if (urls.empty()) return e.invalid("must be a URL or an array of URLs");
             cfg.edge_urls = std::move(urls);
             return ok();
           })
      .string("source.edge_token_file", cfg.edge_token_file)
      .string("source.edge_ca_file", cfg.edge_ca_file)
      .boolean("source.edge_unsafe_plain_http", cfg.edge_unsafe_plain_http)
      .duration("source.edge_wait_seconds", 1, 300, cfg.edge_wait)
      .duration("timeouts.client_hello_ms", 10, 600'000, cfg.client_hello_timeout)
      .duration("timeouts.connect_ms", 10, 600'000, cfg.connect_timeout)
      .duration("timeouts.idle_ms", 100, int64_t{86'400'000} * 7, cfg.idle_timeout)
      .duration("timeouts.shutdown_grace_seconds", 0, 600, cfg.shutdown_grace)
      .integer("limits.max_connections", 1, 10'000'000, cfg.max_connections)
      .integer("limits.connect_attempts", 1, 64, cfg.connect_attempts)
      .duration("limits.backend_holdoff_ms", 0, 600'000, cfg.backend_holdoff)
      .duration("health.check_interval_ms", 0, 3'600'000, cfg.health_interval)
      .duration("health.check_timeout_ms", 10, 60'000, cfg.health_timeout)
      .integer("limits.backlog", 1, 65535, cfg.backlog)
      .boolean("limits.defer_accept", cfg.defer_accept);
  return t;
}

}  // namespace

Result<void> loadConfigFile(const std::string& path, Config& cfg) {
  return settings(cfg).load(path);
}

Result<void> applyEnv(Config& cfg) {
  using config::envValue;
  if (const char* v = envValue("PLFM_INGRESS_LISTEN")) cfg.listen = config::splitList(v);
  if (const char* v = envValue("PLFM_INGRESS_METRICS_LISTEN"))
    cfg.metrics_listen = config::splitList(v);
  if (const char* v = envValue("PLFM_INGRESS_STATE_DIR")) cfg.state_dir = v;
  if (const char* v = envValue("PLFM_INGRESS_ROUTES_FILE")) {
    cfg.routes_file = v;
    cfg.source = SourceKind::kFile;
  }
  if (const char* v = envValue("PLFM_INGRESS_EDGE_URL")) {
    cfg.edge_urls = config::splitList(v);
    cfg.source = SourceKind::kEdgeFeed;
  }
  if (const char* v = envValue("PLFM_INGRESS_EDGE_TOKEN_FILE")) cfg.edge_token_file = v;
  if (const char* v = envValue("PLFM_INGRESS_EDGE_CA_FILE")) cfg.edge_ca_file = v;
  if (const char* v = envValue("PLFM_INGRESS_LOG_LEVEL")) cfg.log_level = v;
  if (const char* v = envValue("PLFM_INGRESS_LOG_FILE")) cfg.log_file = v;
  if (const char* v = envValue("PLFM_INGRESS_WORKERS")) {
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

Result<void> validate(Config& cfg, std::string_view edge_url_setting) {
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
    if (cfg.edge_urls.empty()) {
      return invalid(
          "source.edge_url (or --edge-url) is required with source.kind = \"edge-feed\": the "
          "control plane's https://, http:// or unix: URL, one per replica",
          "source.edge_url");
    }
    PLFM_ASSIGN_OR_RETURN(cfg.edge_urls, http::parseBaseUrls(edge_url_setting, cfg.edge_urls));
    if (cfg.edge_token_file.empty()) {
      return invalid("source.edge_token_file is required with source.kind = \"edge-feed\"",
                     "source.edge_token_file");
    }
  }
  return ok();
}

}  // namespace plfm::ingress
