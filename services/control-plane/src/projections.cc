#include "projections.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "plfm/core/json.h"
#include "plfm/core/log.h"
#include "plfm/core/thread_guard.h"
#include "plfm/pg/prepared.h"
#include "projection_appliers.h"

namespace plfm::cp {

namespace projection {

Result<std::string> Payload::str(std::string_view field) const {
  auto r = json::getString(j, field, "payload");
  if (!r) return std::move(r.error()).context("event " + std::to_string(e.seq));
  return r;
}

Result<int64_t> Payload::integer(std::string_view field) const {
  auto r = json::getInt(j, field, "payload");
  if (!r) return std::move(r.error()).context("event " + std::to_string(e.seq));
  return r;
}

Result<std::optional<std::string>> Payload::optStr(std::string_view field) const {
  auto it = j.find(field);
  if (it != j.end() && it->is_null()) return std::optional<std::string>();
  PLFM_ASSIGN_OR_RETURN(auto v, str(field));
  return std::optional<std::string>(std::move(v));
}

Result<std::optional<std::string>> Payload::optStrOrMissing(std::string_view field) const {
  if (!j.contains(field)) return std::optional<std::string>();
  return optStr(field);
}

Result<void> exec(pg::Transaction& tx, std::string_view sql, const pg::Params& params) {
  return tx.connection().execDeferred(sql, params);
}

}  // namespace projection

namespace {

using json::Json;
using projection::ApplyFn;
using projection::exec;
using projection::Payload;

Result<void> orgCreated(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::OrgCreated>());
  return exec(tx,
              "INSERT INTO orgs_view (org_id, name, version, created_at, updated_at) "
              "VALUES ($1, $2, $3, $4, $4) ON CONFLICT (org_id) DO NOTHING",
              {ev.org_id, ev.name, p.e.aggregate_seq, p.e.occurred_at});
}

Result<void> memberAdded(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::OrgMemberAdded>());
  PLFM_TRY(exec(tx,
                "INSERT INTO org_members_view (org_id, user_id, role, created_at) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (org_id, user_id) DO UPDATE SET role = $3",
                {ev.org_id, ev.user_id, ev.role, p.e.occurred_at}));
  return exec(tx, "UPDATE orgs_view SET version = $2, updated_at = $3 WHERE org_id = $1",
              {ev.org_id, p.e.aggregate_seq, p.e.occurred_at});
}

Result<void> memberRemoved(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::OrgMemberRemoved>());
  PLFM_TRY(exec(tx, "DELETE FROM org_members_view WHERE org_id = $1 AND user_id = $2",
                {ev.org_id, ev.user_id}));
  return exec(tx, "UPDATE orgs_view SET version = $2, updated_at = $3 WHERE org_id = $1",
              {ev.org_id, p.e.aggregate_seq, p.e.occurred_at});
}

Result<void> orgDeleted(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::OrgDeleted>());
  PLFM_TRY(exec(tx, "DELETE FROM org_members_view WHERE org_id = $1", {ev.org_id}));
  PLFM_TRY(exec(tx, "DELETE FROM org_quotas_view WHERE org_id = $1", {ev.org_id}));
  return exec(tx, "DELETE FROM orgs_view WHERE org_id = $1", {ev.org_id});
}

// Replaces the org's overrides: a null limit is the operator's default.
Result<void> orgQuotasSet(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::OrgQuotasSet>());
  return exec(tx,
              "INSERT INTO org_quotas_view (org_id, instances, memory_mb, releases_per_app, "
              "routes, secrets_bytes, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
              "ON CONFLICT (org_id) DO UPDATE SET instances = $2, memory_mb = $3, "
              "releases_per_app = $4, routes = $5, secrets_bytes = $6, updated_at = $7",
              {ev.org_id, ev.instances, ev.memory_mb, ev.releases_per_app, ev.routes,
               ev.secrets_bytes, p.e.occurred_at});
}

Result<void> appCreated(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::AppCreated>());
  return exec(tx,
              "INSERT INTO apps_view (app_id, org_id, name, description, version, created_at, "
              "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (app_id) DO NOTHING",
              {ev.app_id, ev.org_id, ev.name, ev.description, p.e.aggregate_seq, p.e.occurred_at});
}

Result<void> appDeleted(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::AppDeleted>());
  return exec(tx, "DELETE FROM apps_view WHERE app_id = $1", {ev.app_id});
}

Result<void> envCreated(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::EnvCreated>());
  return exec(tx,
              "INSERT INTO envs_view (env_id, org_id, app_id, name, version, created_at, "
              "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (env_id) DO NOTHING",
              {ev.env_id, ev.org_id, ev.app_id, ev.name, p.e.aggregate_seq, p.e.occurred_at});
}

Result<void> envDeleted(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::EnvDeleted>());
  PLFM_TRY(exec(tx, "DELETE FROM env_scale_view WHERE env_id = $1", {ev.env_id}));
  return exec(tx, "DELETE FROM envs_view WHERE env_id = $1", {ev.env_id});
}

Result<void> envScaleSet(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::EnvScaleSet>());
  for (const auto& [proc, count] : ev.processes) {
    PLFM_TRY(exec(tx,
                  "INSERT INTO env_scale_view (env_id, process_type, count, updated_at) "
                  "VALUES ($1, $2, $3, $4) ON CONFLICT (env_id, process_type) "
                  "DO UPDATE SET count = $3, updated_at = $4",
                  {ev.env_id, proc, count, p.e.occurred_at}));
  }
  return exec(tx, "UPDATE envs_view SET version = $2, updated_at = $3 WHERE env_id = $1",
              {ev.env_id, p.e.aggregate_seq, p.e.occurred_at});
}

Result<void> releaseCreated(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::ReleaseCreated>());
  return exec(tx,
              "INSERT INTO releases_view (release_id, org_id, app_id, image_ref, image_digest, "
              "manifest, created_at) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7) "
              "ON CONFLICT (release_id) DO NOTHING",
              {ev.release_id, ev.org_id, ev.app_id, ev.image_ref, ev.image_digest,
               json::dump(ev.manifest), p.e.occurred_at});
}

// deploy.created and deploy.rollback_created insert the same row; only an
// auto-rollback has what it replaces and why.
Result<void> insertDeploy(pg::Transaction& tx, const Payload& p, const events::DeployCreated& ev,
                          const std::string& reason,
                          const std::optional<std::string>& rollback_of) {
  PLFM_TRY(exec(tx,
                "INSERT INTO deploys_view (deploy_id, org_id, app_id, env_id, release_id, "
                "strategy, status, reason, version, created_at, updated_at, secrets_version, "
                "rollback_of) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $9, $10, $11) "
                "ON CONFLICT (deploy_id) DO NOTHING",
                {ev.deploy_id, ev.org_id, ev.app_id, ev.env_id, ev.release_id, ev.strategy, reason,
                 p.e.aggregate_seq, p.e.occurred_at, ev.secrets_version, rollback_of}));
  return exec(tx, "UPDATE envs_view SET current_deploy_id = $2, updated_at = $3 WHERE env_id = $1",
              {ev.env_id, ev.deploy_id, p.e.occurred_at});
}

Result<void> deployCreated(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::DeployCreated>());
  return insertDeploy(tx, p, ev, "", std::nullopt);
}

Result<void> deployRollbackCreated(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::DeployRollbackCreated>());
  const events::DeployCreated common{.deploy_id = ev.deploy_id,
                                     .app_id = ev.app_id,
                                     .env_id = ev.env_id,
                                     .org_id = ev.org_id,
                                     .release_id = ev.release_id,
                                     .strategy = ev.strategy,
                                     .secrets_version = ev.secrets_version};
  return insertDeploy(tx, p, common, ev.reason, ev.rollback_of);
}

Result<void> deployStatusChanged(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::DeployStatusChanged>());
  PLFM_TRY(exec(tx,
                "UPDATE deploys_view SET status = $2, reason = $3, version = $4, updated_at = $5 "
                "WHERE deploy_id = $1 AND version < $4",
                {ev.deploy_id, ev.status, ev.reason, p.e.aggregate_seq, p.e.occurred_at}));
  if (ev.status != "succeeded") return ok();
  return exec(tx,
              "UPDATE envs_view e SET current_release_id = d.release_id, updated_at = $2 "
              "FROM deploys_view d WHERE d.deploy_id = $1 AND e.env_id = d.env_id",
              {ev.deploy_id, p.e.occurred_at});
}

Result<void> noView(pg::Transaction&, const Payload&) { return ok(); }

const std::unordered_map<std::string_view, ApplyFn>& appliers() {
  static const std::unordered_map<std::string_view, ApplyFn> m = {
      {"org.created", orgCreated},
      {"org.member_added", memberAdded},
      {"org.member_removed", memberRemoved},
      {"org.deleted", orgDeleted},
      {"org.quotas_set", orgQuotasSet},
      {"app.created", appCreated},
      {"app.deleted", appDeleted},
      {"env.created", envCreated},
      {"env.deleted", envDeleted},
      {"env.scale_set", envScaleSet},
      {"release.created", releaseCreated},
      {"deploy.created", deployCreated},
      {"deploy.rollback_created", deployRollbackCreated},
      {"deploy.status_changed", deployStatusChanged},
      {"node.enrolled", projection::nodeEnrolled},
      {"node.state_changed", projection::nodeStateChanged},
      {"node.scheduling_changed", projection::nodeSchedulingChanged},
      {"node.removed", projection::nodeRemoved},
      {"node.mesh_key_rotation_requested", projection::nodeMeshKeyRotationRequested},
      {"node.mesh_key_staged", projection::nodeMeshKeyStaged},
      {"node.mesh_key_rotated", projection::nodeMeshKeyRotated},
      {"instance.allocated", projection::instanceAllocated},
      {"instance.restart_scheduled", projection::instanceRestartScheduled},
      {"instance.drain_requested", projection::instanceDrainRequested},
      {"instance.drain_released", projection::instanceDrainReleased},
      {"instance.stop_requested", projection::instanceStopRequested},
      {"instance.lost", projection::instanceLost},
      {"instance.status_reported", projection::instanceStatusReported},
      {"route.created", projection::routeCreated},
      {"route.updated", projection::routeUpdated},
      {"route.deleted", projection::routeDeleted},
      {"secrets.version_created", projection::secretsVersionCreated},
      {"volume.created", projection::volumeCreated},
      {"volume.placed", projection::volumePlaced},
      {"volume.extend_requested", projection::volumeExtendRequested},
      {"volume.delete_requested", projection::volumeDeleteRequested},
      {"volume.status_reported", projection::volumeStatusReported},
      {"volume.deleted", projection::volumeDeleted},
      {"volume.snapshot_requested", projection::volumeSnapshotRequested},
      {"volume.snapshot_taken", projection::volumeSnapshotTaken},
      {"volume.snapshot_failed", projection::volumeSnapshotFailed},
      {"volume.backed_up", projection::volumeBackedUp},
      {"volume.snapshot_expired", projection::volumeSnapshotExpired},
      {"volume.restore_requested", projection::volumeRestoreRequested},
      {"volume.restored", projection::volumeRestored},
      {"volume.verify_requested", projection::volumeVerifyRequested},
      {"volume.verified", projection::volumeVerified},
      // Audit-only events: recorded in the log, no view reads them.
      {"user.created", noView},
      {"token.created", noView},
      {"token.revoked", noView},
      {"domain.created", noView},
      {"domain.verified", noView},
      {"domain.deleted", noView},
      {"node.enrollment_created", noView},
      {"secrets.fetched", noView},
      // The write-side registry_credentials table is the state; these are
      // its audit trail (api_registries.cc).
      {"registry_credential.set", noView},
      {"registry_credential.removed", noView},
      {"registry_credential.fetched", noView},
      // The audit trail of exec sessions (api_exec.cc); their tickets live
      // in the write-side exec_tickets table for at most 60 s.
      {"exec.started", noView},
      {"exec.ended", noView},
  };
  return m;
}

}  // namespace

Result<void> Projector::apply(pg::Transaction& tx, const StoredEvent& e) {
  auto it = appliers().find(e.event_type);
  if (it == appliers().end()) {
    // An event type we wrote but cannot project is a bug; stop here rather
    // than silently produce views that disagree with the log.
    return Error(plfm::errc::kInternal, "no projection for event type '" + e.event_type +
                                            "' (seq " + std::to_string(e.seq) + ")");
  }
  PLFM_ASSIGN_OR_RETURN(Json j, json::parse(e.payload));
  const bool instance_event = e.event_type.starts_with("instance.");
  bool served = false;
  if (instance_event) {
    PLFM_ASSIGN_OR_RETURN(served, projection::instanceServes(tx, e));
  }
  PLFM_TRY(it->second(tx, Payload{e, std::move(j)}));
  if (instance_event) {
    PLFM_ASSIGN_OR_RETURN(bool serves, projection::instanceServes(tx, e));
    if (serves != served) PLFM_TRY(projection::bumpServicesVersion(tx, e.seq));
  }
  return projection::touchEdgeForInstance(tx, e);
}

const std::vector<std::string>& Projector::viewTables() {
  static const std::vector<std::string> t = {
      "orgs_view",
      "org_members_view",
      "apps_view",
      "envs_view",
      "env_scale_view",
      "releases_view",
      "deploys_view",
      "nodes_view",
      "instances_view",
      "routes_view",
      "edge_feed_view",
      "services_feed_view",  // 0021
      // secrets (0006)
      "secret_versions_view",
      "secret_keys_view",
      // quotas (0010)
      "org_quotas_view",
      // volumes (0017)
      "volumes_view",
      // volume snapshots and ops (0018)
      "volume_snapshots_view",
      "volume_ops_view",
  };
  return t;
}

Result<int64_t> readCheckpoint(pg::Connection& conn) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs, conn.exec("SELECT last_seq FROM projection_checkpoints WHERE name = 'views'"));
  if (rs.rows() != 1) return Error(plfm::errc::kInternal, "the views checkpoint row is missing");
  return rs.int64(0, 0);
}

bool watchersRead(std::string_view event_type) {
  // What their projections write (orgs_view, org_members_view, apps_view) or
  // nothing at all: no scheduler round reads those (scheduler_input.cc), and
  // no feed (the plan feed's instances, volumes, their ops and nodes views;
  // edge_feed_view; services_feed_view).
  static const std::unordered_set<std::string_view> kUnread = {
      "org.created",
      "org.member_added",
      "org.member_removed",
      "app.created",
      "user.created",
      "token.created",
      "token.revoked",
      "domain.created",
      "domain.verified",
      "domain.deleted",
      "node.enrollment_created",
      "secrets.fetched",
      "registry_credential.set",
      "registry_credential.removed",
      "registry_credential.fetched",
      "exec.started",
      "exec.ended",
  };
  return !kUnread.contains(event_type);
}

namespace {

// Applies one batch after the checkpoint inside `tx`; returns the number of
// events applied and the new checkpoint, and raises `*watched_seq` (when
// given) to the last applied event that watchersRead(). `known` is the
// checkpoint the caller last saw: events after it that another replica's
// worker applied count as read, since this one never sees their types.
Result<std::pair<int, int64_t>> applyBatch(pg::Transaction& tx, int batch,
                                           int64_t* watched_seq = nullptr, int64_t known = 0) {
  // The row lock serializes workers of several control-plane processes.
  PLFM_ASSIGN_OR_RETURN(
      auto cp, pg::execPrepared(tx.connection(),
                                "SELECT last_seq FROM projection_checkpoints WHERE name = 'views' "
                                "FOR UPDATE"));
  PLFM_ASSIGN_OR_RETURN(int64_t last, cp.int64(0, 0));
  if (watched_seq != nullptr && last > known) *watched_seq = std::max(*watched_seq, last);
  PLFM_ASSIGN_OR_RETURN(auto events, EventStore::readAfter(tx.connection(), last, batch));
  for (size_t i = 0; i < events.size();) {
    const StoredEvent& e = events[i];
    if (e.seq != last + 1) {
      return Error(plfm::errc::kInternal, "event log gap: expected seq " +
                                              std::to_string(last + 1) + ", found " +
                                              std::to_string(e.seq));
    }
    // A run of placements goes in one statement (the same rows as one by one).
    size_t end = i + 1;
    while (e.event_type == "instance.allocated" && end < events.size() &&
           events[end].event_type == e.event_type && events[end].seq == events[end - 1].seq + 1) {
      ++end;
    }
    if (end - i > 1) {
      PLFM_TRY(projection::instancesAllocated(tx, events, i, end));
    } else {
      PLFM_TRY(Projector::apply(tx, e));
    }
    last = events[end - 1].seq;
    if (watched_seq != nullptr) {
      for (size_t k = i; k < end; ++k) {
        if (watchersRead(events[k].event_type)) *watched_seq = events[k].seq;
      }
    }
    i = end;
  }
  if (!events.empty()) {
    PLFM_TRY(
        exec(tx, "UPDATE projection_checkpoints SET last_seq = $1 WHERE name = 'views'", {last}));
  }
  return std::make_pair(static_cast<int>(events.size()), last);
}

}  // namespace

Result<int64_t> catchUp(pg::Connection& conn, int batch, int64_t* watched_seq, int64_t known) {
  // The appliers' writes, the checkpoint's update and the BEGIN wait for the
  // next statement: a batch takes three round trips (BEGIN with the lock,
  // the events, the writes with COMMIT) plus the appliers' own reads.
  const pg::BatchedWrites batched(conn);
  for (;;) {
    PLFM_ASSIGN_OR_RETURN(auto tx, pg::Transaction::begin(conn));
    int64_t seen = watched_seq != nullptr ? *watched_seq : 0;
    PLFM_ASSIGN_OR_RETURN(auto applied, applyBatch(tx, batch, &seen, known));
    PLFM_TRY(tx.commit());
    // Only what committed counts.
    if (watched_seq != nullptr) *watched_seq = seen;
    known = applied.second;
    if (applied.first < batch) return applied.second;
  }
}

Result<int64_t> rebuildViews(pg::Connection& conn) {
  const pg::BatchedWrites batched(conn);
  PLFM_ASSIGN_OR_RETURN(auto tx, pg::Transaction::begin(conn));
  PLFM_TRY(tx.exec("SELECT last_seq FROM projection_checkpoints WHERE name = 'views' FOR UPDATE"));
  std::string truncate = "TRUNCATE ";
  for (size_t i = 0; i < Projector::viewTables().size(); ++i) {
    truncate += (i > 0 ? ", " : "") + Projector::viewTables()[i];
  }
  PLFM_TRY(tx.connection().execScript(truncate));
  PLFM_TRY(tx.exec("UPDATE projection_checkpoints SET last_seq = 0 WHERE name = 'views'"));
  int64_t last = 0;
  for (;;) {
    PLFM_ASSIGN_OR_RETURN(auto applied, applyBatch(tx, 1000));
    last = applied.second;
    if (applied.first < 1000) break;
  }
  PLFM_TRY(tx.commit());
  return last;
}

// ---- ProjectionWorker ----

ProjectionWorker::ProjectionWorker(std::string conninfo, Options options)
    : conninfo_(std::move(conninfo)), options_(options) {}

ProjectionWorker::~ProjectionWorker() { stop(); }

Result<void> ProjectionWorker::start() {
  if (running_) return ok();
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) return errnoError("eventfd", errno);
  // Catch up synchronously once, so a started worker has current views.
  PLFM_ASSIGN_OR_RETURN(auto conn, pg::Connection::connect(conninfo_));
  PLFM_ASSIGN_OR_RETURN(int64_t cp, catchUp(conn, options_.batch));
  publish(cp, cp);  // what came before: as if a round must read all of it
  running_ = true;
  thread_ = std::thread([this] {
    runGuarded(
        "projection worker", [this] { run(); }, [this] { return !running_; });
  });
  return ok();
}

void ProjectionWorker::stop() {
  if (!running_.exchange(false)) return;
  kick();
  if (thread_.joinable()) thread_.join();
  ::close(wake_fd_);
  wake_fd_ = -1;
  cv_.notify_all();
}

void ProjectionWorker::kick() {
  if (wake_fd_ >= 0) {
    const uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof(one));
  }
}

void ProjectionWorker::publish(int64_t cp, int64_t watched_seq) {
  {
    std::lock_guard lock(mu_);
    if (cp <= checkpoint_.load()) return;
    // Before the checkpoint: whoever reads the new checkpoint first then
    // sees this one too (watchedSeq()).
    if (watched_seq > watched_seq_.load()) watched_seq_.store(watched_seq);
    checkpoint_.store(cp);
  }
  cv_.notify_all();
}

bool ProjectionWorker::waitFor(int64_t seq, std::chrono::milliseconds timeout) {
  if (checkpoint_.load() >= seq) return true;
  kick();
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return checkpoint_.load() >= seq; });
}

int64_t ProjectionWorker::waitBeyond(int64_t seq, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return checkpoint_.load() > seq || !running_; });
  return checkpoint_.load();
}

int64_t ProjectionWorker::waitBeyond(int64_t seq, std::chrono::milliseconds timeout,
                                     const std::function<bool()>& cancelled) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return checkpoint_.load() > seq || !running_ || cancelled(); });
  return checkpoint_.load();
}

void ProjectionWorker::wakeWaiters() {
  { std::lock_guard lock(mu_); }
  cv_.notify_all();
}

Result<void> ProjectionWorker::loopOnce(pg::Connection& conn) {
  int64_t watched_seq = watched_seq_.load();
  PLFM_ASSIGN_OR_RETURN(int64_t cp,
                        catchUp(conn, options_.batch, &watched_seq, checkpoint_.load()));
  publish(cp, watched_seq);
  pollfd fds[2] = {{conn.socket(), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  const int n = ::poll(fds, 2, static_cast<int>(options_.poll_interval.count()));
  if (n < 0 && errno != EINTR) return errnoError("poll", errno);
  if ((fds[1].revents & POLLIN) != 0) {
    uint64_t v = 0;
    (void)!::read(wake_fd_, &v, sizeof(v));
  }
  PLFM_TRY(conn.drainNotifications());
  return ok();
}

void ProjectionWorker::run() {
  auto backoff = std::chrono::milliseconds(100);
  while (running_) {
    auto conn = pg::Connection::connect(conninfo_);
    if (conn) {
      if (auto l = conn->listen(EventStore::kNotifyChannel); l) {
        backoff = std::chrono::milliseconds(100);
        while (running_) {
          if (auto r = loopOnce(*conn); !r) {
            log::error("projection worker failed; retrying",
                       {{"error", r.error().toString()}, {"checkpoint", checkpoint_.load()}});
            break;
          }
        }
      }
    } else {
      log::error("projection worker cannot connect; retrying",
                 {{"error", conn.error().toString()}});
    }
    if (!running_) break;
    // Back off before reconnecting, but stay responsive to stop().
    pollfd pfd{wake_fd_, POLLIN, 0};
    ::poll(&pfd, 1, static_cast<int>(backoff.count()));
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
}

}  // namespace plfm::cp
