// Control-plane configuration: defaults, then a TOML file, then environment
// variables (PLFM_CP_*), then command-line flags. Unknown keys in the file
// are errors that name the key, so a typo never silently falls back.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "plfm/core/result.h"
#include "quotas.h"

namespace plfm::cp {

struct Config {
  std::vector<std::string> listen = {"[::1]:8080"};
  // The node listener (docs/specs/api/v1.md, "Listeners"): when set, node
  // agents' and the edge's routes are served only here, with connections
  // and database connections of their own, and user routes are not served
  // here. Same TLS certificate as `listen`. Empty: one listener for all.
  std::vector<std::string> node_listen;
  // Per listener: open connections in total, and per source address
  // (0: no per-source limit).
  size_t max_connections = 512;
  size_t max_connections_per_source = 64;
  int ipv6_source_prefix = 128;  // IPv6 sources counted per address, or per /N
  // TLS for every TCP listener (docs/security.md, "Control plane: TLS"): a PEM
  // certificate chain and its key. Without them the server speaks plain HTTP,
  // which validate() allows only on loopback listeners or with
  // unsafe_plain_http.
  std::string tls_cert_file;
  std::string tls_key_file;
  bool unsafe_plain_http = false;
  std::string database = "host=/var/run/postgresql dbname=plfm";  // libpq conninfo
  std::string state_dir = "/var/lib/plfm/control-plane";
  std::string admin_token_file;  // default: <state_dir>/admin-token
  std::string log_level = "info";
  std::string log_file;       // empty: stderr
  int db_pool_size = 16;      // handlers of user requests
  int node_db_pool_size = 8;  // handlers of node and edge requests
  int auth_db_pool_size = 4;  // token lookups before a handler connection, per lane
  size_t max_body_bytes = 1 << 20;
  std::chrono::milliseconds read_your_writes_wait{2000};
  std::chrono::seconds shutdown_grace{10};
  int idempotency_retention_hours = 24;

  // Nodes and the scheduler (docs/specs/scheduler/).
  std::string cluster_ipv6_prefix = "fd7a:5c00::/48";  // node /64s come from it
  bool scheduler_enabled = true;
  std::chrono::milliseconds scheduler_interval{2000};
  std::chrono::seconds heartbeat_interval{10};  // told to agents
  std::chrono::seconds heartbeat_timeout{30};   // active -> unreachable
  std::chrono::seconds node_down_after{600};    // unreachable -> down; 0: never
  std::chrono::seconds unreachable_grace{60};   // then its instances are replaced
  // Mesh keys older than this are rotated (docs/specs/networking/mesh.md,
  // "Contract for key rotation"); 0: never.
  int mesh_key_max_age_days = 30;
  int cpu_overcommit = 4;  // vCPUs per core
  std::chrono::milliseconds restart_backoff_base{1000};
  std::chrono::milliseconds restart_backoff_max{60'000};
  int max_deploy_failures = 3;
  // The drain gate (docs/specs/scheduler/drain.md): how long to wait for
  // every live ingress to apply a config without a draining instance, the
  // least time a drain takes, and how recent an ingress's last report must
  // be for it to count as live.
  std::chrono::milliseconds drain_ack_timeout{10'000};
  std::chrono::milliseconds drain_grace{1'000};
  std::chrono::seconds edge_live_window{30};

  // Secrets (docs/specs/secrets/encryption.md): the 32-byte master key file,
  // mode 0600. Empty: secrets are disabled and their routes answer 503.
  std::string secrets_master_key_file;

  // Domain ownership proofs (docs/specs/ingress/domains.md): the DNS server
  // ("127.0.0.1:5353", IPv4) TXT challenges are checked against; empty
  // refuses verification. The public suffix list wildcard routes are checked
  // against; if it cannot be read they are refused (fail closed).
  std::string dns_resolver;
  std::chrono::seconds dns_timeout{2};
  std::string public_suffix_file = "/usr/share/publicsuffix/public_suffix_list.dat";
  // Per-org quota defaults (quotas.h): keys quota_instances, quota_memory_mb,
  // quota_releases_per_app, quota_routes, quota_secrets_bytes; flags
  // --quota-*. An admin overrides them per org (PUT /v1/orgs/{id}/quotas).
  QuotaLimits quotas{};
  // The log relay (docs/specs/runtime/logs.md): the Ed25519 key that signs
  // each relay request to an agent (32 random bytes, mode 0600, created at
  // first start; default <state_dir>/relay-signing.key), and how many
  // `logs?follow=true` requests one org may hold at once.
  std::string relay_signing_key_file;
  int max_log_followers_per_org = 8;
  // Open `vt exec` sessions one org may hold at once (GET /v1/exec).
  int max_exec_sessions_per_org = 32;

  [[nodiscard]] std::string adminTokenFile() const {
    return admin_token_file.empty() ? state_dir + "/admin-token" : admin_token_file;
  }
  [[nodiscard]] std::string relaySigningKeyFile() const {
    return relay_signing_key_file.empty() ? state_dir + "/relay-signing.key"
                                          : relay_signing_key_file;
  }
};

// Reads `path` over the defaults in `cfg`. Errors name the file, the key and
// what was expected.
[[nodiscard]] Result<void> loadConfigFile(const std::string& path, Config& cfg);

// Applies PLFM_CP_LISTEN and PLFM_CP_NODE_LISTEN (comma-separated), PLFM_CP_DATABASE,
// PLFM_CP_STATE_DIR, PLFM_CP_LOG_LEVEL, PLFM_CP_LOG_FILE,
// PLFM_CP_SECRETS_MASTER_KEY_FILE, PLFM_CP_TLS_CERT_FILE,
// PLFM_CP_TLS_KEY_FILE, PLFM_CP_DNS_RESOLVER and PLFM_CP_UNSAFE_PLAIN_HTTP (1 or true).
[[nodiscard]] Result<void> applyEnv(Config& cfg);

[[nodiscard]] Result<void> validate(const Config& cfg);

}  // namespace plfm::cp
