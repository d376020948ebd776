#include "control_plane.h"

#include <filesystem>

#include "db_conninfo.h"
#include "plfm/core/log.h"
#include "plfm/core/thread_guard.h"
#include "plfm/relay_auth/relay_auth.h"
#include "schema.h"

namespace plfm::cp {

ControlPlane::ControlPlane(Config cfg, const Clock* clock)
    : cfg_(std::move(cfg)), clock_(clock != nullptr ? *clock : RealClock::instance()) {}

namespace {

Scheduler::Options schedulerOptions(const Config& cfg) {
  Scheduler::Options o;
  o.reconcile.cpu_overcommit = cfg.cpu_overcommit;
  o.reconcile.unreachable_grace_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(cfg.unreachable_grace).count();
  o.reconcile.backoff_base_ms = cfg.restart_backoff_base.count();
  o.reconcile.backoff_max_ms = cfg.restart_backoff_max.count();
  o.reconcile.max_deploy_failures = cfg.max_deploy_failures;
  o.liveness.heartbeat_timeout = cfg.heartbeat_timeout;
  o.liveness.down_after = cfg.node_down_after;
  o.liveness.mesh_key_max_age = std::chrono::hours(24) * cfg.mesh_key_max_age_days;
  o.interval = cfg.scheduler_interval;
  o.drain.ack_timeout_ms = cfg.drain_ack_timeout.count();
  o.drain.grace_ms = cfg.drain_grace.count();
  o.drain.live_window_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(cfg.edge_live_window).count();
  return o;
}

// Agents pin the relay key of their enrollment (docs/specs/runtime/logs.md),
// so every replica must sign with the same one: a replica with a key of its
// own would have all its log and exec relays refused. The first replica
// records its public key; a replica whose key differs refuses to start, and
// says which file to replace. Only public keys are named.
Result<void> checkSharedRelayKey(pg::Connection& conn, const relay::PublicKey& mine,
                                 const std::string& key_file) {
  const std::string text = mine.text();
  PLFM_TRY(conn.exec(
      "INSERT INTO relay_signing_key (id, public_key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
      {text}));
  PLFM_ASSIGN_OR_RETURN(auto rs, conn.exec("SELECT public_key FROM relay_signing_key"));
  const std::string recorded(rs.rows() == 1 ? rs.text(0, 0) : std::string_view());
  if (recorded == text) return ok();
  return Error(plfm::errc::kFailedPrecondition,
               "this replica's relay signing key (" + key_file + ", public key " + text +
                   ") is not the cluster's (public key " + recorded +
                   ", recorded in the database by the first replica); agents pinned that one "
                   "and would refuse this replica's log and exec relays. Every replica needs "
                   "the same key: copy the key file of an existing replica to " +
                   key_file + " (mode 0600) and start again")
      .with("field", "relay_signing_key_file")
      .with("file", key_file);
}

}  // namespace

ControlPlane::~ControlPlane() { stop(); }

Result<void> ControlPlane::start() {
  // A configured master key that is missing, of the wrong size or readable
  // by others stops the start, before anything else happens.
  if (!cfg_.secrets_master_key_file.empty()) {
    PLFM_ASSIGN_OR_RETURN(keyring_, crypto::Keyring::load(cfg_.secrets_master_key_file));
    log::info("secrets master key loaded", {{"key_id", keyring_->primaryId()}});
  } else {
    log::warn("secrets are disabled: no secrets_master_key_file is configured");
  }
  log::info("control plane replica", {{"replica_id", replicaId()}});
  std::error_code ec;
  std::filesystem::create_directories(cfg_.state_dir, ec);
  if (ec) {
    return Error(plfm::errc::kIo, "cannot create state_dir " + cfg_.state_dir + ": " + ec.message())
        .with("field", "state_dir");
  }
  // The log relay's signing key: agents pin its public half when they
  // enroll, so it is created once and kept (docs/specs/runtime/logs.md), and
  // every replica must have the same one (checkSharedRelayKey, below).
  {
    PLFM_ASSIGN_OR_RETURN(auto key, relay::SigningKey::loadOrCreate(cfg_.relaySigningKeyFile()));
    relay_key_ = std::make_unique<relay::SigningKey>(std::move(key));
    log::info("relay signing key loaded", {{"public_key", relay_key_->publicKey().text()}});
  }
  // Over TCP every session gets keepalives and tcp_user_timeout: a replica
  // cut off from the database must not leave row locks behind (db_conninfo.h).
  PLFM_ASSIGN_OR_RETURN(cfg_.database, tcpBoundedConninfo(cfg_.database));
  {
    auto conn = pg::Connection::connect(cfg_.database);
    if (!conn) {
      return Error(plfm::errc::kUnavailable,
                   "cannot reach the database (setting 'database'): " + conn.error().message());
    }
    PLFM_ASSIGN_OR_RETURN(auto report, migrateSchema(*conn));
    for (const auto& name : report.applied) log::info("migration applied", {{"migration", name}});
    PLFM_TRY(checkSharedRelayKey(*conn, relay_key_->publicKey(), cfg_.relaySigningKeyFile()));
    store_ = std::make_unique<EventStore>(clock_);
    PLFM_ASSIGN_OR_RETURN(bool created,
                          bootstrapAdmin(*conn, *store_, clock_, cfg_.adminTokenFile()));
    if (created) {
      log::info("bootstrap admin created; its token is in the admin token file",
                {{"file", cfg_.adminTokenFile()}});
    }
  }
  // Connections are opened lazily, up to these sizes.
  pool_ = std::make_unique<pg::Pool>(cfg_.database, static_cast<size_t>(cfg_.db_pool_size));
  auth_pool_ =
      std::make_unique<pg::Pool>(cfg_.database, static_cast<size_t>(cfg_.auth_db_pool_size));
  node_pool_ =
      std::make_unique<pg::Pool>(cfg_.database, static_cast<size_t>(cfg_.node_db_pool_size));
  node_auth_pool_ =
      std::make_unique<pg::Pool>(cfg_.database, static_cast<size_t>(cfg_.auth_db_pool_size));
  worker_ = std::make_unique<ProjectionWorker>(cfg_.database, ProjectionWorker::Options{});
  PLFM_TRY(worker_->start());
  if (cfg_.scheduler_enabled) {
    scheduler_ = std::make_unique<Scheduler>(cfg_.database, *store_, *worker_, clock_,
                                             schedulerOptions(cfg_));
    PLFM_TRY(scheduler_->start());
  }
  plans_ = std::make_unique<PlanFeed>(cfg_.database, *worker_);
  PLFM_TRY(plans_->start());
  edge_ = std::make_unique<EdgeFeed>(cfg_.database, *worker_);
  PLFM_TRY(edge_->start());
  services_ = std::make_unique<ServicesFeed>(cfg_.database, *worker_);
  PLFM_TRY(services_->start());

  ApiOptions opts;
  opts.read_your_writes_wait = cfg_.read_your_writes_wait;
  opts.cluster_ipv6_prefix = cfg_.cluster_ipv6_prefix;
  opts.heartbeat_interval = cfg_.heartbeat_interval;
  opts.heartbeat_timeout = cfg_.heartbeat_timeout;
  opts.dns_resolver = cfg_.dns_resolver;
  opts.dns_timeout = cfg_.dns_timeout;
  opts.public_suffix_file = cfg_.public_suffix_file;
  opts.quotas = cfg_.quotas;
  opts.max_log_followers_per_org = cfg_.max_log_followers_per_org;
  opts.max_exec_sessions_per_org = cfg_.max_exec_sessions_per_org;
  api_ = std::make_unique<Api>(ApiDeps{*pool_,
                                       *store_,
                                       *worker_,
                                       clock_,
                                       metrics_,
                                       opts,
                                       scheduler_.get(),
                                       plans_.get(),
                                       edge_.get(),
                                       keyring_.get(),
                                       {pool_.get(), auth_pool_.get()},
                                       {node_pool_.get(), node_auth_pool_.get()},
                                       relay_key_.get(),
                                       services_.get()});
  const bool node_listener = !cfg_.node_listen.empty();
  api_->registerRoutes(router_, node_listener ? &node_router_ : nullptr);

  // Each listener is its own http::Server: its own connection slots, so a
  // flood on one cannot take the other's.
  http::ServerOptions so;
  so.listen = cfg_.listen;
  if (!cfg_.tls_cert_file.empty()) {
    so.tls = http::ServerTlsOptions{cfg_.tls_cert_file, cfg_.tls_key_file};
  }
  so.max_body_bytes = cfg_.max_body_bytes;
  so.max_connections = cfg_.max_connections;
  so.max_connections_per_source = cfg_.max_connections_per_source;
  so.ipv6_source_prefix = cfg_.ipv6_source_prefix;
  so.on_server_error = [](http::Response& resp) { stampServerError(resp); };
  if (node_listener) {
    http::ServerOptions nso = so;
    nso.listen = cfg_.node_listen;
    node_server_ = std::make_unique<http::Server>(
        nso, [this](http::Request& req) { return api_->handle(req, node_router_); });
    PLFM_TRY(node_server_->start());
  }
  server_ = std::make_unique<http::Server>(
      so, [this](http::Request& req) { return api_->handle(req, router_); });
  PLFM_TRY(server_->start());
  janitor_ = std::thread([this] {
    runGuarded(
        "janitor", [this] { janitor(); },
        [this] {
          std::lock_guard lock(mu_);
          return stopping_;
        });
  });
  return ok();
}

void ControlPlane::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  // Plan long-polls answer at once, so in-flight requests finish quickly.
  if (plans_) plans_->stop();
  if (edge_) edge_->stop();
  if (services_) services_->stop();
  if (server_) server_->stop(cfg_.shutdown_grace);
  if (node_server_) node_server_->stop(cfg_.shutdown_grace);
  if (janitor_.joinable()) janitor_.join();
  if (scheduler_) scheduler_->stop();
  if (worker_) worker_->stop();
}

std::vector<std::string> ControlPlane::endpoints() const {
  return server_ ? server_->endpoints() : std::vector<std::string>{};
}

std::vector<std::string> ControlPlane::nodeEndpoints() const {
  return node_server_ ? node_server_->endpoints() : std::vector<std::string>{};
}

void ControlPlane::janitor() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    if (auto lease = pool_->acquire(std::chrono::seconds(5))) {
      auto r = (*lease)->exec(
          "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)",
          {cfg_.idempotency_retention_hours});
      if (r && r->affected() > 0) {
        log::info("expired idempotency records deleted", {{"count", r->affected()}});
      }
    }
    lock.lock();
    cv_.wait_for(lock, std::chrono::hours(1), [&] { return stopping_; });
  }
}

}  // namespace plfm::cp
