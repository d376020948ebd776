// GuestChannel against a fake guest on a socketpair: a guest that never reads
// must not hold a sender past its deadline (issue 14, "Guest channel").
#include "agent/guest_channel.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "plfm/guest_proto/guest_proto.h"

namespace plfm::agent {
namespace {

namespace gp = guest_proto;
using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

struct Pair {
  GuestChannel host;
  int guest = -1;
  Pair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    host = GuestChannel::adopt(fds[0]);
    guest = fds[1];
  }
  ~Pair() {
    if (guest >= 0) ::close(guest);
  }
  Pair(const Pair&) = delete;
  Pair& operator=(const Pair&) = delete;
};

TEST(GuestChannel, SendToAGuestThatNeverReadsMissesItsDeadline) {
  Pair p;
  // PONGs, as the agent answers a PING flood, until the socket buffer is full.
  const std::string pong = gp::encodePong(gp::Ping{42});
  auto sender = std::async(std::launch::async, [&]() -> Result<void> {
    for (int i = 0; i < 1'000'000; ++i) {
      auto r = p.host.send(pong, milliseconds(300));
      if (!r) return r;
    }
    return ok();
  });
  if (sender.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    // The old, blocking send: unblock it (EPIPE) so the test can fail.
    ::shutdown(p.guest, SHUT_RDWR);
    sender.wait();
    FAIL() << "send blocked on a guest that does not read";
  }
  auto r = sender.get();
  ASSERT_FALSE(r) << "a million frames fit in a socket buffer?";
  EXPECT_TRUE(r.error().is(errc::kChannelStalled)) << r.error().toString();
  EXPECT_EQ(r.error().message(), "channel stalled");
  // A stalled stream may end mid-frame: the channel is closed.
  EXPECT_FALSE(p.host.connected());
}

TEST(GuestChannel, ALargeFrameToASlowReaderStillArrivesWhole) {
  Pair p;
  const std::string big(1 << 20, 'x');  // larger than the socket buffer
  auto reader = std::async(std::launch::async, [&] {
    std::string got;
    char buf[4096];
    while (got.size() < big.size()) {
      ssize_t n = ::recv(p.guest, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    return got;
  });
  auto r = p.host.send(big, milliseconds(5000));
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ(reader.get(), big);
}

TEST(GuestChannel, AClosedPeerIsAnErrorNotAStall) {
  Pair p;
  ::close(p.guest);
  p.guest = -1;
  auto r = p.host.send(gp::encodePong(gp::Ping{1}), milliseconds(200));
  ASSERT_FALSE(r);
  EXPECT_FALSE(r.error().is(errc::kChannelStalled)) << r.error().toString();
}

TEST(GuestChannel, TheDeadlineIsHonoured) {
  Pair p;
  const std::string chunk(64 << 10, 'y');
  auto t0 = Steady::now();
  Result<void> r = ok();
  while (r) r = p.host.send(chunk, milliseconds(200));
  const auto took = std::chrono::duration_cast<milliseconds>(Steady::now() - t0);
  EXPECT_TRUE(r.error().is(errc::kChannelStalled));
  EXPECT_LT(took.count(), 3000) << "the last send waited " << took.count() << " ms";
}

// Exec sessions send from their own threads while the worker reads: frames
// never interleave, and a stall in another thread ends the owner's read with
// the end of the stream (never a closed or reused fd under it).
TEST(GuestChannel, SendersOnOtherThreadsWhileTheOwnerReads) {
  Pair p;
  constexpr int kThreads = 8;
  constexpr int kFrames = 300;
  std::vector<std::thread> senders;
  senders.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      const std::string frame = gp::encodePong(gp::Ping{static_cast<uint64_t>(t)});
      for (int i = 0; i < kFrames; ++i) ASSERT_TRUE(p.host.send(frame, milliseconds(5000)));
    });
  }
  // The guest echoes nothing; it reads and checks each frame.
  gp::Decoder decoder;
  int frames = 0;
  char buf[4096];
  while (frames < kThreads * kFrames) {
    ssize_t n = ::recv(p.guest, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    decoder.feed(buf, static_cast<size_t>(n));
    while (true) {
      auto f = decoder.next();
      ASSERT_TRUE(f) << f.error().toString();
      if (!*f) break;
      ASSERT_EQ((*f)->type, gp::FrameType::kPong);
      ++frames;
    }
  }
  for (auto& s : senders) s.join();

  // Now a guest that stops reading: a sender stalls while the owner reads.
  auto owner = std::async(std::launch::async, [&] {
    while (true) {
      auto r = p.host.read(milliseconds(100));
      if (!r) return r.error();
    }
  });
  const std::string chunk(64 << 10, 'y');
  Result<void> r = ok();
  while (r) r = p.host.send(chunk, milliseconds(200));
  EXPECT_TRUE(r.error().is(errc::kChannelStalled));
  ASSERT_EQ(owner.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(owner.get().code(), "agent.channel_closed");
  EXPECT_TRUE(p.host.stalled());
  EXPECT_FALSE(p.host.connected());
  // Later sends fail at once.
  auto late = p.host.send("x", milliseconds(5000));
  ASSERT_FALSE(late);
}

}  // namespace
}  // namespace plfm::agent
