// The guest's end of an ExecMux in tests without a VM (exec_mux_test.cc,
// exec_endpoint_test.cc): every frame the agent sent, decoded, in order; and
// an EXEC_OPEN with only its argv.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/exec_mux.h"
#include "plfm/guest_proto/guest_proto.h"

namespace plfm::agent::testing {

inline guest_proto::ExecOpen execOpen(std::vector<std::string> argv) {
  guest_proto::ExecOpen open;
  open.argv = std::move(argv);
  return open;
}

class FakeGuest {
 public:
  ExecMux::SendFn sendFn() {
    return [this](const std::string& bytes) -> Result<void> {
      std::lock_guard lock(mu_);
      if (fail_) return Error("agent.channel_closed", "gone");
      decoder_.feed(bytes);
      while (true) {
        auto f = decoder_.next();
        EXPECT_TRUE(f) << f.error().toString();
        if (!f || !*f) break;
        frames_.push_back(std::move(**f));
      }
      cv_.notify_all();
      return ok();
    };
  }
  std::optional<guest_proto::Frame> next(
      std::chrono::milliseconds timeout = std::chrono::milliseconds(3000)) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return !frames_.empty(); })) return std::nullopt;
    guest_proto::Frame f = std::move(frames_.front());
    frames_.pop_front();
    return f;
  }
  size_t pending() {
    std::lock_guard lock(mu_);
    return frames_.size();
  }
  // Every later send fails, as on a closed channel.
  void fail() {
    std::lock_guard lock(mu_);
    fail_ = true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  guest_proto::Decoder decoder_;
  std::deque<guest_proto::Frame> frames_;
  bool fail_ = false;
};

}  // namespace plfm::agent::testing
