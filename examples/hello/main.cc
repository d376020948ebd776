// hello: the example app of plfm-vt (README.md). Wires the environment, the
// server and the signals together.
#include <sys/signalfd.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "src/answer.h"
#include "src/config.h"
#include "src/log.h"
#include "src/probe.h"
#include "src/server.h"

namespace {

// Time open connections get to finish after SIGTERM; under the node agent's
// shutdown grace (10 s), and under the connections' own I/O timeout.
constexpr std::chrono::milliseconds kDrain{5000};

}  // namespace

int main(int argc, char** argv) {
  using plfm::hello::logLine;
  if (argc >= 2 && std::string(argv[1]) == "probe") {
    // `vt exec ... -- hello probe ...` (README.md, "Probes").
    const auto outcome = plfm::hello::runProbe(std::vector<std::string>(argv + 2, argv + argc));
    std::printf("%s\n", outcome.line.c_str());
    return outcome.code;
  }
  // Signals arrive on a signalfd, polled with the listeners; every thread
  // created below inherits the mask.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  int stop_fd = signalfd(-1, &mask, SFD_CLOEXEC);
  ::signal(SIGPIPE, SIG_IGN);  // a client that leaves mid-write is an error value, not a signal
  if (stop_fd < 0) {
    std::perror("signalfd");
    return 2;
  }

  auto config = plfm::hello::configFromEnv([](const char* name) { return std::getenv(name); });
  if (!config) {
    logLine("hello: " + config.error().toString());
    return 2;
  }
  auto server = plfm::hello::Server::create(*config);
  if (!server) {
    logLine("hello: " + server.error().toString());
    return 1;
  }
  logLine(
      "listening https=[::]:" + std::to_string((*server)->port()) +
      " health=[::]:" + std::to_string((*server)->healthPort()) +
      " echo=[::]:" + std::to_string((*server)->echoPort()) + "/udp instance=" +
      plfm::hello::printable(config->instance_id.empty() ? "-" : config->instance_id) +
      " release=" + plfm::hello::printable(config->release_id.empty() ? "-" : config->release_id));
  int open = (*server)->run(stop_fd, kDrain);
  logLine("stopped open_connections=" + std::to_string(open));
  if (open > 0) {
    // Their threads still use the server: leave without destructors.
    std::fflush(stdout);
    _exit(0);
  }
  return 0;
}
