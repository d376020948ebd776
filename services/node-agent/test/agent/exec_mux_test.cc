// ExecMux without a VM (docs/specs/runtime/exec-sessions.md, "Agent
// endpoint"): a fake guest is the send function plus frames injected as the
// worker would route them.
#include "agent/exec_mux.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "exec_fake_guest.h"
#include "plfm/guest_proto/guest_proto.h"

namespace plfm::agent {
namespace {

namespace gp = guest_proto;
using std::chrono::milliseconds;

using testing::execOpen;
using testing::FakeGuest;

std::string openPayload(uint32_t window = gp::kExecInitialWindow) {
  gp::ExecOpen open;
  open.argv = {"cat"};
  open.window = window;
  auto frame = gp::encode(open, gp::kFirstExecStream);
  EXPECT_TRUE(frame);
  return frame->substr(gp::kHeaderBytes);
}

std::string clientFrame(const gp::Result<std::string>& f) {
  EXPECT_TRUE(f);
  return f.value_or("");
}

gp::Frame guestFrame(const gp::Result<std::string>& bytes) {
  gp::Decoder d;
  d.feed(bytes.value());
  return d.next().value().value();
}

std::string stdinData(size_t n, char c = 'x') {
  return clientFrame(
      gp::encode(gp::ExecData{gp::ExecFd::kStdin, std::string(n, c)}, gp::kFirstExecStream));
}

class ExecMuxTest : public ::testing::Test {
 protected:
  void SetUp() override { mux_->attach(guest_.sendFn()); }

  std::shared_ptr<ExecSession> open(uint32_t window = gp::kExecInitialWindow) {
    auto s = mux_->open(openPayload(window));
    EXPECT_TRUE(s) << s.error().toString();
    auto f = guest_.next();
    EXPECT_TRUE(f && f->type == gp::FrameType::kExecOpen);
    return s ? *s : nullptr;
  }
  void guestSends(const gp::Result<std::string>& bytes) { mux_->onGuestFrame(guestFrame(bytes)); }
  void exit(uint16_t stream, int code = 0) {
    guestSends(gp::encode(gp::ExecExit{gp::ExecExitKind::kExited, code, ""}, stream));
  }

  FakeGuest guest_;
  std::shared_ptr<ExecMux> mux_ = std::make_shared<ExecMux>("inst_t");
};

TEST_F(ExecMuxTest, OpenSendsThePayloadVerbatimOnAFreshStream) {
  const std::string payload = openPayload();
  auto a = mux_->open(payload);
  ASSERT_TRUE(a);
  auto b = mux_->open(payload);
  ASSERT_TRUE(b);
  EXPECT_EQ((*a)->stream(), gp::kFirstExecStream);
  EXPECT_EQ((*b)->stream(), gp::kFirstExecStream + 1);
  auto f = guest_.next();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->type, gp::FrameType::kExecOpen);
  EXPECT_EQ(f->stream, gp::kFirstExecStream);
  EXPECT_EQ(f->payload, payload);
  EXPECT_EQ(guest_.next()->stream, gp::kFirstExecStream + 1);
  EXPECT_EQ(mux_->sessions(), 2u);
  // A payload that does not decode is refused before any stream is taken.
  auto bad = mux_->open("junk");
  ASSERT_FALSE(bad);
  EXPECT_TRUE(bad.error().is(kExecProtocol));
  EXPECT_EQ(mux_->sessions(), 2u);
}

TEST_F(ExecMuxTest, GuestFramesReachTheirSessionOnTheWebSocketStreamThenExitFreesIt) {
  auto a = open();
  auto b = open();
  guestSends(gp::encode(gp::ExecData{gp::ExecFd::kStdout, "to b"}, b->stream()));
  guestSends(gp::encode(gp::ExecWindow{100}, b->stream()));
  guestSends(gp::encode(gp::ExecWindow{50}, b->stream()));  // coalesced
  guestSends(gp::encode(gp::ExecData{gp::ExecFd::kStderr, "err"}, b->stream()));
  exit(b->stream(), 42);
  EXPECT_EQ(mux_->sessions(), 1u);  // b's stream is free at its EXIT
  EXPECT_FALSE(a->next(milliseconds(10)));

  auto w = b->next(milliseconds(100));
  ASSERT_TRUE(w);
  ASSERT_EQ(w->kind, ExecEvent::Kind::kWindow);
  EXPECT_EQ(guestFrame(w->frame).stream, gp::kFirstExecStream);
  EXPECT_EQ(gp::decodeExecWindow(guestFrame(w->frame).payload)->increment, 150u);
  auto d1 = b->next(milliseconds(100));
  ASSERT_TRUE(d1);
  ASSERT_EQ(d1->kind, ExecEvent::Kind::kData);
  EXPECT_EQ(guestFrame(d1->frame).stream, gp::kFirstExecStream);
  EXPECT_EQ(gp::decodeExecData(guestFrame(d1->frame).payload)->data, "to b");
  auto d2 = b->next(milliseconds(100));
  ASSERT_TRUE(d2);
  EXPECT_EQ(gp::decodeExecData(guestFrame(d2->frame).payload)->fd, gp::ExecFd::kStderr);
  auto e = b->next(milliseconds(100));
  ASSERT_TRUE(e);
  ASSERT_EQ(e->kind, ExecEvent::Kind::kExit);
  EXPECT_EQ(gp::decodeExecExit(guestFrame(e->frame).payload)->code, 42);
  // Frames on a free stream are dropped.
  guestSends(gp::encode(gp::ExecData{gp::ExecFd::kStdout, "late"}, b->stream()));
  EXPECT_FALSE(b->next(milliseconds(10)));
}

TEST_F(ExecMuxTest, ClientFramesAreCheckedAndSentOnTheSessionsStream) {
  open();
  auto s = open();
  ASSERT_EQ(s->stream(), gp::kFirstExecStream + 1);
  ASSERT_TRUE(s->fromClient(stdinData(10)));
  ASSERT_TRUE(
      s->fromClient(clientFrame(gp::encode(gp::ExecResize{50, 132}, gp::kFirstExecStream))));
  ASSERT_TRUE(s->fromClient(clientFrame(gp::encode(gp::ExecSignal{15}, gp::kFirstExecStream))));
  ASSERT_TRUE(s->fromClient(clientFrame(gp::encode(gp::ExecWindow{1000}, gp::kFirstExecStream))));
  ASSERT_TRUE(s->fromClient(
      clientFrame(gp::encode(gp::ExecClose{gp::ExecCloseKind::kStdinEof}, gp::kFirstExecStream))));
  for (auto type :
       {gp::FrameType::kExecData, gp::FrameType::kExecResize, gp::FrameType::kExecSignal,
        gp::FrameType::kExecWindow, gp::FrameType::kExecClose}) {
    auto f = guest_.next();
    ASSERT_TRUE(f);
    EXPECT_EQ(f->type, type);
    EXPECT_EQ(f->stream, s->stream());
  }

  auto refused = [&](const std::string& message) {
    auto r = s->fromClient(message);
    EXPECT_FALSE(r);
    return r ? std::string() : std::string(r.error().code());
  };
  const std::string proto(kExecProtocol);
  EXPECT_EQ(refused("hello"), proto);
  EXPECT_EQ(refused(""), proto);
  EXPECT_EQ(refused(stdinData(1) + stdinData(1)), proto);  // two frames
  EXPECT_EQ(refused(stdinData(1).substr(0, 9)), proto);    // half a frame
  EXPECT_EQ(refused(clientFrame(
                gp::encode(gp::ExecData{gp::ExecFd::kStdout, "x"}, gp::kFirstExecStream))),
            proto);  // stdout from a client
  EXPECT_EQ(refused(clientFrame(gp::encode(execOpen({"sh"}), gp::kFirstExecStream))),
            proto);                                        // a second OPEN
  EXPECT_EQ(refused(gp::encodePong(gp::Ping{1})), proto);  // not an exec frame
  EXPECT_EQ(refused(clientFrame(gp::encode(gp::ExecExit{}, gp::kFirstExecStream))), proto);
  EXPECT_EQ(guest_.pending(), 0u);  // nothing of it reached the guest
}

TEST_F(ExecMuxTest, StdinBeyondTheGrantedCreditIsRefused) {
  auto s = open();
  // The guest grants kExecInitialWindow implicitly.
  for (uint32_t sent = 0; sent < gp::kExecInitialWindow; sent += gp::kMaxExecDataBytes) {
    ASSERT_TRUE(s->fromClient(stdinData(gp::kMaxExecDataBytes)));
  }
  auto over = s->fromClient(stdinData(1));
  ASSERT_FALSE(over);
  EXPECT_TRUE(over.error().is(kExecCredit)) << over.error().toString();
  // Once the guest hands out more, the client may send that much.
  guestSends(gp::encode(gp::ExecWindow{5}, s->stream()));
  EXPECT_TRUE(s->fromClient(stdinData(5)));
  EXPECT_FALSE(s->fromClient(stdinData(1)));
  // Output credit: a WINDOW past 2^31-1 is refused.
  auto huge = s->fromClient(clientFrame(gp::encode(gp::ExecWindow{gp::kMaxExecCredit}, 0x100)));
  ASSERT_FALSE(huge);
  EXPECT_TRUE(huge.error().is(kExecCredit));
}

TEST_F(ExecMuxTest, AGuestOverrunningItsOutputCreditLosesThatSessionOnly) {
  auto a = open(gp::kMinExecWindow);
  auto b = open(gp::kMinExecWindow);
  const std::string full(gp::kMaxExecDataBytes, 'o');
  guestSends(gp::encode(gp::ExecData{gp::ExecFd::kStdout, full}, a->stream()));
  guestSends(gp::encode(gp::ExecData{gp::ExecFd::kStdout, "1"}, a->stream()));
  // b is untouched, and gets its own output.
  guestSends(gp::encode(gp::ExecData{gp::ExecFd::kStdout, full}, b->stream()));
  auto lost = a->next(milliseconds(100));
  ASSERT_TRUE(lost);
  EXPECT_EQ(lost->kind, ExecEvent::Kind::kLost);
  EXPECT_EQ(lost->reason, "the guest broke the exec protocol");
  auto abort = guest_.next();
  ASSERT_TRUE(abort);
  EXPECT_EQ(abort->type, gp::FrameType::kExecClose);
  EXPECT_EQ(abort->stream, a->stream());
  EXPECT_EQ(gp::decodeExecClose(abort->payload)->kind, gp::ExecCloseKind::kAbort);
  auto d = b->next(milliseconds(100));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->kind, ExecEvent::Kind::kData);
  // A grant from b's client lets the guest send more.
  ASSERT_TRUE(b->fromClient(clientFrame(gp::encode(gp::ExecWindow{1}, 0x100))));
  guestSends(gp::encode(gp::ExecData{gp::ExecFd::kStdout, "1"}, b->stream()));
  EXPECT_EQ(b->next(milliseconds(100))->kind, ExecEvent::Kind::kData);
  // a's stream stays in use until the guest's EXIT for it.
  EXPECT_EQ(mux_->sessions(), 2u);
  guestSends(gp::encode(gp::ExecExit{gp::ExecExitKind::kSignaled, 9, ""}, a->stream()));
  EXPECT_EQ(mux_->sessions(), 1u);
}

TEST_F(ExecMuxTest, SixtyFourSessionsAtMostAndIdsAreReusedOnlyAfterExit) {
  std::vector<std::shared_ptr<ExecSession>> live;
  for (size_t i = 0; i < kMaxExecSessions; ++i) live.push_back(open());
  auto refused = mux_->open(openPayload());
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().is(kExecRefused));
  EXPECT_NE(refused.error().message().find("too many"), std::string::npos);
  exit(live[3]->stream());
  auto again = mux_->open(openPayload());
  ASSERT_TRUE(again);
  // Round robin from the last id given, skipping ids in use, wrapping at 0xfffe.
  EXPECT_EQ((*again)->stream(), gp::kFirstExecStream + kMaxExecSessions);
  (void)guest_.next();
  for (auto& s : live) {
    if (!s->exited()) exit(s->stream());
  }
  exit((*again)->stream());
  auto keep = open();  // holds an id while the others cycle around it
  const uint16_t kept = keep->stream();
  for (uint32_t i = 0; i < gp::kLastExecStream - gp::kFirstExecStream; ++i) {
    auto s = mux_->open(openPayload());
    ASSERT_TRUE(s);
    ASSERT_NE((*s)->stream(), kept);
    exit((*s)->stream());
  }
  EXPECT_EQ(mux_->sessions(), 1u);
}

TEST_F(ExecMuxTest, DetachEndsEverySessionAndRefusesNewOnes) {
  auto a = open();
  auto b = open();
  guestSends(gp::encode(gp::ExecData{gp::ExecFd::kStdout, "queued"}, a->stream()));
  mux_->detach("the instance's VM exited");
  for (auto& s : {a, b}) {
    auto ev = s->next(milliseconds(100));
    ASSERT_TRUE(ev);
    EXPECT_EQ(ev->kind, ExecEvent::Kind::kLost);  // before anything queued
    EXPECT_EQ(ev->reason, "the instance's VM exited");
  }
  EXPECT_EQ(mux_->sessions(), 0u);
  EXPECT_FALSE(mux_->attached());
  auto r = a->fromClient(stdinData(1));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(kExecLost));
  auto refused = mux_->open(openPayload());
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().is(kExecRefused));
  // Attached again (a new channel), it serves new sessions from a clean table.
  mux_->attach(guest_.sendFn());
  EXPECT_TRUE(open());
  mux_->refuseNew("the instance is stopping");
  auto stopping = mux_->open(openPayload());
  ASSERT_FALSE(stopping);
  EXPECT_EQ(stopping.error().message(), "the instance is stopping");
}

TEST_F(ExecMuxTest, AfterExitTheClientsLateFramesAndAbortAreDropped) {
  auto s = open();
  exit(s->stream());
  EXPECT_TRUE(s->fromClient(stdinData(1)));  // accepted, not sent
  s->abort();
  EXPECT_EQ(guest_.pending(), 0u);
  // Before EXIT, abort is sent once.
  auto t = open();
  t->abort();
  t->abort();
  auto f = guest_.next();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->type, gp::FrameType::kExecClose);
  EXPECT_EQ(guest_.pending(), 0u);
}

TEST_F(ExecMuxTest, ConcurrentSessionsSendWholeFramesWhileTheGuestTalks) {
  constexpr int kSessions = 16;
  constexpr int kFrames = 200;
  std::vector<std::shared_ptr<ExecSession>> sessions;
  sessions.reserve(kSessions);
  for (int i = 0; i < kSessions; ++i) sessions.push_back(open());
  std::vector<std::thread> threads;
  threads.reserve(kSessions);
  for (int i = 0; i < kSessions; ++i) {
    threads.emplace_back([&, i] {
      for (int n = 0; n < kFrames; ++n) {
        ASSERT_TRUE(sessions[i]->fromClient(stdinData(100, static_cast<char>('a' + i))));
      }
    });
  }
  // The worker's side at the same time: output and windows for every session.
  for (int n = 0; n < kFrames; ++n) {
    for (auto& s : sessions) {
      guestSends(gp::encode(gp::ExecData{gp::ExecFd::kStdout, "o"}, s->stream()));
      guestSends(gp::encode(gp::ExecWindow{100}, s->stream()));
    }
  }
  for (auto& t : threads) t.join();
  std::map<uint16_t, int> per_stream;
  while (auto f = guest_.next(milliseconds(10))) {
    ASSERT_EQ(f->type, gp::FrameType::kExecData);
    auto d = gp::decodeExecData(f->payload);
    ASSERT_TRUE(d);
    const int i = f->stream - gp::kFirstExecStream;
    EXPECT_EQ(d->data, std::string(100, static_cast<char>('a' + i)));
    ++per_stream[f->stream];
  }
  for (auto& s : sessions) EXPECT_EQ(per_stream[s->stream()], kFrames);
}

}  // namespace
}  // namespace plfm::agent
