// The agent's thread that long-polls the control plane's services feed
// (docs/specs/networking/mesh.md, "Internal names") into the DNS
// responder's table: each answer is parsed at the edge
// (netdev::parseServicesFeed; bad entries are left out and logged) and
// handed to `apply` when its version moved (or first). A failed poll backs
// off from 0.5 s to 10 s.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "netdev/dns_message.h"
#include "plfm/core/result.h"

namespace plfm::agent {

class DnsFeed {
 public:
  // One poll: the feed's body beyond `after`, holding up to `wait`.
  using Fetch = std::function<Result<nlohmann::json>(int64_t after, std::chrono::seconds wait)>;
  using Apply = std::function<void(netdev::dns::ServiceTable)>;

  // Starts polling; `wait` caps each hold so that the destructor is quick.
  DnsFeed(Fetch fetch, Apply apply, std::chrono::seconds wait = std::chrono::seconds(5));
  ~DnsFeed();  // stops the thread
  DnsFeed(const DnsFeed&) = delete;
  DnsFeed& operator=(const DnsFeed&) = delete;

  // The version last applied (-1: none yet), for tests.
  [[nodiscard]] int64_t appliedVersion() const { return applied_.load(); }

 private:
  void run();

  Fetch fetch_;
  Apply apply_;
  std::chrono::seconds wait_;
  std::atomic<int64_t> applied_{-1};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace plfm::agent
