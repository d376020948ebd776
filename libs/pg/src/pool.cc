#include "plfm/pg/pool.h"

namespace plfm::pg {

Pool::Pool(std::string conninfo, size_t size) : conninfo_(std::move(conninfo)), size_(size) {}

Pool::Lease::~Lease() {
  if (pool_ != nullptr && conn_) pool_->release(std::move(conn_));
}

Result<Pool::Lease> Pool::acquire(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      // One whose server went away while it sat here (a failover, a restart,
      // a terminated session) is replaced, not handed to a request to fail.
      if (c->closedByServer()) {
        --open_;
        continue;
      }
      return Lease(this, std::move(c));
    }
    if (open_ < size_) {
      ++open_;
      lock.unlock();
      auto c = Connection::connect(conninfo_);
      if (!c) {
        lock.lock();
        --open_;
        cv_.notify_one();
        return Error(plfm::errc::kUnavailable, "database unavailable: " + c.error().message());
      }
      return Lease(this, std::make_unique<Connection>(std::move(*c)));
    }
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
        open_ >= size_) {
      return Error(plfm::errc::kUnavailable, "no database connection free within " +
                                                 std::to_string(timeout.count()) +
                                                 " ms (pool size " + std::to_string(size_) + ")");
    }
  }
}

void Pool::release(std::unique_ptr<Connection> c) {
  std::lock_guard lock(mu_);
  if (c->idle()) {  // a broken link or a leaked transaction is dropped
    idle_.push_back(std::move(c));
  } else {
    --open_;
  }
  cv_.notify_one();
}

size_t Pool::inUse() const {
  std::lock_guard lock(mu_);
  return open_ - idle_.size();
}

}  // namespace plfm::pg
