// A fixed-size pool of PostgreSQL connections for request handlers.
//
//   PLFM_ASSIGN_OR_RETURN(auto lease, pool.acquire(std::chrono::seconds(5)));
//   lease->exec(...);   // returned to the pool when `lease` goes out of scope
//
// Connections are opened lazily up to `size`. A connection found broken
// when it is returned, or closed by its server while idle, is dropped and
// replaced on demand, so a database restart or failover heals without
// restarting the service and without failing the next request.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "plfm/pg/pg.h"

namespace plfm::pg {

class Pool {
 public:
  Pool(std::string conninfo, size_t size);
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  class Lease {
   public:
    Lease(Lease&& o) noexcept : pool_(o.pool_), conn_(std::move(o.conn_)) { o.pool_ = nullptr; }
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();
    Connection& operator*() { return *conn_; }
    Connection* operator->() { return conn_.get(); }

   private:
    friend class Pool;
    Lease(Pool* p, std::unique_ptr<Connection> c) : pool_(p), conn_(std::move(c)) {}
    Pool* pool_;
    std::unique_ptr<Connection> conn_;
  };

  // Waits up to `timeout` for a free connection; errc::kUnavailable when
  // none frees up or the database cannot be reached.
  [[nodiscard]] Result<Lease> acquire(std::chrono::milliseconds timeout);

  [[nodiscard]] const std::string& conninfo() const { return conninfo_; }
  [[nodiscard]] size_t size() const { return size_; }
  [[nodiscard]] size_t inUse() const;

 private:
  void release(std::unique_ptr<Connection> c);

  std::string conninfo_;
  size_t size_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Connection>> idle_;
  size_t open_ = 0;  // connections in use or idle
};

}  // namespace plfm::pg
