// Leadership among control-plane replicas, fenced by an epoch
// (docs/specs/control-plane/ha.md).
//
// Leadership owns the lock session: a connection of its own that holds the
// leadership advisory lock. A thread tries the lock every second; on winning
// it bumps `leadership.epoch` and hands out a Fence. While leading it pings
// the session every second; an error, a timeout or another epoch ends the
// leadership, and so does a ping older than the lease. Singletons ask
// fence() before acting and call checkFence() first in every transaction
// that writes; on a `fenced` error they call stepDown().
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "plfm/core/result.h"
#include "plfm/pg/pg.h"

namespace plfm::cp {

namespace errc {
// A leader-only write found another epoch: this replica no longer leads.
inline constexpr std::string_view kFenced = "fenced";
}  // namespace errc

// The epoch this replica's leadership holds.
struct Fence {
  int64_t epoch = 0;
};

// Reads the leadership row FOR SHARE in `tx` and fails with errc::kFenced
// unless its epoch is `fence`'s. Call it first in the transaction: the row
// lock makes a takeover wait until the transaction ends.
[[nodiscard]] Result<void> checkFence(pg::Transaction& tx, const Fence& fence);

// This process's replica id: "<hostname>:<pid>".
[[nodiscard]] const std::string& replicaId();

// `conninfo` with TCP keepalives and tcp_user_timeout, client and server
// side, when it reaches the database over TCP; unchanged over a Unix socket.
// Always with the lock session's statement_timeout.
[[nodiscard]] Result<std::string> lockSessionConninfo(const std::string& conninfo);

// The leadership row as the database has it.
struct LeaderInfo {
  int64_t epoch = 0;
  std::string holder;                // empty before any replica led
  std::optional<std::string> since;  // RFC 3339
  int64_t settled = 0;
};
[[nodiscard]] Result<LeaderInfo> readLeader(pg::Connection& conn);

class Leadership {
 public:
  struct Options {
    std::chrono::milliseconds ping_interval{1000};  // also the retry interval
    std::chrono::milliseconds lease{5000};
    // Called (on the leadership thread) whenever this replica starts or stops leading.
    std::function<void()> on_change = nullptr;
  };

  Leadership(std::string conninfo, Options options);
  ~Leadership();
  Leadership(const Leadership&) = delete;
  Leadership& operator=(const Leadership&) = delete;

  // Tries the lock once now, then starts the thread.
  [[nodiscard]] Result<void> start();
  void stop();

  // The fence while this replica leads and its last ping is within the lease.
  [[nodiscard]] std::optional<Fence> fence() const;
  // Counts leadership changes (start or stop of leading).
  [[nodiscard]] uint64_t generation() const { return generation_.load(); }
  // Ends the leadership now (after a `fenced` error): closes the lock session.
  void stepDown(const std::string& reason);

 private:
  void run();
  void tryAcquire();
  void ping();
  void lose(const std::string& reason);  // with mu_ held
  void changed();

  std::string conninfo_;
  Options options_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<uint64_t> generation_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<pg::Connection> conn_;  // the lock session
  std::optional<Fence> fence_;
  std::chrono::steady_clock::time_point last_ping_{};
  bool step_down_ = false;  // asked by stepDown(), done by the thread
};

}  // namespace plfm::cp
