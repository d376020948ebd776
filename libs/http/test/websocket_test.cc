// WebSocket server and client (websocket.h) over loopback: echo, limits,
// concurrent writers, both closes, keepalive and a dead peer, TLS, and upgrade
// requests that are refused.
#include "plfm/http/websocket.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <map>
#include <thread>
#include <utility>

#include "plfm/http/http.h"
#include "plfm/http/pki.h"
#include "plfm/testing/temp_dir.h"
#include "test_util.h"

namespace plfm::http {
namespace {

using namespace std::chrono_literals;

constexpr size_t kMax = 1 << 20;

void echoMessages(WebSocket& ws) {
  for (;;) {
    auto msg = ws.read();
    if (!msg) return;
    if (!ws.write(*msg)) return;
  }
}

class WebSocketTest : public ::testing::Test {
 protected:
  void SetUp() override { start(); }

  void start(std::optional<ServerTlsOptions> tls = std::nullopt) {
    router_.add("GET", "/echo",
                [this](Request& req) { return acceptWebSocket(req, server_ws_, echoMessages); });
    router_.add("GET", "/close", [](Request& req) {
      return acceptWebSocket(req, {}, [](WebSocket& ws) {
        auto msg = ws.read();
        ASSERT_TRUE(msg) << msg.error().toString();
        auto closed = ws.close(4001, "bye " + *msg);
        EXPECT_TRUE(closed) << closed.error().toString();
        auto after = ws.read();
        ASSERT_FALSE(after);
        EXPECT_EQ(after.error().code(), kErrWebSocketClosed);
      });
    });
    router_.add("GET", "/observe", [this](Request& req) {
      return acceptWebSocket(req, server_ws_, [this](WebSocket& ws) {
        Result<std::string> last = Error(errc::kInternal, "no read");
        for (;;) {
          last = ws.read();
          if (!last) break;
        }
        server_end_.set_value(last.error());
      });
    });
    router_.add("GET", "/private", [](Request& req) -> Response {
      if (!req.header("Authorization")) return Response::text(401, "who are you");
      return acceptWebSocket(req, {}, [&](WebSocket& ws) {
        (void)ws.write(std::string(req.header("Authorization").value_or("")));
        (void)ws.read();
      });
    });
    ServerOptions options{.listen = {"[::1]:0"}};
    options.tls = std::move(tls);
    server_ = std::make_unique<Server>(std::move(options),
                                       [this](Request& req) { return router_.dispatch(req); });
    auto started = server_->start();
    ASSERT_TRUE(started) << started.error().toString();
    const std::string ep = server_->endpoints().front();
    port_ = ep.substr(ep.rfind(':') + 1);
  }

  std::string url(const std::string& path, const std::string& scheme = "ws") const {
    return scheme + "://[::1]:" + port_ + path;
  }

  std::unique_ptr<WebSocket> connect(const std::string& path, WebSocketOptions options = {}) {
    auto ws = connectWebSocket({.url = url(path), .options = options});
    EXPECT_TRUE(ws) << ws.error().toString();
    return ws ? std::move(*ws) : nullptr;
  }

  // Upgrades a raw connection by hand, for a peer that misbehaves after it.
  static void upgradeRaw(http::testing::RawConn& raw, const std::string& path) {
    ASSERT_TRUE(raw.send("GET " + path +
                         " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
                         "dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"));
    const std::string head = raw.readToEof(100ms);
    ASSERT_TRUE(head.starts_with("HTTP/1.1 101")) << head;
  }

  WebSocketOptions server_ws_ = {};
  std::promise<Error> server_end_;
  Router router_;
  std::unique_ptr<Server> server_;
  std::string port_;
};

TEST_F(WebSocketTest, EchoesBinaryMessagesUpToTheLimit) {
  auto ws = connect("/echo");
  ASSERT_TRUE(ws);
  for (const size_t size : {size_t{0}, size_t{1}, size_t{125}, size_t{126}, size_t{65536}, kMax}) {
    std::string msg(size, '\0');
    for (size_t i = 0; i < size; ++i) msg[i] = static_cast<char>(i * 131 + size);
    ASSERT_TRUE(ws->write(msg));
    auto back = ws->read();
    ASSERT_TRUE(back) << back.error().toString();
    EXPECT_EQ(*back, msg) << "size " << size;
  }
  // Over the limit: refused here, before it reaches the wire.
  auto big = ws->write(std::string(kMax + 1, 'x'));
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code(), errc::kInvalidArgument);
  ASSERT_TRUE(ws->write("still open"));
  EXPECT_EQ(ws->read().value_or(""), "still open");
}

TEST_F(WebSocketTest, OversizedMessageClosesWith1009) {
  server_ws_.max_message_bytes = 1000;
  auto ws = connect("/observe");
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->write(std::string(1000, 'a')));
  ASSERT_TRUE(ws->write(std::string(1001, 'b')));
  auto got = ws->read();
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), kErrWebSocketClosed) << got.error().toString();
  ASSERT_TRUE(ws->closeStatus());
  EXPECT_EQ(ws->closeStatus()->code, kCloseMessageTooBig);
  auto server_end = server_end_.get_future();
  ASSERT_EQ(server_end.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(server_end.get().code(), errc::kResourceExhausted);
}

// Several threads write at once; every message arrives whole, and each
// thread's messages arrive in its order.
TEST_F(WebSocketTest, ConcurrentWritersNeverInterleave) {
  auto ws = connect("/echo");
  ASSERT_TRUE(ws);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 200;
  std::vector<std::thread> writers;
  writers.reserve(kThreads);
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&ws, &failures, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const size_t size = 16 + static_cast<size_t>((i * 7919 + t * 104729) % 20000);
        std::string msg = std::to_string(t) + ":" + std::to_string(i) + ":";
        msg.append(size, static_cast<char>('a' + t));
        if (!ws->write(msg)) ++failures;
      }
    });
  }
  std::map<int, int> next;
  for (int n = 0; n < kThreads * kPerThread; ++n) {
    auto msg = ws->read();
    ASSERT_TRUE(msg) << msg.error().toString();
    const size_t c1 = msg->find(':');
    const size_t c2 = msg->find(':', c1 + 1);
    ASSERT_NE(c2, std::string::npos);
    const int t = std::stoi(msg->substr(0, c1));
    const int i = std::stoi(msg->substr(c1 + 1, c2 - c1 - 1));
    EXPECT_EQ(i, next[t]++) << "thread " << t;
    const std::string body = msg->substr(c2 + 1);
    EXPECT_EQ(body.size(), 16 + static_cast<size_t>((i * 7919 + t * 104729) % 20000));
    EXPECT_EQ(body.find_first_not_of(static_cast<char>('a' + t)), std::string::npos);
  }
  for (std::thread& w : writers) w.join();
  EXPECT_EQ(failures.load(), 0);
}

// Bulk both ways at once (what `vt exec -- cat` does): a writer thread keeps
// sending while this thread reads the echo; nothing stalls and every byte
// comes back in order, with at most a couple of messages buffered per hop.
TEST_F(WebSocketTest, BulkBothWaysDoesNotStall) {
  auto ws = connect("/echo");
  ASSERT_TRUE(ws);
  constexpr size_t kChunk = 64 << 10;
  constexpr int kChunks = 512;  // 32 MiB each way
  std::thread writer([&ws] {
    std::string chunk(kChunk, '\0');
    for (int i = 0; i < kChunks; ++i) {
      for (size_t j = 0; j < kChunk; j += 4096) chunk[j] = static_cast<char>(i + j / 4096);
      ASSERT_TRUE(ws->write(chunk));
    }
  });
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kChunks; ++i) {
    auto msg = ws->read();
    ASSERT_TRUE(msg) << msg.error().toString();
    ASSERT_EQ(msg->size(), kChunk);
    for (size_t j = 0; j < kChunk; j += 4096) {
      ASSERT_EQ((*msg)[j], static_cast<char>(i + j / 4096)) << "chunk " << i;
    }
  }
  writer.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);
}

TEST_F(WebSocketTest, ServerInitiatedClose) {
  auto ws = connect("/close");
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->write("now"));
  auto got = ws->read();
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), kErrWebSocketClosed);
  EXPECT_EQ(got.error().detail("close_code"), "4001");
  ASSERT_TRUE(ws->closeStatus());
  EXPECT_EQ(ws->closeStatus()->code, 4001);
  EXPECT_EQ(ws->closeStatus()->reason, "bye now");
  auto write = ws->write("late");
  ASSERT_FALSE(write);
  EXPECT_EQ(write.error().code(), kErrWebSocketClosed);
}

TEST_F(WebSocketTest, ClientInitiatedClose) {
  auto ws = connect("/observe");
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->write("hello"));
  auto closed = ws->close(4000, "done");
  ASSERT_TRUE(closed) << closed.error().toString();
  auto server_end = server_end_.get_future();
  ASSERT_EQ(server_end.wait_for(5s), std::future_status::ready);
  const Error e = server_end.get();
  EXPECT_EQ(e.code(), kErrWebSocketClosed) << e.toString();
  EXPECT_EQ(e.detail("close_code"), "4000");
  EXPECT_EQ(e.detail("close_reason"), "done");
  auto read = ws->read();
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code(), kErrWebSocketClosed);
  EXPECT_TRUE(ws->close());  // a second close is a no-op
}

// Both sides idle for many idle_timeouts: pings keep the session alive.
TEST_F(WebSocketTest, KeepalivePingsHoldAnIdleSession) {
  server_ws_.idle_timeout = 200ms;
  auto ws = connect("/echo", {.idle_timeout = 200ms});
  ASSERT_TRUE(ws);
  std::this_thread::sleep_for(1500ms);
  ASSERT_TRUE(ws->write("awake"));
  auto back = ws->read();
  ASSERT_TRUE(back) << back.error().toString();
  EXPECT_EQ(*back, "awake");
}

// A peer that completed the handshake and then went silent (it never answers
// pings) is detected within about idle_timeout.
TEST_F(WebSocketTest, DeadPeerIsDetected) {
  server_ws_.idle_timeout = 300ms;
  http::testing::RawConn raw("[::1]:" + port_);
  ASSERT_NO_FATAL_FAILURE(upgradeRaw(raw, "/observe"));
  const auto start = std::chrono::steady_clock::now();
  auto server_end = server_end_.get_future();
  ASSERT_EQ(server_end.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(server_end.get().code(), errc::kDeadlineExceeded);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

// A peer that never answers our close: close() gives up after about
// handshake_timeout, and a reader blocked in read() meanwhile returns too.
TEST_F(WebSocketTest, UnansweredCloseEndsTheReaderToo) {
  std::promise<std::pair<Error, std::chrono::steady_clock::duration>> result;
  router_.add("GET", "/mute", [&result](Request& req) {
    return acceptWebSocket(req, {.handshake_timeout = 300ms}, [&result](WebSocket& ws) {
      std::thread reader([&ws] {
        while (ws.read()) {
        }
      });
      std::this_thread::sleep_for(20ms);  // the reader is in read()
      const auto start = std::chrono::steady_clock::now();
      auto closed = ws.close(kCloseNormal, {});
      reader.join();
      result.set_value({closed ? Error(errc::kInternal, "close succeeded") : closed.error(),
                        std::chrono::steady_clock::now() - start});
    });
  });
  http::testing::RawConn raw("[::1]:" + port_);
  ASSERT_NO_FATAL_FAILURE(upgradeRaw(raw, "/mute"));
  auto done = result.get_future();
  ASSERT_EQ(done.wait_for(5s), std::future_status::ready);
  const auto [error, took] = done.get();
  EXPECT_NE(error.code(), errc::kInternal) << error.toString();
  EXPECT_LT(took, 2s);
}

// We speak binary: a text message is refused with 1003.
TEST_F(WebSocketTest, TextMessageClosesWith1003) {
  http::testing::RawConn raw("[::1]:" + port_);
  ASSERT_NO_FATAL_FAILURE(upgradeRaw(raw, "/observe"));
  // FIN + text, masked with a zero key (RFC 6455 section 5.2), payload "hi".
  ASSERT_TRUE(raw.send(std::string("\x81\x82\0\0\0\0hi", 8)));
  auto server_end = server_end_.get_future();
  ASSERT_EQ(server_end.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(server_end.get().code(), errc::kFailedPrecondition);
  // The server's close frame: opcode 8, then the code 1003 big-endian.
  const std::string close = raw.readToEof(500ms);
  ASSERT_GE(close.size(), 4U);
  EXPECT_EQ(static_cast<uint8_t>(close[0]), 0x88);
  EXPECT_EQ((static_cast<uint8_t>(close[2]) << 8) | static_cast<uint8_t>(close[3]),
            kCloseUnsupportedData);
}

TEST_F(WebSocketTest, RefusesRequestsThatAreNoUpgrade) {
  auto plain = request(http::testing::get("http://[::1]:" + port_ + "/echo"));
  ASSERT_TRUE(plain) << plain.error().toString();
  EXPECT_EQ(plain->status, 426);
  EXPECT_EQ(plain->headers.get("Upgrade").value_or(""), "websocket");
  EXPECT_EQ(plain->headers.get("Sec-WebSocket-Version").value_or(""), "13");
  EXPECT_NE(plain->body.find("upgrade_required"), std::string::npos);

  // (http::request sets Connection itself: these go out raw.)
  const auto answer = [&](std::string_view version, std::string_view key) {
    http::testing::RawConn raw("[::1]:" + port_);
    EXPECT_TRUE(
        raw.send("GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                 "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: " +
                 std::string(version) + "\r\nSec-WebSocket-Key: " + std::string(key) + "\r\n\r\n"));
    return raw.readResponses(1);
  };
  const std::string version = answer("8", "dGhlIHNhbXBsZSBub25jZQ==");
  EXPECT_TRUE(version.starts_with("HTTP/1.1 426")) << version;
  EXPECT_NE(version.find("Sec-WebSocket-Version: 13"), std::string::npos) << version;
  const std::string key = answer("13", "short");
  EXPECT_TRUE(key.starts_with("HTTP/1.1 400")) << key;
  EXPECT_NE(key.find("Sec-WebSocket-Key"), std::string::npos) << key;
  const std::string good = answer("13", "dGhlIHNhbXBsZSBub25jZQ==");
  EXPECT_TRUE(good.starts_with("HTTP/1.1 101")) << good;
}

TEST_F(WebSocketTest, DeclinedUpgradeIsAnError) {
  auto denied = connectWebSocket({.url = url("/private")});
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().code(), errc::kUnauthenticated);
  EXPECT_EQ(denied.error().detail("status"), "401");

  auto missing = connectWebSocket({.url = url("/nowhere")});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), errc::kNotFound);

  Headers auth;
  auth.add("Authorization", "Bearer t0ken");
  auto ok = connectWebSocket({.url = url("/private"), .headers = auth});
  ASSERT_TRUE(ok) << ok.error().toString();
  EXPECT_EQ((*ok)->read().value_or(""), "Bearer t0ken");
}

TEST_F(WebSocketTest, ServerStopClosesSessionsWithGoingAway) {
  auto ws = connect("/echo");
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->write("x"));
  ASSERT_TRUE(ws->read());
  // Sessions get a close with 1001 right away, not at the end of the grace.
  const auto start = std::chrono::steady_clock::now();
  server_->stop(5s);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  auto read = ws->read();
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code(), kErrWebSocketClosed) << read.error().toString();
  ASSERT_TRUE(ws->closeStatus());
  EXPECT_EQ(ws->closeStatus()->code, kCloseGoingAway);
}

TEST(WebSocketUnixTest, OverAUnixSocket) {
  plfm::testing::TempDir dir("plfm-ws");
  Router router;
  router.add("GET", "/echo", [](Request& req) { return acceptWebSocket(req, {}, echoMessages); });
  Server server({.listen = {"unix:" + dir.path() + "/s"}},
                [&](Request& req) { return router.dispatch(req); });
  ASSERT_TRUE(server.start());
  auto ws = connectWebSocket({.url = "unix:" + dir.path() + "/s:/echo"});
  ASSERT_TRUE(ws) << ws.error().toString();
  ASSERT_TRUE((*ws)->write("over unix"));
  EXPECT_EQ((*ws)->read().value_or(""), "over unix");
}

class WebSocketTlsTest : public WebSocketTest {
 protected:
  void SetUp() override {
    auto pki = writeLocalPki(dir_.path(), {"localhost", "::1"});
    ASSERT_TRUE(pki) << pki.error().toString();
    pki_ = *pki;
    start(ServerTlsOptions{pki_.server_cert, pki_.server_key});
  }
  plfm::testing::TempDir dir_{"plfm-wss"};
  LocalPki pki_;
};

TEST_F(WebSocketTlsTest, RoundTripWithCaAndPin) {
  auto ws = connectWebSocket({.url = url("/echo", "wss"), .tls = {.ca_file = pki_.ca_cert}});
  ASSERT_TRUE(ws) << ws.error().toString();
  std::string msg(300'000, '\0');
  for (size_t i = 0; i < msg.size(); ++i) msg[i] = static_cast<char>(i % 251);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE((*ws)->write(msg));
    auto back = (*ws)->read();
    ASSERT_TRUE(back) << back.error().toString();
    EXPECT_EQ(*back, msg);
  }
  auto closed = (*ws)->close();
  EXPECT_TRUE(closed) << closed.error().toString();

  auto sha = certificateSha256(pki_.server_cert);
  ASSERT_TRUE(sha);
  auto pinned =
      connectWebSocket({.url = url("/echo", "https"), .tls = {.pinned_cert_sha256 = *sha}});
  ASSERT_TRUE(pinned) << pinned.error().toString();
  ASSERT_TRUE((*pinned)->write("pinned"));
  EXPECT_EQ((*pinned)->read().value_or(""), "pinned");

  // Without the CA the server is not trusted.
  auto untrusted = connectWebSocket({.url = url("/echo", "wss"), .tls = {.ca_file = ""}});
  ASSERT_FALSE(untrusted);
  EXPECT_EQ(untrusted.error().code(), errc::kFailedPrecondition);
}

TEST_F(WebSocketTlsTest, ConcurrentWritersOverTls) {
  auto ws = connectWebSocket({.url = url("/echo", "wss"), .tls = {.ca_file = pki_.ca_cert}});
  ASSERT_TRUE(ws) << ws.error().toString();
  constexpr int kThreads = 3;
  constexpr int kPerThread = 100;
  std::vector<std::thread> writers;
  writers.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&ws, t] {
      for (int i = 0; i < kPerThread; ++i) {
        EXPECT_TRUE((*ws)->write(std::string(1000 + t * 1000, static_cast<char>('a' + t))));
      }
    });
  }
  for (int n = 0; n < kThreads * kPerThread; ++n) {
    auto msg = (*ws)->read();
    ASSERT_TRUE(msg) << msg.error().toString();
    ASSERT_FALSE(msg->empty());
    const int t = msg->front() - 'a';
    EXPECT_EQ(msg->size(), static_cast<size_t>(1000 + t * 1000));
    EXPECT_EQ(msg->find_first_not_of(msg->front()), std::string::npos);
  }
  for (std::thread& w : writers) w.join();
}

}  // namespace
}  // namespace plfm::http
