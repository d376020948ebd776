// `hello probe ...`: network checks run inside a guest with `vt exec`, since
// the image has no tools of its own (README.md, "Probes"). Each prints one
// line of `key=value` fields and exits 0 on success, 1 on a failed check and
// 2 on bad arguments:
//
//   resolve NAME [--server ADDR] [--timeout-ms N]
//       an AAAA query over UDP to the first nameserver of /etc/resolv.conf
//   connect ADDR PORT [--timeout-ms N]
//       a TCP connect
//   ping ADDR [--port P] [--interval-ms N] [--count N] [--timeout-ms N]
//       N datagrams to hello's UDP echo port, counting the echoes
#pragma once

#include <string>
#include <vector>

namespace plfm::hello {

inline constexpr int kProbeOk = 0;
inline constexpr int kProbeFailed = 1;
inline constexpr int kProbeUsage = 2;

struct ProbeOutcome {
  int code = kProbeUsage;
  std::string line;  // without the newline
};

struct ProbeEnv {
  std::string resolv_conf = "/etc/resolv.conf";
  uint16_t dns_port = 53;  // tests point these at their own server
};

// `args` are the words after `probe`.
[[nodiscard]] ProbeOutcome runProbe(const std::vector<std::string>& args, const ProbeEnv& env = {});

}  // namespace plfm::hello
