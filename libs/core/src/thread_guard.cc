#include "plfm/core/thread_guard.h"

#include <algorithm>
#include <exception>
#include <string>
#include <thread>

#include "plfm/core/log.h"

namespace plfm {
namespace {

// Sleeps `d` in short steps, so stop() is not held up by a backoff.
void sleepUnless(std::chrono::milliseconds d, const std::function<bool()>& stopping) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (!stopping() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::min(d, std::chrono::milliseconds(20)));
  }
}

}  // namespace

int runGuarded(std::string_view name, const std::function<void()>& body,
               const std::function<bool()>& stopping, GuardOptions options) {
  int caught = 0;
  auto backoff = options.first_backoff;
  while (true) {
    std::string what;
    try {
      body();
      if (stopping()) return caught;
      what = "the loop returned while still running";
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
      what = "unknown exception";
    }
    ++caught;
    log::error("thread failed; restarting its loop",
               {{"thread", std::string(name)},
                {"error", what},
                {"restarts", caught},
                {"backoff_ms", static_cast<int64_t>(backoff.count())}});
    sleepUnless(backoff, stopping);
    if (stopping()) return caught;
    backoff = std::min(backoff * 2, options.max_backoff);
  }
}

}  // namespace plfm
