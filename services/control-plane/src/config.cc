#include "config.h"

#include "dns_txt.h"
#include "plfm/core/config_table.h"
#include "plfm/core/log.h"
#include "plfm/http/http.h"
#include "plfm/reconcile/ipv6.h"

namespace plfm::cp {
namespace {

// The file's settings, each with its type and range.
config::ConfigTable settings(Config& cfg) {
  const config::ListRule addresses{"must be a non-empty array of addresses",
                                   "must contain strings like \"[::1]:8080\"", false};
  config::ListRule node_addresses = addresses;
  node_addresses.allow_empty = true;
  config::ConfigTable t;
  t.strings("listen", cfg.listen, addresses)
      .strings("node_listen", cfg.node_listen, node_addresses)
      .integer("max_connections", 1, 100'000, cfg.max_connections)
      .integer("max_connections_per_source", 0, 100'000, cfg.max_connections_per_source)
      .integer("ipv6_source_prefix", 32, 128, cfg.ipv6_source_prefix)
      .integer("node_db_pool_size", 1, 1000, cfg.node_db_pool_size)
      .integer("auth_db_pool_size", 1, 1000, cfg.auth_db_pool_size)
      .string("tls_cert_file", cfg.tls_cert_file)
      .string("tls_key_file", cfg.tls_key_file)
      .boolean("unsafe_plain_http", cfg.unsafe_plain_http)
      .string("database", cfg.database)
      .string("state_dir", cfg.state_dir)
      .string("admin_token_file", cfg.admin_token_file)
      .string("secrets_master_key_file", cfg.secrets_master_key_file)
      .string("relay_signing_key_file", cfg.relay_signing_key_file)
      .integer("max_log_followers_per_org", 1, 10'000, cfg.max_log_followers_per_org)
      .integer("max_exec_sessions_per_org", 1, 10'000, cfg.max_exec_sessions_per_org)
      .string("log_level", cfg.log_level)
      .string("log_file", cfg.log_file)
      .integer("db_pool_size", 1, 1000, cfg.db_pool_size)
      .integer("max_body_bytes", 1024, 64 << 20, cfg.max_body_bytes)
      .duration("read_your_writes_wait_ms", 0, 60'000, cfg.read_your_writes_wait)
      .duration("shutdown_grace_seconds", 0, 600, cfg.shutdown_grace)
      .integer("idempotency_retention_hours", 1, int64_t{24} * 365, cfg.idempotency_retention_hours)
      .string("dns_resolver", cfg.dns_resolver)
      .duration("dns_timeout_seconds", 1, 30, cfg.dns_timeout)
      .string("public_suffix_file", cfg.public_suffix_file)
      .string("cluster_ipv6_prefix", cfg.cluster_ipv6_prefix)
      .boolean("scheduler_enabled", cfg.scheduler_enabled)
      .duration("scheduler_interval_ms", 100, 60'000, cfg.scheduler_interval)
      .duration("heartbeat_interval_seconds", 1, 3600, cfg.heartbeat_interval)
      .duration("heartbeat_timeout_seconds", 2, 86'400, cfg.heartbeat_timeout)
      .duration("node_down_after_seconds", 0, int64_t{86'400} * 30, cfg.node_down_after)
      .integer("mesh_key_max_age_days", 0, 3650, cfg.mesh_key_max_age_days)
      .duration("unreachable_grace_seconds", 0, 86'400, cfg.unreachable_grace)
      .integer("cpu_overcommit", 1, 64, cfg.cpu_overcommit)
      .duration("restart_backoff_base_ms", 1, 3'600'000, cfg.restart_backoff_base)
      .duration("restart_backoff_max_ms", 1, 86'400'000, cfg.restart_backoff_max)
      .duration("drain_ack_timeout_ms", 0, 600'000, cfg.drain_ack_timeout)
      .duration("drain_grace_ms", 0, 600'000, cfg.drain_grace)
      .duration("edge_live_window_seconds", 1, 86'400, cfg.edge_live_window)
      .integer("max_deploy_failures", 1, 100, cfg.max_deploy_failures);
  // "quota_<name>" sets a quota default.
  for (Quota q : kAllQuotas) {
    t.integer("quota_" + std::string(quotaName(q)), 0, kMaxQuotaValue, cfg.quotas[q]);
  }
  return t;
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
  return settings(cfg).load(path);
}

Result<void> applyEnv(Config& cfg) {
  using config::envValue;
  if (const char* v = envValue("PLFM_CP_LISTEN")) cfg.listen = config::splitList(v);
  if (const char* v = envValue("PLFM_CP_NODE_LISTEN")) cfg.node_listen = config::splitList(v);
  if (const char* v = envValue("PLFM_CP_DATABASE")) cfg.database = v;
  if (const char* v = envValue("PLFM_CP_STATE_DIR")) cfg.state_dir = v;
  if (const char* v = envValue("PLFM_CP_LOG_LEVEL")) cfg.log_level = v;
  if (const char* v = envValue("PLFM_CP_LOG_FILE")) cfg.log_file = v;
  if (const char* v = envValue("PLFM_CP_SECRETS_MASTER_KEY_FILE")) cfg.secrets_master_key_file = v;
  if (const char* v = envValue("PLFM_CP_TLS_CERT_FILE")) cfg.tls_cert_file = v;
  if (const char* v = envValue("PLFM_CP_TLS_KEY_FILE")) cfg.tls_key_file = v;
  if (const char* v = envValue("PLFM_CP_DNS_RESOLVER")) cfg.dns_resolver = v;
  if (const char* v = envValue("PLFM_CP_UNSAFE_PLAIN_HTTP")) {
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
