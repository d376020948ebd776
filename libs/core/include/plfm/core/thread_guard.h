// A top-level guard for the body of a long-lived thread (a scheduler loop, a
// projection worker, a feed). An exception that escapes the body would call
// std::terminate and take every tenant down with the process, again on each
// restart when the cause is stored data. The guard logs it instead, waits a
// bounded backoff, and runs the body again, until `stopping` says to quit.
//
//   thread_ = std::thread([this] {
//     runGuarded("scheduler", [this] { run(); }, [this] { return !running_.load(); });
//   });
#pragma once

#include <chrono>
#include <functional>
#include <string_view>

namespace plfm {

struct GuardOptions {
  std::chrono::milliseconds first_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
};

// Runs `body` until it returns with `stopping()` true. Returns the number of
// exceptions it caught (tests use it).
int runGuarded(std::string_view name, const std::function<void()>& body,
               const std::function<bool()>& stopping, GuardOptions options = {});

}  // namespace plfm
