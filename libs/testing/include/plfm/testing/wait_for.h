// Polls a condition until it holds or a deadline passes: for tests that
// watch another thread or process reach a state.
#pragma once

#include <chrono>
#include <thread>

namespace plfm::testing {

// True as soon as pred() is; false once `timeout` has passed without it.
template <class Pred>
[[nodiscard]] bool waitFor(Pred pred,
                           std::chrono::milliseconds timeout = std::chrono::milliseconds(10'000),
                           std::chrono::milliseconds poll = std::chrono::milliseconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(poll);
  }
  return true;
}

}  // namespace plfm::testing
