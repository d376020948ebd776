#include "vt_dev_driver.h"

#include <sched.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "plfm/core/process.h"

namespace plfm::e2e {

using Clock = std::chrono::steady_clock;

Result<void> enterPrivateNetwork() {
  if (::unshare(CLONE_NEWNET) != 0) {
    return Error(errc::kFailedPrecondition,
                 std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno));
  }
  if (std::system("ip link set lo up") != 0) {
    return Error(errc::kInternal, "ip link set lo up failed");
  }
  return ok();
}

VtDevDriver::VtDevDriver()
    : state_(std::make_unique<testing::TempDir>("vd")),
      io_(std::make_unique<testing::TempDir>("vdio")),
      ports_({testing::freeTcpPort(), testing::freeTcpPort(), testing::freeTcpPort(),
              testing::freeTcpPort(), testing::freeTcpPort(), testing::freeTcpPort()}) {}

VtRun VtDevDriver::vt(const std::vector<std::string>& args, std::chrono::seconds timeout,
                      const std::vector<std::string>& extra_env, bool echo) {
  std::vector<std::string> argv = {PLFM_VT_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  SpawnOptions o;
  o.stdout_path = io_->file("out");
  o.stderr_path = io_->file("err");
  std::error_code ec;
  std::filesystem::remove(o.stdout_path, ec);
  std::filesystem::remove(o.stderr_path, ec);
  o.env = {"VT_CONFIG_DIR=" + io_->file("config"),
           "NO_COLOR=1",
           "VT_URL=",
           "VT_TOKEN=",
           "VT_ORG=",
           "VT_APP=",
           "VT_ENV=",
           "VT_CONTEXT="};
  o.env.insert(o.env.end(), extra_env.begin(), extra_env.end());
  VtRun r;
  const auto t0 = Clock::now();
  auto p = spawn(argv, o);
  if (!p) {
    r.err = p.error().toString();
    return r;
  }
  auto status = p->waitFor(timeout);
  if (!status) {
    p->signal(9);
    r.err = "vt timed out\n";
  } else {
    r.code = exitCodeOf(*status);
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.out = readFile(io_->file("out")).value_or("");
  r.err += readFile(io_->file("err")).value_or("");
  if (echo) {
    std::string cmd = "vt";
    for (const auto& a : args) cmd += " " + a;
    std::printf("$ %s  [exit %d, %.1fs]\n%s%s", cmd.c_str(), r.code, r.seconds, r.out.c_str(),
                r.err.c_str());
    std::fflush(stdout);
  }
  return r;
}

std::vector<std::string> VtDevDriver::upArgs() const {
  return {"dev",
          "up",
          "--state-dir",
          state_->path(),
          "--control-plane-port",
          std::to_string(ports_[0]),
          "--registry-port",
          std::to_string(ports_[1]),
          "--agent-port",
          std::to_string(ports_[2]),
          "--ingress-port",
          std::to_string(ports_[3]),
          "--ingress-metrics-port",
          std::to_string(ports_[4]),
          "--control-plane-node-port",
          std::to_string(ports_[5]),
          "--format",
          "table"};
}

std::string VtDevDriver::pushHello() {
  SpawnOptions so;
  so.stdout_path = io_->file("build-image.out");
  so.stderr_path = io_->file("build-image.log");
  const std::string script = std::string(PLFM_SOURCE_DIR) + "/examples/hello/build-image";
  auto r = runChecked(
      {script, "--bin", PLFM_HELLO_BIN, "--work", io_->file("hello-image"), registry()}, so);
  if (!r) {
    std::fprintf(stderr, "build-image: %s\n%s", r.error().toString().c_str(),
                 tailFile(io_->file("build-image.log"), 20).c_str());
    return "";
  }
  std::string out = readFile(io_->file("build-image.out")).value_or("");
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
}

std::string VtDevDriver::registry() const { return "127.0.0.1:" + std::to_string(ports_[1]); }

std::string VtDevDriver::curl(const std::string& host, const std::string& ip) {
  const std::string port = std::to_string(ingressPort());
  const std::string target = ip.find(':') != std::string::npos ? "[" + ip + "]" : ip;
  SpawnOptions so;
  so.stdout_path = io_->file("curl.out");
  so.stderr_path = io_->file("curl.err");
  std::error_code ec;
  std::filesystem::remove(so.stdout_path, ec);
  auto r = runChecked({"curl", "-sS", "-k", "--max-time", "5", "--resolve",
                       host + ":" + port + ":" + target, "https://" + host + ":" + port + "/"},
                      so);
  return r ? readFile(io_->file("curl.out")).value_or("") : "";
}

std::string VtDevDriver::waitFor(const std::string& host, const std::string& ip,
                                 const std::string& want, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string got;
  while (Clock::now() < deadline) {
    got = curl(host, ip);
    if (got.find(want) != std::string::npos) return got;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return got;
}

}  // namespace plfm::e2e
