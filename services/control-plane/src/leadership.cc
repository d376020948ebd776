#include "leadership.h"

#include <unistd.h>

#include <array>

#include "plfm/core/log.h"
#include "plfm/core/thread_guard.h"

namespace plfm::cp {
namespace {

// The leadership lock (session-scoped): any constant all replicas share.
constexpr int64_t kLeaderLockKey = 0x706c666d73636864;  // "plfmschd"

}  // namespace

Result<void> checkFence(pg::Transaction& tx, const Fence& fence) {
  PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec("SELECT epoch FROM leadership WHERE id = 1 FOR SHARE"));
  if (rs.rows() != 1) return Error(plfm::errc::kInternal, "the leadership row is missing");
  PLFM_ASSIGN_OR_RETURN(int64_t epoch, rs.int64(0, 0));
  if (epoch != fence.epoch) {
    return Error(errc::kFenced, "this replica no longer leads: the leadership epoch moved on")
        .with("epoch", std::to_string(fence.epoch))
        .with("current_epoch", std::to_string(epoch));
  }
  return ok();
}

const std::string& replicaId() {
  static const std::string id = [] {
    std::array<char, 256> host{};
    if (::gethostname(host.data(), host.size() - 1) != 0) host[0] = '\0';
    std::string out = host[0] != '\0' ? std::string(host.data()) : std::string("localhost");
    out += ':';
    out += std::to_string(::getpid());
    return out;
  }();
  return id;
}

Result<LeaderInfo> readLeader(pg::Connection& conn) {
  PLFM_ASSIGN_OR_RETURN(auto rs,
                        conn.exec("SELECT epoch, holder, to_char(since AT TIME ZONE 'UTC', "
                                  "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), settled FROM leadership "
                                  "WHERE id = 1"));
  if (rs.rows() != 1) return Error(plfm::errc::kInternal, "the leadership row is missing");
  LeaderInfo out;
  PLFM_ASSIGN_OR_RETURN(out.epoch, rs.int64(0, 0));
  out.holder = rs.text(0, 1);
  out.since = rs.optText(0, 2);
  PLFM_ASSIGN_OR_RETURN(out.settled, rs.int64(0, 3));
  return out;
}

// ---- Leadership ----

Leadership::Leadership(std::string conninfo, Options options)
    : conninfo_(std::move(conninfo)), options_(std::move(options)) {}

Leadership::~Leadership() { stop(); }

Result<void> Leadership::start() {
  if (running_) return ok();
  PLFM_ASSIGN_OR_RETURN(conninfo_, lockSessionConninfo(conninfo_));
  tryAcquire();
  running_ = true;
  thread_ = std::thread([this] {
    runGuarded(
        "leadership", [this] { run(); }, [this] { return !running_.load(); });
  });
  return ok();
}

void Leadership::stop() {
  if (!running_.exchange(false)) return;
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mu_);
  if (fence_) lose("stopping");
  conn_.reset();  // releases the lock
}

std::optional<Fence> Leadership::fence() const {
  std::lock_guard lock(mu_);
  if (!fence_ || std::chrono::steady_clock::now() - last_ping_ > options_.lease) {
    return std::nullopt;
  }
  return fence_;
}

void Leadership::stepDown(const std::string& reason) {
  {
    std::lock_guard lock(mu_);
    if (!fence_) return;
    fence_.reset();
    step_down_ = true;
    log::warn("leadership lost", {{"reason", reason}, {"replica_id", replicaId()}});
  }
  changed();
  cv_.notify_all();
}

void Leadership::changed() {
  generation_.fetch_add(1);
  if (options_.on_change) options_.on_change();
}

void Leadership::lose(const std::string& reason) {
  if (fence_) {
    log::warn("leadership lost",
              {{"reason", reason}, {"replica_id", replicaId()}, {"epoch", fence_->epoch}});
  }
  fence_.reset();
  conn_.reset();  // closing the session releases the lock, if the server still had it
}

// The lock session (conn_) belongs to the leadership thread (and to start()
// and stop() when there is no thread): queries on it run without mu_, so a
// stuck connection never blocks fence().
void Leadership::tryAcquire() {
  if (!conn_ || !conn_->healthy()) {
    auto c = pg::Connection::connect(conninfo_);
    if (!c) {
      conn_.reset();
      log::error("leadership cannot connect; retrying", {{"error", c.error().toString()}});
      return;
    }
    conn_.emplace(std::move(*c));
  }
  auto won = conn_->exec("SELECT pg_try_advisory_lock($1)", {kLeaderLockKey});
  if (!won) {
    log::error("leadership lock attempt failed", {{"error", won.error().toString()}});
    conn_.reset();
    return;
  }
  if (won->text(0, 0) != "t") return;
  // Won: a new epoch, committed before anything acts on it.
  auto bumped = conn_->exec(
      "UPDATE leadership SET epoch = epoch + 1, holder = $1, since = now() WHERE id = 1 "
      "RETURNING epoch",
      {replicaId()});
  if (!bumped || bumped->rows() != 1) {
    log::error("leadership epoch not taken; releasing the lock",
               {{"error", bumped ? "no leadership row" : bumped.error().toString()}});
    conn_.reset();
    return;
  }
  const int64_t epoch = bumped->int64(0, 0).value_or(0);
  {
    std::lock_guard lock(mu_);
    fence_ = Fence{epoch};
    last_ping_ = std::chrono::steady_clock::now();
  }
  log::info("leadership taken", {{"replica_id", replicaId()}, {"epoch", epoch}});
  changed();
}

void Leadership::ping() {
  std::unique_lock lock(mu_);
  if (!fence_ || !conn_) return;
  const int64_t mine = fence_->epoch;
  lock.unlock();
  // A primary demoted by a PostgreSQL failover still answers reads: the
  // lock it held there fences nothing, the new primary's lock is free.
  auto rs = conn_->exec("SELECT epoch, pg_is_in_recovery() FROM leadership WHERE id = 1");
  lock.lock();
  if (!fence_) return;  // stepped down meanwhile
  if (!rs) {
    lose("the lock session failed: " + rs.error().toString());
  } else if (rs->rows() == 1 && rs->text(0, 1) == "t") {
    lose("the database of the lock session is a standby now");
  } else if (rs->rows() != 1 || rs->int64(0, 0).value_or(-1) != mine) {
    lose("another replica took a newer epoch");
  } else {
    last_ping_ = std::chrono::steady_clock::now();
    return;
  }
  lock.unlock();
  changed();
}

void Leadership::run() {
  while (running_) {
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, options_.ping_interval, [this] { return !running_ || step_down_; });
      if (!running_) break;
      if (step_down_) {
        step_down_ = false;
        conn_.reset();  // releases the lock; try again below like any replica
      }
    }
    bool leading = false;
    {
      std::lock_guard lock(mu_);
      leading = fence_.has_value();
    }
    if (leading) {
      ping();
    } else {
      tryAcquire();
    }
  }
}

}  // namespace plfm::cp
