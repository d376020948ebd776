// Fakes for the exec unit tests: an in-memory ExecConnection playing the
// server, and a string ByteSink. Test code only.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "exec_pump.h"
#include "plfm/guest_proto/exec.h"
#include "plfm/guest_proto/frame.h"
#include "plfm/http/websocket.h"

namespace plfm::vt::testing {

namespace gp = guest_proto;

// The server side of a connection, in memory. The test pushes server
// messages (or an end) with serve()/end(); what the client wrote is in
// sent(), decoded.
class FakeConnection : public ExecConnection {
 public:
  Result<std::string> read() override {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !inbox_.empty() || end_.has_value(); });
    if (!inbox_.empty()) {
      std::string m = std::move(inbox_.front());
      inbox_.pop_front();
      return m;
    }
    return *end_;
  }
  Result<void> write(std::string_view message) override {
    std::lock_guard lock(mu_);
    if (closed_) return Error(http::kErrWebSocketClosed, "closed");
    gp::Decoder d;
    d.feed(message);
    auto f = d.next();
    EXPECT_TRUE(f && f->has_value() && d.buffered() == 0) << "one frame per message";
    if (f && f->has_value()) sent_.push_back(**f);
    cv_.notify_all();
    return {};
  }
  Result<void> close(uint16_t code, std::string_view reason) override {
    std::lock_guard lock(mu_);
    closed_ = true;
    close_code_ = code;
    close_reason_ = std::string(reason);
    if (!end_) end_ = closedError(code, std::string(reason));
    cv_.notify_all();
    return {};
  }

  template <class M>
  void serve(const M& m) {
    auto frame = gp::encode(m, gp::kFirstExecStream);
    ASSERT_TRUE(frame);
    serveRaw(*frame);
  }
  void serveRaw(std::string message) {
    std::lock_guard lock(mu_);
    inbox_.push_back(std::move(message));
    cv_.notify_all();
  }
  void end(Error e) {
    std::lock_guard lock(mu_);
    end_ = std::move(e);
    cv_.notify_all();
  }
  static Error closedError(uint16_t code, std::string reason) {
    return Error(http::kErrWebSocketClosed, "closed")
        .with("close_code", std::to_string(code))
        .with("close_reason", std::move(reason));
  }

  std::vector<gp::Frame> sent() {
    std::lock_guard lock(mu_);
    return sent_;
  }
  // Waits until a frame of `type` was sent; returns it.
  std::optional<gp::Frame> waitFor(gp::FrameType type, size_t nth = 0) {
    std::unique_lock lock(mu_);
    std::optional<gp::Frame> found;
    cv_.wait_for(lock, std::chrono::seconds(10), [&] {
      size_t seen = 0;
      for (const auto& f : sent_) {
        if (f.type == type && seen++ == nth) {
          found = f;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  std::optional<uint16_t> closeCode() {
    std::lock_guard lock(mu_);
    return close_code_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> inbox_;
  std::optional<Error> end_;
  std::vector<gp::Frame> sent_;
  bool closed_ = false;
  std::optional<uint16_t> close_code_;
  std::string close_reason_;
};

class StringSink : public ByteSink {
 public:
  Result<void> write(std::string_view bytes) override {
    if (broken) return Error(kErrBrokenPipe, "gone");
    data += bytes;
    return {};
  }
  std::string data;
  bool broken = false;
};

inline gp::ExecData out(std::string s) { return {.fd = gp::ExecFd::kStdout, .data = std::move(s)}; }

inline uint32_t windowSum(const std::vector<gp::Frame>& frames) {
  uint32_t sum = 0;
  for (const auto& f : frames) {
    if (f.type != gp::FrameType::kExecWindow) continue;
    sum += gp::decodeExecWindow(f.payload)->increment;
  }
  return sum;
}

}  // namespace plfm::vt::testing
