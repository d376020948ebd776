#include "version_feed.h"

#include "plfm/core/log.h"
#include "plfm/core/thread_guard.h"

namespace plfm::cp {

VersionFeed::VersionFeed(std::string name, std::string conninfo, ProjectionWorker& worker,
                         std::string sql, std::string global_key)
    : name_(std::move(name)),
      conninfo_(std::move(conninfo)),
      worker_(worker),
      sql_(std::move(sql)),
      global_key_(std::move(global_key)) {}

VersionFeed::~VersionFeed() { stop(); }

Result<void> VersionFeed::refresh(pg::Connection& conn, int64_t since) {
  queries_.fetch_add(1);
  PLFM_ASSIGN_OR_RETURN(auto rs, conn.exec(sql_, {since}));
  if (rs.rows() == 0) return ok();
  {
    std::lock_guard lock(mu_);
    for (int i = 0; i < rs.rows(); ++i) {
      int64_t& v = versions_[std::string(rs.text(i, 0))];
      v = std::max(v, rs.int64(i, 1).value_or(0));
    }
  }
  cv_.notify_all();
  return ok();
}

Result<void> VersionFeed::start() {
  if (running_) return ok();
  PLFM_ASSIGN_OR_RETURN(auto conn, pg::Connection::connect(conninfo_));
  // The checkpoint first: everything up to it is in the views we read next.
  seen_ = worker_.checkpoint();
  PLFM_TRY(refresh(conn, 0));
  conn_.emplace(std::move(conn));
  running_ = true;
  thread_ = std::thread([this] {
    runGuarded(
        name_ + " feed", [this] { run(); }, [this] { return !running_.load(); });
  });
  return ok();
}

void VersionFeed::stop() {
  if (!running_.exchange(false)) return;
  worker_.wakeWaiters();
  if (thread_.joinable()) thread_.join();
  conn_.reset();
  { std::lock_guard lock(mu_); }
  cv_.notify_all();
}

void VersionFeed::waitBeyond(const std::string& key, int64_t after,
                             std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  auto beyond = [&](const std::string& k) {
    auto it = versions_.find(k);
    return it != versions_.end() && it->second > after;
  };
  cv_.wait_for(lock, timeout, [&] {
    return !running_ || beyond(key) || (!global_key_.empty() && beyond(global_key_));
  });
}

void VersionFeed::run() {
  auto cancelled = [this] { return !running_.load(); };
  while (running_) {
    const int64_t cp = worker_.waitBeyond(seen_, std::chrono::seconds(1), cancelled);
    if (!running_ || cp <= seen_) continue;
    // Read after the checkpoint, this covers every event up to it: when none
    // since the last refresh changes a view a feed reads (an app created, an
    // audit event), no version can have risen.
    if (worker_.watchedSeq() <= seen_) {
      seen_ = cp;
      continue;
    }
    if (!conn_ || !conn_->healthy()) {
      auto c = pg::Connection::connect(conninfo_);
      if (!c) {
        log::error(name_ + " feed cannot connect; retrying", {{"error", c.error().toString()}});
        worker_.waitBeyond(INT64_MAX, std::chrono::seconds(1), cancelled);
        continue;
      }
      conn_.emplace(std::move(*c));
    }
    // Every change up to `cp` is committed: the worker published it after
    // its transaction. Changes beyond it that the query also sees are fine.
    if (auto r = refresh(*conn_, seen_); !r) {
      log::error(name_ + " feed refresh failed; retrying", {{"error", r.error().toString()}});
      continue;
    }
    seen_ = cp;
  }
}

Result<int64_t> readVersion(pg::Connection& conn, std::string_view sql) {
  PLFM_ASSIGN_OR_RETURN(auto rs, conn.exec(sql));
  return rs.int64(0, 0);
}

}  // namespace plfm::cp
