#include "group_commit.h"

#include <algorithm>
#include <utility>

namespace plfm::cp {

// The orgs whose events the batch running on this thread holds uncommitted:
// those of commands already released (`batch`) and of the running one.
struct GroupCommitBatchOrgs {
  std::set<std::string> batch;
  std::set<std::string> command;
};

namespace {

using BatchOrgs = GroupCommitBatchOrgs;
thread_local BatchOrgs* t_orgs = nullptr;
thread_local bool t_presumed = false;
thread_local int64_t* t_head = nullptr;

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

int64_t* GroupCommitter::knownHead() { return t_head; }

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

// One batch: its commands in queue order, each in the savepoint `gc` (a
// RELEASE of the previous one and a new SAVEPOINT), then COMMIT.
//
// A presumed command runs pipelined: its RELEASE, SAVEPOINT and writes are
// queued on the connection (its append too, numbered from the head the
// batch knows) and go out with a later round trip: a later command's read,
// or the COMMIT. Each step remembers the index of its first queued write.
// When a queued write fails, PostgreSQL skipped everything after it in that
// pipeline, so the savepoint in force is the failed command's own: the
// batch rolls back to it (rewind), and runs that command again the usual
// way and every command after it again. A usual-way command starts with
// nothing queued (settle), so each failure is its own.
class GroupCommitter::Batch {
 public:
  Batch(pg::Transaction& tx, std::vector<Pending*>& commands, int attempts, int64_t head)
      : tx_(tx),
        conn_(tx.connection()),
        commands_(commands),
        steps_(commands.size()),
        attempts_(attempts),
        head_start_(head),
        head_(head) {}

  // Runs every command and commits. An error: the batch failed as a whole.
  std::optional<Error> run() {
    t_orgs = &orgs_;
    auto e = runAndCommit();
    t_orgs = nullptr;
    return e;
  }

  // The commands that go first into the next batch.
  [[nodiscard]] std::vector<Pending*> deferred() const {
    std::vector<Pending*> out;
    for (size_t i = 0; i < steps_.size(); ++i) {
      if (steps_[i].deferred) out.push_back(commands_[i]);
    }
    return out;
  }

 private:
  struct Step {
    bool pipelined = false;     // its statements were queued
    bool usual = false;         // (again) the usual way: its pipelined run failed
    bool deferred = false;      // to the next batch
    uint64_t first_write = 0;   // the connection's index of its first queued write
    uint64_t savepoint_at = 0;  // ... and of its SAVEPOINT
    int64_t head_before = 0;
    bool open_before = false;
    std::set<std::string> orgs;  // whose events it appended
  };

  std::optional<Error> runAndCommit() {
    for (;;) {
      while (next_ < commands_.size()) {
        const size_t i = next_;
        if (commands_[i]->presume && !steps_[i].usual) {
          if (auto e = pipelined(i)) return e;
          if (next_ != i || !steps_[i].usual) continue;  // done, deferred or rewound
        }
        bool rewound = false;
        if (auto e = settle(rewound)) return e;
        if (rewound) continue;
        if (auto e = usual(i)) return e;
        ++next_;
      }
      int64_t last_seq = 0;
      for (size_t i = 0; i < commands_.size(); ++i) {
        const auto& r = commands_[i]->result;
        if (!steps_[i].deferred && r && *r && !(*r)->replayed)
          last_seq = std::max(last_seq, (*r)->seq);
      }
      // The numbering of the batch's appends, checked once before COMMIT:
      // exactly the seqs after the head it read, up to the head it counted.
      const uint64_t check_at = conn_.deferredNext();
      if (head_ > head_start_) {
        if (auto r = conn_.execDeferred("SELECT events_expect_head($1, $2)", {head_start_, head_});
            !r) {
          return r.error();
        }
      }
      if (last_seq > 0) {
        if (auto r = conn_.execDeferred(
                "SELECT pg_notify($1, $2)",
                {std::string(EventStore::kNotifyChannel), std::to_string(last_seq)});
            !r) {
          return r.error();
        }
      }
      bool queued_failed = false;
      auto committed = tx_.commit(&queued_failed);
      if (committed) return std::nullopt;
      if (!queued_failed) return committed.error();
      const auto failed = conn_.takeDeferredFailure();
      if (!failed || *failed >= check_at) return committed.error();
      if (auto e = rewind(*failed)) return e;
    }
  }

  // Runs command i with its statements queued. Done: next_ moves on. Its
  // own failure: its statements are dropped or rolled back and it is marked
  // `usual` (or deferred to the next batch, next_ moving on). An earlier
  // command's queued write failed: rewound.
  std::optional<Error> pipelined(size_t i) {
    Pending* p = commands_[i];
    Step& s = steps_[i];
    s = Step{};
    s.pipelined = true;
    s.head_before = head_;
    s.open_before = open_;
    s.first_write = conn_.deferredNext();
    if (open_) {
      if (auto r = conn_.execDeferred("RELEASE SAVEPOINT gc", {}); !r) return r.error();
    }
    s.savepoint_at = conn_.deferredNext();
    if (auto r = conn_.execDeferred("SAVEPOINT gc", {}); !r) return r.error();
    open_ = true;
    orgs_.command.clear();
    (void)conn_.takeDeferredFailure();
    t_presumed = true;
    t_head = &head_;
    auto r = (*p->body)(tx_, Result<pg::ResultSet>(pg::ResultSet()));
    t_presumed = false;
    t_head = nullptr;
    if (r) {
      s.orgs = orgs_.command;
      orgs_.batch.insert(orgs_.command.begin(), orgs_.command.end());
      p->result = std::move(r);
      ++next_;
      return std::nullopt;
    }
    const auto failed = conn_.takeDeferredFailure();
    if (failed && *failed < s.first_write) {
      // An earlier command's write failed in this command's round trip.
      conn_.discardDeferred();
      return rewind(*failed);
    }
    if (failed && *failed <= s.savepoint_at) return r.error();  // its RELEASE or SAVEPOINT
    s.pipelined = false;
    s.usual = true;
    head_ = s.head_before;
    if (conn_.deferredSent() > s.savepoint_at) {
      // Its SAVEPOINT went out: back to it.
      conn_.discardDeferred();
      if (auto back = conn_.execScript("ROLLBACK TO SAVEPOINT gc"); !back) return back.error();
    } else {
      // Nothing of it went out: drop what it queued, keep what came before.
      conn_.discardDeferredFrom(s.first_write);
      open_ = s.open_before;
    }
    if (r.error().is(errc::kDeferToNextBatch)) {
      s.deferred = true;  // the usual way would defer it too
      ++next_;
    }
    return std::nullopt;
  }

  // Sends what is queued; a failed write rewinds to its command.
  std::optional<Error> settle(bool& rewound) {
    if (conn_.deferredWrites() == 0) return std::nullopt;
    (void)conn_.takeDeferredFailure();
    auto flushed = conn_.flushDeferred();
    if (flushed) return std::nullopt;
    const auto failed = conn_.takeDeferredFailure();
    if (!failed) return flushed.error();
    conn_.discardDeferred();
    rewound = true;
    return rewind(*failed);
  }

  // Queued write `failed` failed, and PostgreSQL skipped the rest of its
  // pipeline: back to the savepoint of the command it belongs to, which runs
  // again the usual way, and so does every command after it.
  std::optional<Error> rewind(uint64_t failed) {
    size_t k = next_;
    for (size_t j = std::min(next_, steps_.size()); j-- > 0;) {
      if (steps_[j].pipelined && steps_[j].first_write <= failed) {
        k = j;
        break;
      }
    }
    if (k == next_ || failed <= steps_[k].savepoint_at) {
      return Error(plfm::errc::kInternal, "a queued savepoint of the batch failed");
    }
    if (auto back = conn_.execScript("ROLLBACK TO SAVEPOINT gc"); !back) return back.error();
    Step& s = steps_[k];
    head_ = s.head_before;
    open_ = true;
    s.pipelined = false;
    s.usual = true;
    orgs_.batch.clear();
    for (size_t j = 0; j < k; ++j) orgs_.batch.insert(steps_[j].orgs.begin(), steps_[j].orgs.end());
    for (size_t j = k; j < steps_.size(); ++j) {
      steps_[j].deferred = false;
      steps_[j].orgs.clear();
    }
    next_ = k;
    return std::nullopt;
  }

  // Command i the usual way: [RELEASE SAVEPOINT gc,] SAVEPOINT gc and its
  // opening in one round trip, the body, and its queued writes sent before
  // the next command; transient errors run it again.
  std::optional<Error> usual(size_t i) {
    Pending* p = commands_[i];
    Step& s = steps_[i];
    s.pipelined = false;
    s.deferred = false;
    s.orgs.clear();
    for (int attempt = 1;; ++attempt) {
      std::vector<pg::Statement> open;
      if (open_) open.push_back({"RELEASE SAVEPOINT gc", {}});
      open.push_back({"SAVEPOINT gc", {}});
      if (p->opening != nullptr) open.push_back(*p->opening);
      open_ = true;
      auto sent = pg::execPipeline(conn_, open);
      if (!sent) return sent.error();
      const size_t savepoint = open.size() - (p->opening != nullptr ? 2 : 1);
      if (!(*sent)[savepoint]) return (*sent)[savepoint].error();
      orgs_.command.clear();
      auto r = (*p->body)(tx_, p->opening != nullptr ? std::move(sent->back())
                                                     : Result<pg::ResultSet>(pg::ResultSet()));
      // A write the command left queued fails it, not the next one.
      if (r && conn_.deferredWrites() > 0) {
        if (auto flushed = conn_.flushDeferred(); !flushed) r = unexpected(flushed.error());
      }
      if (r) {
        if (!r->replayed && r->seq > head_) head_ = r->seq;
        s.orgs = orgs_.command;
        orgs_.batch.insert(orgs_.command.begin(), orgs_.command.end());
        p->result = std::move(r);
        return std::nullopt;
      }
      conn_.discardDeferred();
      if (auto back = conn_.execScript("ROLLBACK TO SAVEPOINT gc"); !back) return back.error();
      if (r.error().is(errc::kDeferToNextBatch)) {
        s.deferred = true;
        return std::nullopt;
      }
      if (!transient(r.error()) || attempt >= attempts_) {
        p->result = std::move(r);
        return std::nullopt;
      }
    }
  }

  pg::Transaction& tx_;
  pg::Connection& conn_;
  std::vector<Pending*>& commands_;
  std::vector<Step> steps_;
  const int attempts_;
  const int64_t head_start_;  // the log's highest seq when the batch took the lock
  // The log's highest seq in this transaction, as far as known: the last seq
  // of the last command that appended.
  int64_t head_;
  bool open_ = false;  // a savepoint `gc` exists (sent or queued)
  size_t next_ = 0;    // the next command to run
  GroupCommitBatchOrgs orgs_;
};

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
  // the lock, a pipelined command's writes with the next round trip, the
  // NOTIFY with the COMMIT.
  const pg::BatchedWrites batched(*conn_);
  auto tx = pg::Transaction::begin(*conn_);
  if (!tx) return failAll(tx.error());
  // The transaction's lock_timeout, one append lock for the whole batch,
  // held until it commits, and the log's head under that lock.
  const pg::Statement start[] = {{"SELECT set_config('lock_timeout', $1, true)",
                                  {std::to_string(options_.lock_timeout.count()) + "s"}},
                                 EventStore::lockLogStatement(),
                                 {"SELECT coalesce(max(seq), 0) FROM events", {}}};
  auto started = pg::execPipeline(tx->connection(), start);
  if (!started) return failAll(started.error());
  for (auto& r : *started) {
    if (!r) return failAll(r.error());
  }
  auto head = started->back()->int64(0, 0);
  if (!head) return failAll(head.error());
  Batch run(*tx, batch, options_.attempts, *head);
  if (auto e = run.run()) return failAll(*e);
  deferred = run.deferred();
}

}  // namespace plfm::cp
