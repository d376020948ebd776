#include "config.h"

#include <toml++/toml.h>
#include <cstdlib>

#include "dns_txt.h"
#include "plfm/core/log.h"
#include "plfm/core/strings.h"
#include "plfm/http/http.h"
#include "plfm/reconcile/ipv6.h"

namespace plfm::cp {
namespace {

Error bad(const std::string& file, const toml::source_region& where, const std::string& key,
          const std::string& what) {
  return Error(plfm::errc::kInvalidArgument, file + ":" + std::to_string(where.begin.line) + ":" +
                                                 std::to_string(where.begin.column) + ": '" + key +
                                                 "' " + what)
      .with("field", key);
}

// "quota_<name>" names a quota default.
std::optional<Quota> quotaKey(std::string_view key) {
  for (Quota q : kAllQuotas) {
    if (key.starts_with("quota_") && key.substr(6) == quotaName(q)) return q;
  }
  return std::nullopt;
}

// Bearer tokens, node tokens and secrets files cross the API: plain HTTP only
// where nothing but this host can listen in, unless the operator says so.
Result<void> validateTls(const Config& cfg) {
  if (cfg.tls_cert_file.empty() != cfg.tls_key_file.empty()) {
    return Error(plfm::errc::kInvalidArgument,
                 "TLS needs both tls_cert_file and tls_key_file (--tls-cert, --tls-key)")
        .with("field", cfg.tls_cert_file.empty() ? "tls_cert_file" : "tls_key_file");
  }
  if (!cfg.tls_cert_file.empty() || cfg.unsafe_plain_http) return ok();
  std::vector<std::pair<std::string, std::string_view>> all;
  for (const std::string& l : cfg.listen) all.emplace_back(l, "listen");
  for (const std::string& l : cfg.node_listen) all.emplace_back(l, "node_listen");
  for (const auto& [l, field] : all) {
    if (!http::isLoopbackListen(l)) {
      return Error(plfm::errc::kInvalidArgument,
                   "refusing to serve plain HTTP on " + l +
                       ", which is not a loopback address: configure tls_cert_file and "
                       "tls_key_file (--tls-cert, --tls-key), or pass --unsafe-plain-http "
                       "(unsafe_plain_http = true) to send tokens and secrets unencrypted")
          .with("field", std::string(field));
    }
  }
  return ok();
}

}  // namespace

Result<void> loadConfigFile(const std::string& path, Config& cfg) {
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto& b = e.source().begin;
    return Error(plfm::errc::kInvalidArgument, path + ":" + std::to_string(b.line) + ":" +
                                                   std::to_string(b.column) + ": " +
                                                   std::string(e.description()));
  }
  for (auto&& entry : t) {
    // Lambdas below capture these; clang refuses to capture structured bindings.
    const toml::key& k = entry.first;
    const toml::node& node = entry.second;
    const std::string key(k.str());
    const auto& where = node.source();
    auto str = [&](std::string& out) -> Result<void> {
      auto v = node.value<std::string>();
      if (!v) return bad(path, where, key, "must be a string");
      out = *v;
      return ok();
    };
    auto integer = [&](int64_t lo, int64_t hi) -> Result<int64_t> {
      auto v = node.value<int64_t>();
      if (!v || *v < lo || *v > hi) {
        return bad(path, where, key,
                   "must be an integer " + std::to_string(lo) + ".." + std::to_string(hi));
      }
      return *v;
    };
    auto addresses = [&](std::vector<std::string>& out) -> Result<void> {
      auto* arr = node.as_array();
      if (arr == nullptr || (arr->empty() && key == "listen")) {
        return bad(path, where, key, "must be a non-empty array of addresses");
      }
      out.clear();
      for (auto&& el : *arr) {
        auto v = el.value<std::string>();
        if (!v) return bad(path, where, key, "must contain strings like \"[::1]:8080\"");
        out.push_back(*v);
      }
      return ok();
    };
    if (key == "listen") {
      PLFM_TRY(addresses(cfg.listen));
    } else if (key == "node_listen") {
      PLFM_TRY(addresses(cfg.node_listen));
    } else if (key == "max_connections") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(1, 100'000));
      cfg.max_connections = static_cast<size_t>(v);
    } else if (key == "max_connections_per_source") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(0, 100'000));
      cfg.max_connections_per_source = static_cast<size_t>(v);
    } else if (key == "ipv6_source_prefix") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(32, 128));
      cfg.ipv6_source_prefix = static_cast<int>(v);
    } else if (key == "node_db_pool_size") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(1, 1000));
      cfg.node_db_pool_size = static_cast<int>(v);
    } else if (key == "auth_db_pool_size") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(1, 1000));
      cfg.auth_db_pool_size = static_cast<int>(v);
    } else if (key == "tls_cert_file") {
      PLFM_TRY(str(cfg.tls_cert_file));
    } else if (key == "tls_key_file") {
      PLFM_TRY(str(cfg.tls_key_file));
    } else if (key == "unsafe_plain_http") {
      auto v = node.value<bool>();
      if (!v) return bad(path, where, key, "must be true or false");
      cfg.unsafe_plain_http = *v;
    } else if (key == "database") {
      PLFM_TRY(str(cfg.database));
    } else if (key == "state_dir") {
      PLFM_TRY(str(cfg.state_dir));
    } else if (key == "admin_token_file") {
      PLFM_TRY(str(cfg.admin_token_file));
    } else if (key == "secrets_master_key_file") {
      PLFM_TRY(str(cfg.secrets_master_key_file));
    } else if (key == "relay_signing_key_file") {
      PLFM_TRY(str(cfg.relay_signing_key_file));
    } else if (key == "max_log_followers_per_org") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(1, 10'000));
      cfg.max_log_followers_per_org = static_cast<int>(v);
    } else if (key == "max_exec_sessions_per_org") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(1, 10'000));
      cfg.max_exec_sessions_per_org = static_cast<int>(v);
    } else if (key == "log_level") {
      PLFM_TRY(str(cfg.log_level));
    } else if (key == "log_file") {
      PLFM_TRY(str(cfg.log_file));
    } else if (key == "db_pool_size") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(1, 1000));
      cfg.db_pool_size = static_cast<int>(v);
    } else if (key == "max_body_bytes") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(1024, 64 << 20));
      cfg.max_body_bytes = static_cast<size_t>(v);
    } else if (key == "read_your_writes_wait_ms") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(0, 60'000));
      cfg.read_your_writes_wait = std::chrono::milliseconds(v);
    } else if (key == "shutdown_grace_seconds") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(0, 600));
      cfg.shutdown_grace = std::chrono::seconds(v);
    } else if (key == "idempotency_retention_hours") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(1, int64_t{24} * 365));
      cfg.idempotency_retention_hours = static_cast<int>(v);
    } else if (key == "dns_resolver") {
      PLFM_TRY(str(cfg.dns_resolver));
    } else if (key == "dns_timeout_seconds") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(1, 30));
      cfg.dns_timeout = std::chrono::seconds(v);
    } else if (key == "public_suffix_file") {
      PLFM_TRY(str(cfg.public_suffix_file));
    } else if (key == "cluster_ipv6_prefix") {
      PLFM_TRY(str(cfg.cluster_ipv6_prefix));
    } else if (key == "scheduler_enabled") {
      auto v = node.value<bool>();
      if (!v) return bad(path, where, key, "must be true or false");
      cfg.scheduler_enabled = *v;
    } else if (key == "scheduler_interval_ms") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(100, 60'000));
      cfg.scheduler_interval = std::chrono::milliseconds(v);
    } else if (key == "heartbeat_interval_seconds") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(1, 3600));
      cfg.heartbeat_interval = std::chrono::seconds(v);
    } else if (key == "heartbeat_timeout_seconds") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(2, 86'400));
      cfg.heartbeat_timeout = std::chrono::seconds(v);
    } else if (key == "node_down_after_seconds") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(0, int64_t{86'400} * 30));
      cfg.node_down_after = std::chrono::seconds(v);
    } else if (key == "mesh_key_max_age_days") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(0, 3650));
      cfg.mesh_key_max_age_days = static_cast<int>(v);
    } else if (key == "unreachable_grace_seconds") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(0, 86'400));
      cfg.unreachable_grace = std::chrono::seconds(v);
    } else if (key == "cpu_overcommit") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(1, 64));
      cfg.cpu_overcommit = static_cast<int>(v);
    } else if (key == "restart_backoff_base_ms") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(1, 3'600'000));
      cfg.restart_backoff_base = std::chrono::milliseconds(v);
    } else if (key == "restart_backoff_max_ms") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(1, 86'400'000));
      cfg.restart_backoff_max = std::chrono::milliseconds(v);
    } else if (key == "drain_ack_timeout_ms") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(0, 600'000));
      cfg.drain_ack_timeout = std::chrono::milliseconds(v);
    } else if (key == "drain_grace_ms") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(0, 600'000));
      cfg.drain_grace = std::chrono::milliseconds(v);
    } else if (key == "edge_live_window_seconds") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(1, 86'400));
      cfg.edge_live_window = std::chrono::seconds(v);
    } else if (key == "max_deploy_failures") {
      PLFM_ASSIGN_OR_RETURN(auto v, integer(1, 100));
      cfg.max_deploy_failures = static_cast<int>(v);
    } else if (auto q = quotaKey(key)) {
      PLFM_ASSIGN_OR_RETURN(cfg.quotas[*q], integer(0, kMaxQuotaValue));
    } else {
      static const std::vector<std::string_view> kKnown = {"listen",
                                                           "database",
                                                           "state_dir",
                                                           "admin_token_file",
                                                           "log_level",
                                                           "log_file",
                                                           "db_pool_size",
                                                           "max_body_bytes",
                                                           "read_your_writes_wait_ms",
                                                           "shutdown_grace_seconds",
                                                           "idempotency_retention_hours",
                                                           "cluster_ipv6_prefix",
                                                           "scheduler_enabled",
                                                           "scheduler_interval_ms",
                                                           "heartbeat_interval_seconds",
                                                           "heartbeat_timeout_seconds",
                                                           "node_down_after_seconds",
                                                           "unreachable_grace_seconds",
                                                           "mesh_key_max_age_days",
                                                           "cpu_overcommit",
                                                           "restart_backoff_base_ms",
                                                           "restart_backoff_max_ms",
                                                           "max_deploy_failures",
                                                           "drain_ack_timeout_ms",
                                                           "drain_grace_ms",
                                                           "edge_live_window_seconds",
                                                           "secrets_master_key_file",
                                                           "tls_cert_file",
                                                           "tls_key_file",
                                                           "unsafe_plain_http",
                                                           "node_listen",
                                                           "max_connections",
                                                           "max_connections_per_source",
                                                           "ipv6_source_prefix",
                                                           "node_db_pool_size",
                                                           "auth_db_pool_size",
                                                           "dns_resolver",
                                                           "dns_timeout_seconds",
                                                           "public_suffix_file",
                                                           "quota_instances",
                                                           "quota_memory_mb",
                                                           "quota_releases_per_app",
                                                           "quota_routes",
                                                           "quota_secrets_bytes",

                                                           "relay_signing_key_file",
                                                           "max_log_followers_per_org",
                                                           "max_exec_sessions_per_org"};
      std::string hint;
      if (auto m = closestMatch(key, kKnown)) hint = "; did you mean '" + *m + "'?";
      std::string known;
      for (auto name : kKnown) known += (known.empty() ? "" : ", ") + std::string(name);
      return bad(path, k.source(), key,
                 "is not a known setting" + (hint.empty() ? " (known: " + known + ")" : hint));
    }
  }
  return ok();
}

Result<void> applyEnv(Config& cfg) {
  auto env = [](const char* name) -> const char* {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? v : nullptr;
  };
  auto addresses = [](const std::string& s, std::vector<std::string>& out) {
    out.clear();
    size_t start = 0;
    while (start <= s.size()) {
      size_t comma = s.find(',', start);
      if (comma == std::string::npos) comma = s.size();
      if (comma > start) out.push_back(s.substr(start, comma - start));
      start = comma + 1;
    }
  };
  if (const char* v = env("PLFM_CP_LISTEN")) addresses(v, cfg.listen);
  if (const char* v = env("PLFM_CP_NODE_LISTEN")) addresses(v, cfg.node_listen);
  if (const char* v = env("PLFM_CP_DATABASE")) cfg.database = v;
  if (const char* v = env("PLFM_CP_STATE_DIR")) cfg.state_dir = v;
  if (const char* v = env("PLFM_CP_LOG_LEVEL")) cfg.log_level = v;
  if (const char* v = env("PLFM_CP_LOG_FILE")) cfg.log_file = v;
  if (const char* v = env("PLFM_CP_SECRETS_MASTER_KEY_FILE")) cfg.secrets_master_key_file = v;
  if (const char* v = env("PLFM_CP_TLS_CERT_FILE")) cfg.tls_cert_file = v;
  if (const char* v = env("PLFM_CP_TLS_KEY_FILE")) cfg.tls_key_file = v;
  if (const char* v = env("PLFM_CP_DNS_RESOLVER")) cfg.dns_resolver = v;
  if (const char* v = env("PLFM_CP_UNSAFE_PLAIN_HTTP")) {
    const std::string_view s(v);
    if (s == "1" || s == "true") {
      cfg.unsafe_plain_http = true;
    } else if (s != "0" && s != "false") {
      return Error(plfm::errc::kInvalidArgument,
                   "PLFM_CP_UNSAFE_PLAIN_HTTP must be 1, true, 0 or false")
          .with("field", "unsafe_plain_http");
    }
  }
  return ok();
}

Result<void> validate(const Config& cfg) {
  if (cfg.listen.empty()) {
    return Error(plfm::errc::kInvalidArgument, "at least one listen address is needed")
        .with("field", "listen");
  }
  PLFM_TRY(validateTls(cfg));
  PLFM_TRY(log::parseLevel(cfg.log_level));
  if (cfg.state_dir.empty()) {
    return Error(plfm::errc::kInvalidArgument, "state_dir must not be empty")
        .with("field", "state_dir");
  }
  auto prefix = reconcile::parseIpv6Prefix(cfg.cluster_ipv6_prefix);
  if (!prefix || prefix->length < 1 || prefix->length > 63) {
    return Error(
               plfm::errc::kInvalidArgument,
               "cluster_ipv6_prefix must be an IPv6 prefix shorter than /64 (e.g. "
               "\"fd7a:5c00::/48\"), with no host bits set: " +
                   (prefix ? "it is /" + std::to_string(prefix->length) : prefix.error().message()))
        .with("field", "cluster_ipv6_prefix");
  }
  if (!cfg.dns_resolver.empty()) PLFM_TRY(dns::checkResolverAddress(cfg.dns_resolver));
  if (cfg.heartbeat_timeout <= cfg.heartbeat_interval) {
    return Error(plfm::errc::kInvalidArgument,
                 "heartbeat_timeout_seconds must be longer than heartbeat_interval_seconds")
        .with("field", "heartbeat_timeout_seconds");
  }
  if (cfg.restart_backoff_max < cfg.restart_backoff_base) {
    return Error(plfm::errc::kInvalidArgument,
                 "restart_backoff_max_ms must be at least restart_backoff_base_ms")
        .with("field", "restart_backoff_max_ms");
  }
  return ok();
}

}  // namespace plfm::cp
