// vt-test-workload's network probes (netprobe.cc describes them).
#pragma once

#include <csignal>
#include <string>

namespace vt_test {

// Each returns the process's exit code; the loops end when `stop` is set.
int netprobe(int port, const volatile std::sig_atomic_t& stop);
int ask(const std::string& addr, int port, const std::string& line);
int udpListen(int port, const volatile std::sig_atomic_t& stop);

}  // namespace vt_test
