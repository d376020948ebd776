// daemon::run: the shutdown signals reach sigwait() (blocked before start()
// runs), SIGHUP reloads only when asked to, stop() runs once, and a failed
// start() is returned untouched. Its own binary: run() leaves the signals
// blocked in the test's main thread.
#include "plfm/core/daemon.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <sstream>
#include <thread>

#include "plfm/core/log.h"

namespace plfm::daemon {
namespace {

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log::Options o;
    o.stream = &out_;
    log::init(o);
  }
  void TearDown() override { log::init(log::Options{}); }
  std::ostringstream out_;
};

bool blocked(int sig) {
  sigset_t now;
  pthread_sigmask(SIG_BLOCK, nullptr, &now);
  return sigismember(&now, sig) == 1;
}

TEST_F(DaemonTest, SigtermFromAnotherThreadCallsStopOnce) {
  int starts = 0;
  int stops = 0;
  bool blocked_at_start = false;
  std::thread sender;
  Hooks h;
  h.start = [&]() -> Result<void> {
    ++starts;
    blocked_at_start = blocked(SIGTERM) && blocked(SIGINT);
    // A service thread, started after the mask: the signal goes to the
    // process, and only sigwait() may take it.
    sender = std::thread([] { ::kill(::getpid(), SIGTERM); });
    return ok();
  };
  h.stop = [&] { ++stops; };
  auto r = run(h);
  sender.join();
  ASSERT_TRUE(r.has_value()) << r.error().toString();
  EXPECT_EQ(*r, SIGTERM);
  EXPECT_EQ(starts, 1);
  EXPECT_EQ(stops, 1);
  EXPECT_TRUE(blocked_at_start);
  EXPECT_NE(out_.str().find("\"msg\":\"shutting down\""), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("\"msg\":\"stopped\""), std::string::npos) << out_.str();
}

TEST_F(DaemonTest, SighupReloadsAndSigintStops) {
  int reloads = 0;
  int stops = 0;
  Hooks h;
  h.ready = [] { ::kill(::getpid(), SIGHUP); };
  h.reload = [&] {
    // A second SIGHUP while reloading is taken by the next sigwait().
    if (++reloads == 1) ::kill(::getpid(), SIGHUP);
    if (reloads == 2) ::kill(::getpid(), SIGINT);
  };
  h.stop = [&] { ++stops; };
  auto r = run(h);
  ASSERT_TRUE(r.has_value()) << r.error().toString();
  EXPECT_EQ(*r, SIGINT);
  EXPECT_EQ(reloads, 2);
  EXPECT_EQ(stops, 1);
}

TEST_F(DaemonTest, AFailedStartIsReturnedAndNothingIsStopped) {
  int stops = 0;
  bool readied = false;
  Hooks h;
  h.start = []() -> Result<void> { return Error(errc::kUnavailable, "port taken"); };
  h.ready = [&] { readied = true; };
  h.stop = [&] { ++stops; };
  auto r = run(h);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(), "port taken");
  EXPECT_TRUE(r.error().is(errc::kUnavailable));
  EXPECT_FALSE(readied);
  EXPECT_EQ(stops, 0);
}

TEST_F(DaemonTest, InitLoggingTakesTheLevelName) {
  initLogging("svc", "warn", "");
  EXPECT_FALSE(log::enabled(log::Level::kInfo));
  EXPECT_TRUE(log::enabled(log::Level::kWarn));
  initLogging("svc", "nonsense", "");  // validated earlier: falls back to info
  EXPECT_TRUE(log::enabled(log::Level::kInfo));
}

}  // namespace
}  // namespace plfm::daemon
