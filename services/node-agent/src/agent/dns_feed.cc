#include "agent/dns_feed.h"

#include <algorithm>
#include <string>

#include "netdev/services_feed.h"
#include "plfm/core/log.h"

namespace plfm::agent {

DnsFeed::DnsFeed(Fetch fetch, Apply apply, std::chrono::seconds wait)
    : fetch_(std::move(fetch)), apply_(std::move(apply)), wait_(wait) {
  thread_ = std::thread([this] { run(); });
}

DnsFeed::~DnsFeed() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void DnsFeed::run() {
  int64_t version = 0;
  bool first = true;
  std::chrono::milliseconds backoff(500);
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    // The first poll answers at once: a new feed may still be at version 0.
    auto body = fetch_(version, first ? std::chrono::seconds(0) : wait_);
    Result<netdev::ServicesFeed> feed =
        body ? netdev::parseServicesFeed(*body) : Result<netdev::ServicesFeed>(body.error());
    if (!feed) {
      log::warn("services feed poll failed", {{"error", feed.error().toString()}});
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, backoff, [&] { return stopping_; });
      backoff = std::min(backoff * 2, std::chrono::milliseconds(10'000));
      continue;
    }
    backoff = std::chrono::milliseconds(500);
    if (!first && feed->version == version) continue;
    for (const std::string& why : feed->skipped) {
      log::warn("left a service out of the DNS table", {{"reason", why}});
    }
    apply_(netdev::dns::ServiceTable(feed->services));
    version = feed->version;
    applied_ = version;
    first = false;
  }
}

}  // namespace plfm::agent
