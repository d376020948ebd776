// VersionFeed lets many long-polls wait for a version that the views derive
// (a node's plan version, the edge feed's cursor) without each one querying
// the database whenever any event is applied: one thread asks once per
// checkpoint advance which keys' versions rose, and wakes their waiters. It
// does not ask when no event since its last query changes a view it could
// read (ProjectionWorker::watchedSeq).
// The NodePlan feed (node_plan.h) and the edge feed (edge_feed.h) are two
// instances with their own query.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "plfm/pg/pg.h"
#include "projections.h"

namespace plfm::cp {

// The one bigint a version query selects (a one-row view's version).
[[nodiscard]] Result<int64_t> readVersion(pg::Connection& conn, std::string_view sql);

class VersionFeed {
 public:
  // `sql` selects rows (key text, version bigint) of the keys whose version
  // is above $1 (a checkpoint); `name` labels log lines. The version of
  // `global_key`, when not empty, counts for every key (the mesh version of
  // the node plans).
  VersionFeed(std::string name, std::string conninfo, ProjectionWorker& worker, std::string sql,
              std::string global_key = {});
  virtual ~VersionFeed();
  VersionFeed(const VersionFeed&) = delete;
  VersionFeed& operator=(const VersionFeed&) = delete;

  [[nodiscard]] Result<void> start();
  void stop();
  [[nodiscard]] bool running() const { return running_.load(); }

  // Waits until the version of `key` known to the feed is above `after`, or
  // `timeout` passes, or the feed stops. The caller re-reads from the
  // database either way.
  void waitBeyond(const std::string& key, int64_t after, std::chrono::milliseconds timeout);

  // How many times the feed has queried the views (for /metrics).
  [[nodiscard]] uint64_t queries() const { return queries_.load(); }
  [[nodiscard]] const std::string& name() const { return name_; }

 private:
  void run();
  Result<void> refresh(pg::Connection& conn, int64_t since);

  std::string name_;
  std::string conninfo_;
  ProjectionWorker& worker_;
  std::string sql_;
  std::string global_key_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<uint64_t> queries_{0};
  int64_t seen_ = 0;  // the checkpoint the versions reflect (feed thread only)
  std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<std::string, int64_t> versions_;
  std::optional<pg::Connection> conn_;
};

}  // namespace plfm::cp
