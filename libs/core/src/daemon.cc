#include "plfm/core/daemon.h"

#include <pthread.h>

#include <csignal>

#include "plfm/core/log.h"

namespace plfm::daemon {

void initLogging(std::string_view component, std::string_view level, const std::string& file) {
  log::Options lo;
  lo.component = std::string(component);
  lo.level = log::parseLevel(level).value_or(log::Level::kInfo);
  lo.file = file;
  log::init(lo);
}

Result<int> run(const Hooks& hooks) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (hooks.reload) sigaddset(&set, SIGHUP);
  // Blocked before any thread starts, so only sigwait() below receives them.
  // They stay blocked after: a second SIGTERM during stop() changes nothing.
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  if (hooks.start) PLFM_TRY(hooks.start());
  if (hooks.ready) hooks.ready();
  int sig = 0;
  for (;;) {
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGHUP) {
      hooks.reload();
      continue;
    }
    break;
  }
  log::info("shutting down", {{"signal", sig}});
  if (hooks.stop) hooks.stop();
  log::info("stopped");
  log::flush();
  return sig;
}

}  // namespace plfm::daemon
