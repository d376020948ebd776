// The one way a plfm service runs as a daemon: its log set up from a level
// name and a file, its shutdown signals blocked before any thread starts, and
// one thread (the caller's) waiting for them in sigwait(). Used by
// plfm-control-plane, plfm-node-agent and plfm-ingress.
//
//   daemon::initLogging("ingress", cfg.log_level, cfg.log_file);
//   daemon::Hooks hooks;
//   hooks.start = [&] { return ingress.start(); };   // threads start here
//   hooks.ready = [&] { std::cout << "listening ..." << std::endl; };
//   hooks.reload = [&] { ingress.reload(); };        // SIGHUP; leave empty to not handle it
//   hooks.stop = [&] { ingress.stop(); };
//   auto signal = daemon::run(hooks);                // returns after stop()
//
// No handler runs in signal context, so stop() may take locks, join threads
// and log.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "plfm/core/result.h"

namespace plfm::daemon {

// Configures the process-wide log for `component` at `level` ("debug",
// "info", "warn", "error"; anything else means info, validated earlier by the
// service's config) appending to `file` (empty: stderr).
void initLogging(std::string_view component, std::string_view level, const std::string& file);

struct Hooks {
  // Starts the service; runs with the signals already blocked, so the
  // threads it starts inherit the mask. An error is returned by run()
  // unchanged (the service decides its message and exit code).
  std::function<Result<void>()> start;
  // After a successful start: announce the endpoints (optional).
  std::function<void()> ready;
  // On SIGHUP (optional). When empty, SIGHUP is not blocked and keeps its
  // default action.
  std::function<void()> reload;
  // Called exactly once, after SIGTERM or SIGINT.
  std::function<void()> stop;
};

// Blocks SIGTERM, SIGINT (and SIGHUP when `hooks.reload` is set) in the
// calling thread, ignores SIGPIPE, calls start(), then ready(), then waits in
// sigwait(): SIGHUP calls reload() and waits again; SIGTERM or SIGINT logs
// "shutting down" with the signal, calls stop(), logs "stopped" and flushes
// the log. Returns the signal that stopped the service, or start()'s error.
// The signals stay blocked afterwards, so a second SIGTERM during stop()
// cannot kill the process half-way. Call it before the process starts any
// thread of its own.
[[nodiscard]] Result<int> run(const Hooks& hooks);

}  // namespace plfm::daemon
