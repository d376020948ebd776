// The plfm-control-plane command line. CLI11 lives only in this file: its
// headers trip a GCC 12 -Wnull-dereference false positive, which is
// silenced for this translation unit alone (see CMakeLists.txt).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <optional>

#include "api.h"
#include "control_plane.h"
#include "edge_feed.h"
#include "plfm/core/daemon.h"
#include "plfm/core/log.h"
#include "schema.h"
#include "secrets_admin.h"

namespace plfm::cp {

namespace {

// Flags that override the file and the environment.
struct Flags {
  std::vector<std::string> node_listen;
  std::string tls_cert;
  std::string tls_key;
  bool unsafe_plain_http = false;
  std::string dns_resolver;
  std::string public_suffix_file;
  std::array<std::optional<int64_t>, 5> quotas;  // --quota-*, by Quota
  std::string relay_signing_key;
  int max_log_followers_per_org = 0;  // 0: keep the file's or the default
  int max_exec_sessions_per_org = 0;  // 0: keep the file's or the default
};

Result<Config> buildConfig(const std::string& file, const std::vector<std::string>& listen,
                           const std::string& database, const std::string& state_dir,
                           const std::string& log_level, const Flags& flags) {
  Config cfg;
  if (!file.empty()) PLFM_TRY(loadConfigFile(file, cfg));
  PLFM_TRY(applyEnv(cfg));
  if (!listen.empty()) cfg.listen = listen;
  if (!flags.node_listen.empty()) cfg.node_listen = flags.node_listen;
  if (!flags.tls_cert.empty()) cfg.tls_cert_file = flags.tls_cert;
  if (!flags.tls_key.empty()) cfg.tls_key_file = flags.tls_key;
  if (flags.unsafe_plain_http) cfg.unsafe_plain_http = true;
  if (!flags.dns_resolver.empty()) cfg.dns_resolver = flags.dns_resolver;
  if (!flags.public_suffix_file.empty()) cfg.public_suffix_file = flags.public_suffix_file;
  for (Quota q : kAllQuotas) {
    if (auto v = flags.quotas[static_cast<size_t>(q)]) cfg.quotas[q] = *v;
  }
  if (!flags.relay_signing_key.empty()) cfg.relay_signing_key_file = flags.relay_signing_key;
  if (flags.max_log_followers_per_org > 0) {
    cfg.max_log_followers_per_org = flags.max_log_followers_per_org;
  }
  if (flags.max_exec_sessions_per_org > 0) {
    cfg.max_exec_sessions_per_org = flags.max_exec_sessions_per_org;
  }
  if (!database.empty()) cfg.database = database;
  if (!state_dir.empty()) cfg.state_dir = state_dir;
  if (!log_level.empty()) cfg.log_level = log_level;
  PLFM_TRY(validate(cfg));
  return cfg;
}

int fail(const Error& e) {
  std::cerr << "plfm-control-plane: " << e.message() << "\n";
  return e.is(plfm::errc::kInvalidArgument) ? 2 : 1;
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

int serve(const Config& cfg) {
  std::optional<ControlPlane> cp;
  daemon::Hooks hooks;
  hooks.start = [&]() -> Result<void> {
    cp.emplace(cfg);
    auto r = cp->start();
    if (!r) log::error("start failed", {{"error", r.error().toString()}});
    return r;
  };
  hooks.ready = [&] {
    const std::string eps = joined(cp->endpoints());
    log::info("serving", {{"endpoints", eps}});
    // Tell a supervisor (or a test) where we listen, on stdout, one line.
    std::cout << "listening " << eps << std::endl;
    if (!cp->nodeEndpoints().empty()) {
      const std::string nodes = joined(cp->nodeEndpoints());
      log::info("serving node agents and the edge", {{"endpoints", nodes}});
      std::cout << "node-listener " << nodes << std::endl;
    }
  };
  hooks.stop = [&] { cp->stop(); };
  auto stopped = daemon::run(hooks);
  return stopped ? 0 : fail(stopped.error());
}

}  // namespace

int runMain(int argc, char** argv) {
  CLI::App app{
      "plfm-control-plane: the plfm-vt API, event log, projections and scheduler.\n"
      "Configuration comes from --config (TOML), then PLFM_CP_* environment variables, then "
      "flags.",
      "plfm-control-plane"};
  app.require_subcommand(0, 1);
  app.fallthrough();  // global options may also follow the subcommand
  std::string file, database, state_dir, log_level;
  std::vector<std::string> listen;
  app.add_option("-c,--config", file, "TOML config file")->check(CLI::ExistingFile);
  app.add_option("--listen", listen,
                 "address to listen on, repeatable: [::1]:8080, 127.0.0.1:8080, unix:/path");
  Flags flags;
  app.add_option("--node-listen", flags.node_listen,
                 "address for node agents and the edge only, repeatable (PLFM_CP_NODE_LISTEN): "
                 "their routes are then served only there, with connections and database "
                 "connections of their own, so that no user flood can starve heartbeats and plan "
                 "polls; same TLS certificate");
  app.add_option("--tls-cert", flags.tls_cert,
                 "PEM certificate chain for TLS on every TCP listener (PLFM_CP_TLS_CERT_FILE)");
  app.add_option("--tls-key", flags.tls_key, "its PEM private key (PLFM_CP_TLS_KEY_FILE)");
  app.add_flag("--unsafe-plain-http", flags.unsafe_plain_http,
               "serve plain HTTP on non-loopback addresses: tokens and secrets cross the "
               "network unencrypted (PLFM_CP_UNSAFE_PLAIN_HTTP)");
  app.add_option("--dns-resolver", flags.dns_resolver,
                 "DNS server (IPv4 address:port) that domain ownership proofs (TXT records) are "
                 "checked against; without one, domains cannot be verified");
  app.add_option("--public-suffix-list", flags.public_suffix_file,
                 "the public suffix list (default /usr/share/publicsuffix/public_suffix_list.dat); "
                 "if unreadable, wildcard routes and domains are refused");
  // Per-org quota defaults; an admin overrides them per org (vt orgs quotas set).
  const QuotaLimits defaults;
  const std::array<std::string_view, 5> quota_help = {
      "desired instances per org, summed over its envs",
      "MiB of memory per org: desired instances x their release's memory_mb", "releases per app",
      "routes per org", "bytes of secrets per org: the keys and values of every env's secrets"};
  for (Quota q : kAllQuotas) {
    std::string name(quotaName(q));
    std::string flag = "--quota-" + name;
    std::replace(flag.begin(), flag.end(), '_', '-');
    const auto i = static_cast<size_t>(q);
    app.add_option(flag, flags.quotas[i],
                   std::string(quota_help[i]) + " (default " + std::to_string(defaults[q]) +
                       "; config key quota_" + name + ")")
        ->check(CLI::Range(int64_t{0}, kMaxQuotaValue));
  }
  app.add_option("--relay-signing-key", flags.relay_signing_key,
                 "the Ed25519 key that signs log relay requests to agents (created 0600 when "
                 "missing; default <state-dir>/relay-signing.key)");
  app.add_option("--max-log-followers-per-org", flags.max_log_followers_per_org,
                 "concurrent `logs?follow=true` requests per org (default 8)")
      ->check(CLI::Range(1, 10'000));
  app.add_option("--max-exec-sessions-per-org", flags.max_exec_sessions_per_org,
                 "open `vt exec` sessions per org (default 32)")
      ->check(CLI::Range(1, 10'000));
  app.add_option("--database", database, "libpq connection string (PLFM_CP_DATABASE)");
  app.add_option("--state-dir", state_dir, "state directory (PLFM_CP_STATE_DIR)");
  app.add_option("--log-level", log_level, "debug|info|warn|error (PLFM_CP_LOG_LEVEL)");
  auto* serveCmd = app.add_subcommand("serve", "run the API server (the default)");
  auto* migrateCmd = app.add_subcommand("migrate", "apply pending database migrations and exit");
  auto* rebuildCmd = app.add_subcommand(
      "rebuild-views", "replay the event log from seq 0 into fresh views, in one transaction");
  std::string edge_name, edge_out;
  int64_t edge_ttl = 0;
  auto* edgeCmd = app.add_subcommand(
      "edge-token",
      "issue an edge credential (for plfm-ingress source.edge_token_file) and write it to a "
      "0600 file; the token is never printed");
  edgeCmd->add_option("--name", edge_name, "the edge's name, e.g. edge-1 (a token's subject)")
      ->required();
  edgeCmd->add_option("--out", edge_out, "the file to write the token to (mode 0600)")->required();
  edgeCmd
      ->add_option("--ttl-seconds", edge_ttl, "expire the token after this long (default: never)")
      ->check(CLI::Range(int64_t{60}, int64_t{10} * 365 * 86'400));
  auto* secretsCmd = app.add_subcommand("secrets", "manage the secrets master key");
  secretsCmd->require_subcommand(1);
  std::string key_path, new_key_file;
  auto* genCmd =
      secretsCmd->add_subcommand("generate-key", "write a new random master key file (mode 0600)");
  genCmd->add_option("path", key_path, "where to write it")->required();
  auto* rotateCmd = secretsCmd->add_subcommand(
      "rotate-master-key",
      "install a new master key and re-wrap every data key under it, while servers run");
  rotateCmd->add_option("--new-key-file", new_key_file, "the new key (see generate-key)")
      ->required();
  (void)serveCmd;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help exits 0; a usage error (printed by CLI11) exits 2.
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (genCmd->parsed()) return secretsGenerateKey(key_path);
  auto cfg = buildConfig(file, listen, database, state_dir, log_level, flags);
  if (!cfg) return fail(cfg.error());
  daemon::initLogging("control-plane", cfg->log_level, cfg->log_file);

  if (edgeCmd->parsed()) {
    if (auto r = checkName("name", edge_name); !r) return fail(r.error());
    auto conn = pg::Connection::connect(cfg->database);
    if (!conn) return fail(conn.error());
    if (auto report = migrateSchema(*conn); !report) return fail(report.error());
    EventStore store(RealClock::instance());
    std::optional<std::chrono::seconds> ttl;
    if (edge_ttl > 0) ttl = std::chrono::seconds(edge_ttl);
    auto t = mintEdgeTokenFile(*conn, store, RealClock::instance(), edge_name, ttl, edge_out);
    if (!t) return fail(t.error());
    std::cout << "edge token " << t->token_id << " for edge '" << edge_name << "' written to "
              << edge_out << (t->expires_at ? " (expires " + *t->expires_at + ")" : "") << "\n";
    return 0;
  }
  if (rotateCmd->parsed()) return secretsRotateMasterKey(*cfg, new_key_file);
  if (migrateCmd->parsed() || rebuildCmd->parsed()) {
    auto conn = pg::Connection::connect(cfg->database);
    if (!conn) return fail(conn.error());
    auto report = migrateSchema(*conn);
    if (!report) return fail(report.error());
    if (migrateCmd->parsed()) {
      std::cout << "migrations applied: " << report->applied.size()
                << ", schema version: " << report->current_version << "\n";
      return 0;
    }
    auto last = rebuildViews(*conn);
    if (!last) return fail(last.error());
    std::cout << "views rebuilt from seq 0 to seq " << *last << "\n";
    return 0;
  }
  return serve(*cfg);
}

}  // namespace plfm::cp
