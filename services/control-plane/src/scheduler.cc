#include "scheduler.h"

#include "mesh_keys.h"
#include "plfm/core/id.h"
#include "plfm/core/json.h"
#include "plfm/core/log.h"
#include "plfm/core/thread_guard.h"
#include "plfm/reconcile/reconcile.h"
#include "scheduler_input.h"

namespace plfm::cp {
namespace {

const AppendContext kActor{"system:scheduler", ""};

double msSince(Clock::SteadyTime start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

int64_t epochMs(Clock::WallTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

Scheduler::Scheduler(std::string conninfo, EventStore& store, ProjectionWorker& worker,
                     const Clock& clock, Options options)
    : conninfo_(std::move(conninfo)),
      store_(store),
      worker_(worker),
      clock_(clock),
      options_(std::move(options)),
      leadership_(conninfo_, Leadership::Options{.on_change = [this] {
                    worker_.wakeWaiters();
                    cv_.notify_all();
                  }}) {}

Scheduler::~Scheduler() { stop(); }

Result<void> Scheduler::start() {
  if (running_) return ok();
  PLFM_ASSIGN_OR_RETURN(auto conn, pg::Connection::connect(conninfo_));
  PLFM_TRY(leadership_.start());
  leader_ = leadership_.fence().has_value();
  conn_.emplace(std::move(conn));
  running_ = true;
  thread_ = std::thread([this] {
    runGuarded(
        "scheduler",
        [this] {
          reasons_.reset();  // a round cut short by an exception left it unknown
          fence_.reset();    // and its takeover is done again
          run();
        },
        [this] { return !running_.load(); });
  });
  return ok();
}

void Scheduler::stop() {
  if (!running_.exchange(false)) return;
  worker_.wakeWaiters();
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  leader_ = false;
  leadership_.stop();  // releases the leadership lock
  conn_.reset();
  cv_.notify_all();
}

void Scheduler::publishSettled(int64_t checkpoint) {
  {
    std::lock_guard lock(mu_);
    if (checkpoint <= settled_.load()) return;
    settled_.store(checkpoint);
  }
  cv_.notify_all();
}

bool Scheduler::waitSettled(int64_t seq, std::chrono::milliseconds timeout) {
  if (!running_ || settled_.load() >= seq) return true;
  std::unique_lock lock(mu_);
  ++waiters_;
  cv_.notify_all();  // a follower reads the leader's settled at once
  const bool done =
      cv_.wait_for(lock, timeout, [&] { return settled_.load() >= seq || !running_; });
  --waiters_;
  return done;
}

Result<void> Scheduler::storeSettled(pg::Connection& conn, int64_t checkpoint) {
  if (!fence_ || checkpoint <= stored_settled_) return ok();
  // Fenced by its condition: no row means another epoch.
  PLFM_ASSIGN_OR_RETURN(auto rs, conn.exec("UPDATE leadership SET settled = GREATEST(settled, $1) "
                                           "WHERE id = 1 AND epoch = $2",
                                           {checkpoint, fence_->epoch}));
  if (rs.affected() != 1) {
    return Error(errc::kFenced, "this replica no longer leads: the leadership epoch moved on")
        .with("epoch", std::to_string(fence_->epoch));
  }
  stored_settled_ = checkpoint;
  return ok();
}

Result<size_t> Scheduler::writeReasons(pg::Transaction& tx,
                                       const std::vector<reconcile::Pending>& pending) {
  if (!reasons_) {
    PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec("SELECT env_id, process_type, missing, outdated, "
                                           "reason FROM scheduler_status"));
    reasons_.emplace();
    for (int i = 0; i < rs.rows(); ++i) {
      (*reasons_)[{std::string(rs.text(i, 0)), std::string(rs.text(i, 1))}] =
          Reason{static_cast<int>(rs.int64(i, 2).value_or(0)),
                 static_cast<int>(rs.int64(i, 3).value_or(0)), std::string(rs.text(i, 4))};
    }
  }
  std::map<std::pair<std::string, std::string>, Reason> next;
  for (const auto& p : pending)
    next[{p.env_id, p.process}] = Reason{p.missing, p.outdated, p.reason};
  // Upserts and deletes go as one statement each (a JSON array of rows): a
  // round that changes thousands of reasons costs two round trips.
  json::Json upserts = json::Json::array();
  json::Json deletes = json::Json::array();
  for (const auto& [key, reason] : next) {
    auto old = reasons_->find(key);
    if (old != reasons_->end() && old->second == reason) continue;
    upserts.push_back({{"env_id", key.first},
                       {"process_type", key.second},
                       {"missing", reason.missing},
                       {"outdated", reason.outdated},
                       {"reason", reason.text}});
  }
  for (const auto& [key, unused] : *reasons_) {
    if (!next.contains(key))
      deletes.push_back({{"env_id", key.first}, {"process_type", key.second}});
  }
  if (!upserts.empty()) {
    PLFM_TRY(tx.exec(
        "INSERT INTO scheduler_status (env_id, process_type, missing, outdated, reason, "
        "updated_at) SELECT r.env_id, r.process_type, r.missing, r.outdated, r.reason, $2 "
        "FROM jsonb_to_recordset($1::jsonb) AS r(env_id text, process_type text, missing int, "
        "outdated int, reason text) ON CONFLICT (env_id, process_type) DO UPDATE SET "
        "missing = EXCLUDED.missing, outdated = EXCLUDED.outdated, reason = EXCLUDED.reason, "
        "updated_at = EXCLUDED.updated_at",
        {json::dump(upserts), toRfc3339(clock_.now())}));
  }
  if (!deletes.empty()) {
    PLFM_TRY(tx.exec(
        "DELETE FROM scheduler_status s USING jsonb_to_recordset($1::jsonb) AS r(env_id text, "
        "process_type text) WHERE s.env_id = r.env_id AND s.process_type = r.process_type",
        {json::dump(deletes)}));
  }
  const size_t written = upserts.size() + deletes.size();
  // Only once the transaction commits does the cache become the truth; a
  // failed round drops it and reloads.
  reasons_ = std::move(next);
  return written;
}

Result<std::pair<size_t, int64_t>> Scheduler::expireNodes(pg::Connection& conn) {
  PLFM_ASSIGN_OR_RETURN(auto changed, appendNodeEvents(conn, [this](pg::Transaction& tx) {
                          return expireLiveness(tx, clock_, options_.liveness);
                        }));
  // Then the keys past their age (mesh_keys.h), in a transaction of their
  // own: a node whose state just changed waits for its view.
  PLFM_ASSIGN_OR_RETURN(auto aged, appendNodeEvents(conn, [this](pg::Transaction& tx) {
                          return requestAgedRotations(tx, clock_,
                                                      options_.liveness.mesh_key_max_age);
                        }));
  return std::make_pair(changed.first + aged.first, std::max(changed.second, aged.second));
}

Result<std::pair<size_t, int64_t>> Scheduler::appendNodeEvents(
    pg::Connection& conn,
    const std::function<Result<std::vector<NewEvent>>(pg::Transaction&)>& decide) {
  PLFM_ASSIGN_OR_RETURN(auto tx, pg::Transaction::begin(conn));
  if (fence_) PLFM_TRY(checkFence(tx, *fence_));
  PLFM_ASSIGN_OR_RETURN(auto events, decide(tx));
  if (events.empty()) {
    tx.rollback();
    return std::make_pair(size_t{0}, int64_t{0});
  }
  PLFM_ASSIGN_OR_RETURN(auto appended, store_.append(tx, kActor, events));
  PLFM_TRY(tx.commit());
  worker_.kick();
  for (const auto& e : events) {
    log::info("node event",
              {{"node_id", e.aggregate_id}, {"type", e.event_type}, {"payload", e.payload}});
  }
  return std::make_pair(events.size(), appended.last_seq);
}

Result<Scheduler::GateRound> Scheduler::gateDrains(pg::Connection& conn) {
  GateRound out;
  PLFM_ASSIGN_OR_RETURN(auto in, drain::loadGate(conn));
  if (in.gated.empty()) return out;
  const auto d =
      drain::decide(epochMs(clock_.now()), in.edge_cursor, in.gated, in.reports, options_.drain);
  out.waiting = d.waiting;
  if (d.releases.empty()) return out;
  PLFM_ASSIGN_OR_RETURN(auto tx, pg::Transaction::begin(conn));
  if (fence_) PLFM_TRY(checkFence(tx, *fence_));
  PLFM_TRY(EventStore::lockLog(tx));
  std::vector<std::string> ids;
  ids.reserve(d.releases.size());
  for (const auto& r : d.releases) ids.push_back(r.instance_id);
  PLFM_ASSIGN_OR_RETURN(auto seqs, EventStore::aggregateSeqs(tx, ids));
  std::unordered_map<std::string, std::string> org_of;
  for (const auto& g : in.gated) org_of.emplace(g.instance_id, g.org_id);
  std::vector<NewEvent> released;
  for (const auto& r : d.releases) {
    released.push_back(
        events::toNewEvent(drain::releasedEvent(r), ++seqs[r.instance_id], org_of[r.instance_id]));
  }
  PLFM_ASSIGN_OR_RETURN(auto appended, store_.append(tx, kActor, released));
  PLFM_TRY(tx.commit());
  worker_.kick();
  for (const auto& r : d.releases) {
    log::info("drain released", {{"instance_id", r.instance_id},
                                 {"waited_ms", r.waited_ms},
                                 {"open_connections", r.open_connections},
                                 {"reason", r.reason}});
  }
  out.released = d.releases.size();
  out.last_seq = appended.last_seq;
  return out;
}

Result<Scheduler::Round> Scheduler::runOnce(pg::Connection& conn, std::optional<Fence> fence) {
  fence_ = fence;
  Round round;
  auto fail = [this](Error e) {
    reasons_.reset();
    return e;
  };
  // 1. Liveness, first, so this round already sees the nodes as they are.
  PLFM_ASSIGN_OR_RETURN(auto liveness, expireNodes(conn));
  round.liveness_changes = liveness.first;
  round.last_seq = liveness.second;
  PLFM_ASSIGN_OR_RETURN(auto gate, gateDrains(conn));
  round.drains_released = gate.released;
  round.drains_waiting = gate.waiting;
  round.last_seq = std::max(round.last_seq, gate.last_seq);
  if (round.last_seq > 0 && !worker_.waitFor(round.last_seq, options_.projection_wait)) {
    return Error(plfm::errc::kDeadlineExceeded,
                 "the views did not apply node state changes or drain releases");
  }

  // 2-3. Load and reconcile.
  auto start = std::chrono::steady_clock::now();
  PLFM_ASSIGN_OR_RETURN(auto state,
                        sched::loadState(conn, options_.reconcile, epochMs(clock_.now())));
  round.checkpoint = state.checkpoint;
  round.load_ms = msSince(start);
  for (const auto& n : state.input.nodes) {
    round.time_sensitive |= n.state == reconcile::NodeState::kUnreachable;
  }
  // A deploy in progress fails at its progress deadline even when nothing
  // else happens: look again on the timer.
  for (const auto& d : state.input.deploys) {
    round.time_sensitive |= d.status == reconcile::DeployStatus::kInProgress;
  }
  start = std::chrono::steady_clock::now();
  auto plan = reconcile::reconcile(
      state.input, [] { return InstanceId::generate().str(); },
      [] { return DeployId::generate().str(); });
  if (!plan) return fail(std::move(plan).error());
  round.reconcile_ms = msSince(start);
  std::vector<reconcile::Pending> pending = std::move(plan->pending);
  for (auto& p : state.unrunnable) pending.push_back(std::move(p));
  round.pending = pending.size();

  // 4. Write: reasons first (short row locks), then the log lock and events.
  start = std::chrono::steady_clock::now();
  auto written = [&]() -> Result<size_t> {
    PLFM_ASSIGN_OR_RETURN(auto tx, pg::Transaction::begin(conn));
    if (fence_) PLFM_TRY(checkFence(tx, *fence_));
    PLFM_ASSIGN_OR_RETURN(size_t reasons, writeReasons(tx, pending));
    if (plan->noActions() && reasons == 0) {
      tx.rollback();
      return 0;
    }
    size_t events = 0;
    if (!plan->noActions()) {
      PLFM_TRY(EventStore::lockLog(tx));
      PLFM_ASSIGN_OR_RETURN(auto all, sched::planEvents(tx, *plan, state));
      events = all.size();
      for (size_t i = 0; i < all.size(); i += options_.append_batch) {
        const size_t end = std::min(all.size(), i + options_.append_batch);
        std::vector<NewEvent> chunk(std::make_move_iterator(all.begin() + static_cast<long>(i)),
                                    std::make_move_iterator(all.begin() + static_cast<long>(end)));
        PLFM_ASSIGN_OR_RETURN(auto appended, store_.append(tx, kActor, chunk));
        round.last_seq = appended.last_seq;
      }
    }
    PLFM_TRY(tx.commit());
    return events;
  }();
  if (!written) return fail(std::move(written).error());
  if (options_.on_committed) options_.on_committed();
  round.events = *written;
  round.allocations = plan->allocations.size();
  round.write_ms = msSince(start);

  // 5. Our events in the views before anyone (or the next round) reads them.
  if (round.events > 0) {
    start = std::chrono::steady_clock::now();
    worker_.kick();
    if (!worker_.waitFor(round.last_seq, options_.projection_wait)) {
      return Error(plfm::errc::kDeadlineExceeded,
                   "the views did not apply the scheduler's events in time")
          .with("seq", std::to_string(round.last_seq));
    }
    round.project_ms = msSince(start);
    log::info("scheduler round", {{"checkpoint", round.checkpoint},
                                  {"events", static_cast<int64_t>(round.events)},
                                  {"allocations", static_cast<int64_t>(round.allocations)},
                                  {"pending", static_cast<int64_t>(round.pending)},
                                  {"last_seq", round.last_seq}});
  }
  publishSettled(round.checkpoint);
  PLFM_TRY(storeSettled(conn, round.checkpoint));
  return round;
}

bool Scheduler::steppedDown(const Error& e) {
  if (!e.is(errc::kFenced)) return false;
  log::warn("scheduler write refused by the epoch check; stepping down", {{"error", e.toString()}});
  leadership_.stepDown(e.message());
  leader_ = false;
  fence_.reset();
  return true;
}

Result<void> Scheduler::takeOver(const Fence& fence) {
  // Every event a previous leader committed is in the log by now: its
  // transactions either committed before the epoch moved (they held the
  // row) or fail the fence. The first round must see them all.
  PLFM_ASSIGN_OR_RETURN(int64_t head, EventStore::headSeq(*conn_));
  if (!worker_.waitFor(head, options_.projection_wait)) {
    return Error(plfm::errc::kDeadlineExceeded, "the views did not catch up with the log")
        .with("seq", std::to_string(head));
  }
  fence_ = fence;
  stored_settled_ = 0;
  reasons_.reset();
  leader_ = true;
  log::info("scheduler is the leader", {{"epoch", fence.epoch}, {"head", head}});
  return ok();
}

void Scheduler::follow(uint64_t generation) {
  if (auto info = readLeader(*conn_); info) {
    publishSettled(info->settled);
  } else {
    log::warn("cannot read the leader's settled checkpoint", {{"error", info.error().toString()}});
  }
  std::unique_lock lock(mu_);
  const int waiting = waiters_.load();
  cv_.wait_for(lock, waiting > 0 ? std::chrono::milliseconds(50) : options_.interval, [&] {
    return !running_ || leadership_.generation() != generation || waiters_.load() > waiting;
  });
}

void Scheduler::run() {
  auto backoff = std::chrono::milliseconds(100);
  bool time_sensitive = true;
  size_t drains_waiting = 0;
  int64_t last_checkpoint = -1;
  auto next_liveness = std::chrono::steady_clock::now();
  uint64_t generation = 0;
  auto cancelled = [this, &generation] {
    return !running_.load() || leadership_.generation() != generation;
  };
  auto retryLater = [&] {
    worker_.waitBeyond(INT64_MAX, backoff, cancelled);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  };
  while (running_) {
    if (!conn_ || !conn_->healthy()) {
      auto c = pg::Connection::connect(conninfo_);
      if (!c) {
        log::error("scheduler cannot connect; retrying", {{"error", c.error().toString()}});
        retryLater();
        continue;
      }
      conn_.emplace(std::move(*c));
      reasons_.reset();
    }
    generation = leadership_.generation();
    const auto fence = leadership_.fence();
    if (!fence) {
      if (leader_.exchange(false)) log::warn("scheduler stopped: this replica no longer leads");
      fence_.reset();
      follow(generation);
      continue;
    }
    if (!fence_ || fence_->epoch != fence->epoch) {
      if (auto t = takeOver(*fence); !t) {
        log::error("scheduler takeover failed; retrying", {{"error", t.error().toString()}});
        retryLater();
        continue;
      }
      last_checkpoint = -1;
      time_sensitive = true;
    }
    // The checkpoint first: the scheduling seq read after it covers it.
    const int64_t cp = worker_.checkpoint();
    // Since the last round, only events no round reads (an app created, a
    // token, an exec session): its plan stands, so they are settled too.
    const bool unread_only =
        last_checkpoint >= 0 && cp > last_checkpoint && worker_.watchedSeq() <= last_checkpoint;
    if (unread_only) publishSettled(cp);
    if ((cp == last_checkpoint || unread_only) && !time_sensitive) {
      // Nothing a round reads changed: only heartbeats may have stopped. A
      // node state change moves the checkpoint, which brings a full round.
      // About once per interval, however often unread events wake us (half
      // of it here, so that a timer wake a little early still checks).
      const auto now = std::chrono::steady_clock::now();
      if (now >= next_liveness) {
        next_liveness = now + options_.interval / 2;
        if (auto r = expireNodes(*conn_); !r && !steppedDown(r.error())) {
          log::error("scheduler liveness check failed", {{"error", r.error().toString()}});
        }
        if (auto s = storeSettled(*conn_, settled_.load()); !s && !steppedDown(s.error())) {
          log::error("scheduler cannot store its settled checkpoint",
                     {{"error", s.error().toString()}});
        }
      }
      // Drains wait for ingress reports, which are not events: look again
      // soon while any instance is at the gate.
      if (drains_waiting > 0 && fence_) {
        if (auto g = gateDrains(*conn_); g) {
          drains_waiting = g->waiting;
        } else if (!steppedDown(g.error())) {
          log::error("scheduler drain gate failed", {{"error", g.error().toString()}});
        }
      }
      if (!fence_) continue;
      worker_.waitBeyond(cp, drains_waiting > 0 ? options_.drain_poll : options_.interval,
                         cancelled);
      if (worker_.watchedSeq() <= last_checkpoint) continue;
    }
    auto round = runOnce(*conn_, fence_);
    if (!round) {
      if (steppedDown(round.error())) continue;
      log::error("scheduler round failed; retrying", {{"error", round.error().toString()}});
      last_checkpoint = -1;
      retryLater();
      continue;
    }
    backoff = std::chrono::milliseconds(100);
    time_sensitive = round->time_sensitive;
    drains_waiting = round->drains_waiting;
    // A round that appended reacts to its own events next; otherwise wait
    // for the views to change (or the timer).
    last_checkpoint = round->events > 0 || round->liveness_changes > 0 ? -1 : round->checkpoint;
    if (last_checkpoint >= 0) {
      worker_.waitBeyond(last_checkpoint,
                         drains_waiting > 0 ? options_.drain_poll : options_.interval, cancelled);
    }
  }
}

}  // namespace plfm::cp
