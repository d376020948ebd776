#include "group_commit.h"

#include <algorithm>
#include <utility>

namespace plfm::cp {
namespace {

// The orgs whose events the batch running on this thread holds uncommitted:
// those of commands already released (`batch`) and of the running one.
struct BatchOrgs {
  std::set<std::string> batch;
  std::set<std::string> command;
};
thread_local BatchOrgs* t_orgs = nullptr;
thread_local bool t_presumed = false;

bool transient(const Error& e) { return pg::isRetryable(e) || e.is(errc::kConcurrencyConflict); }

Error batchFailed(const Error& cause) {
  return Error(plfm::errc::kUnavailable,
               "the database failed while committing; retry with the same Idempotency-Key")
      .with("cause", cause.message());
}

}  // namespace

GroupCommitter::GroupCommitter(std::string conninfo, Options options)
    : conninfo_(std::move(conninfo)), options_(options), thread_([this] { loop(); }) {}

GroupCommitter::~GroupCommitter() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  thread_.join();
}

Result<CommandOutcome> GroupCommitter::run(const Body& body, std::optional<pg::Statement> opening,
                                           bool presume) {
  Pending p;
  p.body = &body;
  p.opening = opening ? &*opening : nullptr;
  p.presume = opening && presume;
  std::unique_lock lock(mu_);
  if (stop_) return Error(plfm::errc::kUnavailable, "the control plane is stopping");
  queue_.push_back(&p);
  work_cv_.notify_one();
  p.cv.wait(lock, [&] { return p.done; });
  return std::move(*p.result);
}

void GroupCommitter::noteAppended(const std::vector<NewEvent>& events) {
  if (t_orgs == nullptr) return;
  for (const auto& ev : events) {
    if (!ev.org_id.empty()) t_orgs->command.insert(ev.org_id);
  }
}

bool GroupCommitter::openingPresumed() { return t_presumed; }

bool GroupCommitter::batchWrote(const std::string& org_id) {
  return t_orgs != nullptr && (t_orgs->batch.contains(org_id) || t_orgs->command.contains(org_id));
}

size_t GroupCommitter::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

GroupCommitter::Stats GroupCommitter::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void GroupCommitter::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) break;  // stopping, and nothing left
    std::vector<Pending*> batch;
    while (!queue_.empty() && batch.size() < options_.max_batch) {
      batch.push_back(queue_.front());
      queue_.pop_front();
    }
    lock.unlock();
    std::vector<Pending*> deferred;
    runBatch(batch, deferred);
    lock.lock();
    ++stats_.batches;
    stats_.commands += batch.size() - deferred.size();
    if (options_.batches != nullptr) options_.batches->inc();
    if (options_.commands != nullptr) {
      options_.commands->inc({}, static_cast<double>(batch.size() - deferred.size()));
    }
    // Each caller has its own condition variable: only the batch's callers
    // wake, not those queued for the next one. Notified under the lock, so
    // no caller can return (and its Pending go) before its notify.
    for (Pending* p : batch) {
      p->done = std::find(deferred.begin(), deferred.end(), p) == deferred.end();
      if (p->done) p->cv.notify_one();
    }
    // Deferred commands go first in the next batch, in their order.
    queue_.insert(queue_.begin(), deferred.begin(), deferred.end());
  }
  for (Pending* p : queue_) {
    p->result = Error(plfm::errc::kUnavailable, "the control plane is stopping");
    p->done = true;
    p->cv.notify_one();
  }
  queue_.clear();
}

Result<void> GroupCommitter::ensureConnected() {
  if (conn_ && conn_->healthy() && conn_->idle()) return ok();
  prepared_.reset();
  conn_.reset();
  PLFM_ASSIGN_OR_RETURN(auto c, pg::Connection::connect(conninfo_));
  conn_.emplace(std::move(c));
  prepared_.emplace(*conn_);
  return ok();
}

void GroupCommitter::runBatch(std::vector<Pending*>& batch, std::vector<Pending*>& deferred) {
  auto failAll = [&](const Error& e) {
    for (Pending* p : batch) p->result = batchFailed(e);
    deferred.clear();
    // The transaction rolls back when `tx` goes; ensureConnected() replaces
    // a connection that broke.
  };
  if (auto c = ensureConnected(); !c) return failAll(c.error());
  // The hot statements (key claim, event insert, record) are prepared once.
  const pg::UsePrepared use_prepared(*prepared_);
  // Writes no one reads wait for the next round trip: the BEGIN goes with
  // the lock, a name reservation with its command's append, the NOTIFY with
  // the COMMIT.
  const pg::BatchedWrites batched(*conn_);
  auto tx = pg::Transaction::begin(*conn_);
  if (!tx) return failAll(tx.error());
  // The transaction's lock_timeout, and one append lock for the whole
  // batch, held until it commits.
  const pg::Statement start[] = {{"SELECT set_config('lock_timeout', $1, true)",
                                  {std::to_string(options_.lock_timeout.count()) + "s"}},
                                 EventStore::lockLogStatement()};
  auto started = pg::execPipeline(tx->connection(), start);
  if (!started) return failAll(started.error());
  for (auto& r : *started) {
    if (!r) return failAll(r.error());
  }

  BatchOrgs orgs;
  t_orgs = &orgs;
  int64_t last_seq = 0;
  bool first = true;
  std::optional<Error> fatal;
  pg::Connection& conn = tx->connection();
  for (Pending* p : batch) {
    if (p->presume) {
      // [RELEASE SAVEPOINT gc,] SAVEPOINT gc: queued for the body's first
      // statement; the body claims the key by its own write. Any failure:
      // back to the savepoint (if the queue went out) and the usual way below.
      const uint64_t sent_before = conn.deferredSent();
      bool queued = first || conn.execDeferred("RELEASE SAVEPOINT gc", {}).has_value();
      queued = queued && conn.execDeferred("SAVEPOINT gc", {}).has_value();
      orgs.command.clear();
      t_presumed = true;
      auto r = queued ? (*p->body)(*tx, Result<pg::ResultSet>(pg::ResultSet()))
                      : Result<CommandOutcome>(Error(plfm::errc::kInternal, "not queued"));
      t_presumed = false;
      if (r && conn.deferredWrites() > 0) {
        if (auto flushed = conn.flushDeferred(); !flushed) r = unexpected(flushed.error());
      }
      if (r) {
        first = false;
        if (!r->replayed) last_seq = std::max(last_seq, r->seq);
        orgs.batch.insert(orgs.command.begin(), orgs.command.end());
        p->result = std::move(r);
        continue;
      }
      conn.discardDeferred();
      if (conn.deferredSent() > sent_before) {
        // The SAVEPOINT went out (the RELEASE too): this command's own.
        first = false;
        if (auto back = conn.execScript("ROLLBACK TO SAVEPOINT gc"); !back) {
          fatal = back.error();
          break;
        }
      }
    }
    for (int attempt = 1;; ++attempt) {
      // [RELEASE SAVEPOINT gc,] SAVEPOINT gc[, opening]: one round trip.
      std::vector<pg::Statement> open;
      if (!first) open.push_back({"RELEASE SAVEPOINT gc", {}});
      open.push_back({"SAVEPOINT gc", {}});
      if (p->opening != nullptr) open.push_back(*p->opening);
      first = false;
      auto sent = pg::execPipeline(tx->connection(), open);
      if (!sent) {
        fatal = sent.error();
        break;
      }
      const size_t savepoint = open.size() - (p->opening != nullptr ? 2 : 1);
      if (!(*sent)[savepoint]) {
        fatal = (*sent)[savepoint].error();
        break;
      }
      orgs.command.clear();
      auto r = (*p->body)(*tx, p->opening != nullptr ? std::move(sent->back())
                                                     : Result<pg::ResultSet>(pg::ResultSet()));
      // A write the command left queued fails it, not the next one.
      if (r && tx->connection().deferredWrites() > 0) {
        if (auto flushed = tx->connection().flushDeferred(); !flushed) {
          r = unexpected(flushed.error());
        }
      }
      if (r) {
        if (!r->replayed) last_seq = std::max(last_seq, r->seq);
        orgs.batch.insert(orgs.command.begin(), orgs.command.end());
        p->result = std::move(r);
        break;
      }
      tx->connection().discardDeferred();
      if (auto back = tx->connection().execScript("ROLLBACK TO SAVEPOINT gc"); !back) {
        fatal = back.error();
        break;
      }
      if (r.error().is(errc::kDeferToNextBatch)) {
        deferred.push_back(p);
        break;
      }
      if (!transient(r.error()) || attempt >= options_.attempts) {
        p->result = std::move(r);
        break;
      }
    }
    if (fatal) break;
  }
  t_orgs = nullptr;
  if (fatal) return failAll(*fatal);
  if (last_seq > 0) {
    if (auto r = tx->connection().execDeferred(
            "SELECT pg_notify($1, $2)",
            {std::string(EventStore::kNotifyChannel), std::to_string(last_seq)});
        !r) {
      return failAll(r.error());
    }
  }
  if (auto r = tx->commit(); !r) return failAll(r.error());
}

}  // namespace plfm::cp
