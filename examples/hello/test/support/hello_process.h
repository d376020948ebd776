// Test support: runs the hello binary on the host (ports 0, read back from
// its "listening" line) and captures the output of short commands.
#pragma once

#include <string>
#include <vector>

#include "plfm/core/process.h"
#include "plfm/core/result.h"

namespace plfm::hello::testing {

struct Output {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs argv to completion in `dir` (where its output files go), with `env`
// added to ours.
[[nodiscard]] Output runCapture(const std::vector<std::string>& argv, const std::string& dir,
                                const std::vector<std::string>& env = {});

// `openssl req`: a self-signed ECDSA certificate for `names` (SANs) at
// dir/cert.pem, its key at dir/key.pem.
[[nodiscard]] Result<void> makeCertificate(const std::string& dir,
                                           const std::vector<std::string>& names);

class HelloProcess {
 public:
  struct Options {
    std::string bin;   // the hello binary
    std::string cert;  // TLS_CERT_FILE
    std::string key;   // TLS_KEY_FILE
    std::string log;   // its stdout and stderr
    std::vector<std::string> env;
  };
  // Starts hello and waits for its "listening" line.
  [[nodiscard]] static Result<HelloProcess> start(const Options& options);

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] int healthPort() const { return health_port_; }
  [[nodiscard]] int echoPort() const { return echo_port_; }
  [[nodiscard]] std::string log() const;
  [[nodiscard]] Process& process() { return process_; }
  // SIGTERM, then the exit code (-1: still running after 10 s).
  int stop();

 private:
  Process process_;
  std::string log_;
  int port_ = 0;
  int health_port_ = 0;
  int echo_port_ = 0;
};

}  // namespace plfm::hello::testing
