// Stress for the closing races of websocket_session.h: one thread blocked in
// read(), another calling close(1000), while the peer writes its last message
// and closes at the same moment; both ways round, over loopback. Each round
// ends with ~WebSocket, which must return (a watchdog fails the test instead
// of letting it hang).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <random>
#include <thread>
#include <vector>

#include "plfm/http/http.h"
#include "plfm/http/websocket.h"

namespace plfm::http {
namespace {

using namespace std::chrono_literals;

// PLFM_WS_RACE_ROUNDS raises it for a longer hunt.
int roundCount() {
  const char* env = std::getenv("PLFM_WS_RACE_ROUNDS");
  return env != nullptr ? std::atoi(env) : 300;
}
// A round takes milliseconds; one that has not ended in this long hangs (it is
// over handshake_timeout plus close()'s slack, so not a slow close).
constexpr auto kStuck = 10s;
constexpr int kParallel = 4;
constexpr int kBusy = 2;
const WebSocketOptions kOptions{.handshake_timeout = 5s};

// Spins for a small random time so that the two sides' closes land in every
// order; a sleep would be far too coarse.
void jitter(std::minstd_rand& rng) {
  const int spins = static_cast<int>(rng() % 4000);
  std::atomic<int> sink{0};
  for (int i = 0; i < spins; ++i) sink.fetch_add(1, std::memory_order_relaxed);
}

// The side that closes itself: a reader thread in read() while this thread
// calls close(1000). On odd rounds the peer's last message and close have
// already arrived (the message waits in the inbox, the close frame in Beast's
// buffer) when read() and close() start, a few microseconds apart.
void closeWhileReading(WebSocket& ws, std::minstd_rand& rng, int round) {
  const bool arrived = round % 2 == 1;
  std::atomic<bool> go{!arrived};
  const unsigned reader_seed = rng();
  std::thread reader([&ws, &go, reader_seed] {
    std::minstd_rand reader_rng(reader_seed);
    while (!go.load()) {
    }
    jitter(reader_rng);
    for (;;) {
      if (!ws.read()) return;
    }
  });
  if (arrived) std::this_thread::sleep_for(2ms);
  go = true;
  jitter(rng);
  const auto start = std::chrono::steady_clock::now();
  auto closed = ws.close(kCloseNormal, {});
  EXPECT_TRUE(closed) << closed.error().toString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s) << "close() waited for its timeout";
  reader.join();
}

// The peer: its last message, then its own close, racing the other side's.
void lastWordAndClose(WebSocket& ws, std::minstd_rand& rng) {
  jitter(rng);
  (void)ws.write("last");
  const auto start = std::chrono::steady_clock::now();
  auto closed = ws.close(kCloseNormal, {});
  EXPECT_TRUE(closed) << closed.error().toString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s) << "close() waited for its timeout";
}

// Runs `round` roundCount() times, then `teardown` (which waits for the server's
// sessions), under a watchdog: a hang fails the test and ends the process,
// since a thread stuck in ~WebSocket cannot be joined.
void withWatchdog(const char* what, const std::function<void(std::minstd_rand&, int)>& round,
                  const std::function<void()>& teardown) {
  std::atomic<int> rounds{0};
  auto done = std::async(std::launch::async, [&] {
    // A few connections at a time keep the I/O threads busy, which widens the
    // windows between a strand's handlers where the races happen.
    // Busy threads too: the races need a thread preempted in the middle of a
    // strand handler, which is rare on an idle machine.
    std::atomic<bool> busy{true};
    std::vector<std::thread> workers;
    workers.reserve(kParallel + kBusy);
    for (int b = 0; b < kBusy; ++b) {
      workers.emplace_back([&busy] {
        std::atomic<int> sink{0};
        while (busy.load(std::memory_order_relaxed)) sink.fetch_add(1, std::memory_order_relaxed);
      });
    }
    for (int w = 0; w < kParallel; ++w) {
      workers.emplace_back([&, w] {
        std::minstd_rand rng(12345 + w);
        for (int i = w, n = roundCount(); i < n && !::testing::Test::HasFatalFailure();
             i += kParallel) {
          round(rng, i);
          ++rounds;
        }
      });
    }
    for (size_t w = kBusy; w < workers.size(); ++w) workers[w].join();
    busy = false;
    for (int b = 0; b < kBusy; ++b) workers[b].join();
    teardown();
  });
  int seen = -1;
  auto since = std::chrono::steady_clock::now();
  while (done.wait_for(100ms) != std::future_status::ready) {
    if (rounds.load() != seen) {
      seen = rounds.load();
      since = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - since > kStuck) {
      std::fprintf(stderr, "%s: hung in the closing race after %d rounds; aborting\n", what, seen);
      std::fflush(stderr);
      std::_Exit(1);
    }
  }
  done.get();
}

class WebSocketCloseRaceTest : public ::testing::Test {
 protected:
  void start(const WebSocketSession& session) {
    router_.add("GET", "/race",
                [session](Request& req) { return acceptWebSocket(req, kOptions, session); });
    server_ = std::make_unique<Server>(ServerOptions{.listen = {"[::1]:0"}},
                                       [this](Request& req) { return router_.dispatch(req); });
    auto started = server_->start();
    ASSERT_TRUE(started) << started.error().toString();
    url_ = "ws://" + server_->endpoints().front() + "/race";
  }

  std::unique_ptr<WebSocket> connect() {
    auto ws = connectWebSocket({.url = url_, .options = kOptions});
    EXPECT_TRUE(ws) << ws.error().toString();
    return ws ? std::move(*ws) : nullptr;
  }

  Router router_;
  std::unique_ptr<Server> server_;
  std::string url_;
};

// The client closes while its reader waits; the server sends its last
// message and closes at the same time.
TEST_F(WebSocketCloseRaceTest, ClientClosesWhileServerSaysItsLastWord) {
  std::atomic<unsigned> seed{1};
  start([&seed](WebSocket& ws) {
    std::minstd_rand rng(seed++);
    if (!ws.read()) return;  // "go"
    lastWordAndClose(ws, rng);
  });
  withWatchdog(
      "client closes",
      [&](std::minstd_rand& rng, int round) {
        auto ws = connect();
        ASSERT_TRUE(ws);
        ASSERT_TRUE(ws->write("go"));
        closeWhileReading(*ws, rng, round);
      },
      [this] { server_.reset(); });
}

// The server closes while its reader waits; the client sends its last
// message and closes at the same time.
TEST_F(WebSocketCloseRaceTest, ServerClosesWhileClientSaysItsLastWord) {
  std::atomic<int> round{0};
  start([&round](WebSocket& ws) {
    const int n = round++;
    std::minstd_rand rng(static_cast<unsigned>(n) + 1);
    (void)ws.write("go");
    closeWhileReading(ws, rng, n);
  });
  withWatchdog(
      "server closes",
      [&](std::minstd_rand& rng, int /*round*/) {
        auto ws = connect();
        ASSERT_TRUE(ws);
        ASSERT_TRUE(ws->read());  // "go"
        lastWordAndClose(*ws, rng);
      },
      [this] { server_.reset(); });
}

}  // namespace
}  // namespace plfm::http
