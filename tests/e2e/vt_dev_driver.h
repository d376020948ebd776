// Drives the whole local platform through the real `vt` binary, as a user
// would: `vt dev up` in a temp state dir on free ports, examples/hello built
// and pushed to its registry, curl through its ingress. Shared by the vt dev
// e2e test and bench/deploy_bench; it asserts nothing, callers judge the
// results. Call enterPrivateNetwork() first, before any thread starts, so that
// taps and listeners never touch the host's network.
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "plfm/core/result.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::e2e {

// unshare(CLONE_NEWNET) and `ip link set lo up`. Needs root; must run while
// the process has a single thread.
[[nodiscard]] Result<void> enterPrivateNetwork();

struct VtRun {
  int code = -1;
  std::string out;
  std::string err;
  double seconds = 0;  // wall time, spawn to exit
};

// How to run one vt command (VtDevDriver::run).
struct VtCommand {
  std::vector<std::string> args;
  std::chrono::seconds timeout = std::chrono::seconds(60);
  std::vector<std::string> extra_env = {};  // NAME=VALUE on top of the driver's
  std::string stdin_path = {};              // empty: /dev/null
  std::string stdout_path = {};             // empty: captured into VtRun::out
  bool echo = true;
};

class VtDevDriver {
 public:
  // `nodes` > 1: `dev up --nodes N`, hosts B... in network namespaces.
  explicit VtDevDriver(int nodes = 1);

  // Runs vt as `cmd` says (see vt() for the environment).
  VtRun run(const VtCommand& cmd);
  // The environment vt runs with here (NAME=VALUE), for running it from
  // another program (a shell, tmux).
  [[nodiscard]] std::vector<std::string> vtEnv() const;
  [[nodiscard]] static std::string vtBinary();

  // Runs vt with `args` (a clean vt config of its own, NO_COLOR=1) and extra
  // NAME=VALUE entries; kills it after `timeout`. Echoes the command line,
  // its exit and output to stdout unless `echo` is false.
  VtRun vt(const std::vector<std::string>& args,
           std::chrono::seconds timeout = std::chrono::seconds(60),
           const std::vector<std::string>& extra_env = {}, bool echo = true);

  // `dev up` with this driver's state dir, ports and node count.
  [[nodiscard]] std::vector<std::string> upArgs() const;

  // Builds examples/hello's image and pushes it; returns "REF@sha256:...",
  // or "" after printing the build log's tail to stderr.
  std::string pushHello();

  // One HTTPS request through the ingress, `ip` being "::1" or "127.0.0.1";
  // the body, or "" on error.
  std::string curl(const std::string& host, const std::string& ip);
  // Polls until the answer contains `want` (or the time is up); returns the last answer.
  std::string waitFor(const std::string& host, const std::string& ip, const std::string& want,
                      std::chrono::seconds timeout);

  // A control-plane call with the admin token `vt dev up` made, over TLS
  // with the dev CA: the parsed answer (null when there is none) and its
  // HTTP status (0 when the request failed).
  struct ApiAnswer {
    int status = 0;
    nlohmann::json body;
  };
  ApiAnswer api(const std::string& method, const std::string& path,
                const nlohmann::json& body = nullptr);
  // The node agent's view of its instances (instance_id, phase, vmm_pid, ...).
  nlohmann::json agentInstances();

  // Prints "==> [  12.3s] what" (time since the driver was made) to stdout,
  // so a test's log shows where its time went.
  void phase(const char* what) const;
  // Seconds since the driver was made.
  [[nodiscard]] double elapsed() const;

  // 127.0.0.1:PORT, or host A's underlay 198.18.0.10:PORT with several nodes.
  [[nodiscard]] std::string registry() const;
  [[nodiscard]] int ingressPort() const { return ports_[3]; }

 protected:
  std::unique_ptr<testing::TempDir> state_;
  std::unique_ptr<testing::TempDir> io_;
  // control plane, registry, agent, ingress, ingress metrics, control plane (nodes)
  std::vector<int> ports_;
  int api_calls_ = 0;
  int nodes_ = 1;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace plfm::e2e
