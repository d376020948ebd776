#include "vt_dev_driver.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "plfm/core/process.h"
#include "plfm/http/http.h"

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

VtDevDriver::VtDevDriver(int nodes)
    : state_(std::make_unique<plfm::testing::TempDir>("vd")),
      io_(std::make_unique<plfm::testing::TempDir>("vdio")),
      ports_({testing::freeTcpPort(), testing::freeTcpPort(), testing::freeTcpPort(),
              testing::freeTcpPort(), testing::freeTcpPort(), testing::freeTcpPort()}),
      nodes_(nodes) {}

std::vector<std::string> VtDevDriver::vtEnv() const {
  return {"VT_CONFIG_DIR=" + io_->file("config"),
          "NO_COLOR=1",
          "VT_URL=",
          "VT_TOKEN=",
          "VT_ORG=",
          "VT_APP=",
          "VT_ENV=",
          "VT_CONTEXT="};
}

std::string VtDevDriver::vtBinary() { return PLFM_VT_BIN; }

VtDevDriver::ApiAnswer VtDevDriver::api(const std::string& method, const std::string& path,
                                        const nlohmann::json& body) {
  http::ClientRequest req;
  req.method = method;
  // The dev control plane speaks TLS with a certificate from the dev CA.
  req.url = "https://[::1]:" + std::to_string(ports_[0]) + path;
  req.tls.ca_file = state_->file("tls/ca.pem");
  std::string token = readFile(state_->file("control-plane/admin-token")).value_or("");
  while (!token.empty() && token.back() == '\n') token.pop_back();
  req.headers.set("Authorization", "Bearer " + token);
  if (!body.is_null()) {
    req.headers.set("Content-Type", "application/json");
    req.body = body.dump();
  }
  if (method != "GET") req.headers.set("Idempotency-Key", "e2e-" + std::to_string(++api_calls_));
  auto resp = http::request(req);
  if (!resp) return {};
  return {resp->status, nlohmann::json::parse(resp->body, nullptr, false)};
}

nlohmann::json VtDevDriver::agentInstances() {
  http::ClientRequest req;
  req.url = "http://[::1]:" + std::to_string(ports_[2]) + "/v1/instances";
  auto resp = http::request(req);
  return resp ? nlohmann::json::parse(resp->body, nullptr, false) : nlohmann::json();
}

VtRun VtDevDriver::vt(const std::vector<std::string>& args, std::chrono::seconds timeout,
                      const std::vector<std::string>& extra_env, bool echo) {
  return run(VtCommand{args, timeout, extra_env, "", "", echo});
}

VtRun VtDevDriver::run(const VtCommand& cmd) {
  std::vector<std::string> argv = {PLFM_VT_BIN};
  argv.insert(argv.end(), cmd.args.begin(), cmd.args.end());
  SpawnOptions o;
  const std::string out_path = cmd.stdout_path.empty() ? io_->file("out") : cmd.stdout_path;
  o.stdout_path = out_path;
  o.stderr_path = io_->file("err");
  std::error_code ec;
  std::filesystem::remove(o.stdout_path, ec);
  std::filesystem::remove(o.stderr_path, ec);
  o.env = vtEnv();
  o.env.insert(o.env.end(), cmd.extra_env.begin(), cmd.extra_env.end());
  int in_fd = -1;
  if (!cmd.stdin_path.empty()) {
    in_fd = ::open(cmd.stdin_path.c_str(), O_RDONLY | O_CLOEXEC);
    o.stdin_fd = in_fd;
  }
  VtRun r;
  const auto t0 = Clock::now();
  auto p = spawn(argv, o);
  if (in_fd >= 0) ::close(in_fd);
  if (!p) {
    r.err = p.error().toString();
    return r;
  }
  auto status = p->waitFor(cmd.timeout);
  if (!status) {
    p->signal(9);
    r.err = "vt timed out\n";
  } else {
    r.code = exitCodeOf(*status);
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (cmd.stdout_path.empty()) r.out = readFile(out_path).value_or("");
  r.err += readFile(io_->file("err")).value_or("");
  if (cmd.echo) {
    std::string line = "vt";
    for (const auto& a : cmd.args) line += " " + a;
    std::printf("$ %s  [exit %d, %.1fs]\n%s%s", line.c_str(), r.code, r.seconds,
                r.out.size() > 4096 ? (r.out.substr(0, 4096) + "...\n").c_str() : r.out.c_str(),
                r.err.c_str());
    std::fflush(stdout);
  }
  return r;
}

std::vector<std::string> VtDevDriver::upArgs() const {
  std::vector<std::string> args = {"dev",
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
  if (nodes_ > 1) args.insert(args.end(), {"--nodes", std::to_string(nodes_)});
  return args;
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

std::string VtDevDriver::registry() const {
  return (nodes_ > 1 ? "198.18.0.10:" : "127.0.0.1:") + std::to_string(ports_[1]);
}

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

void VtDevDriver::phase(const char* what) const {
  std::printf("==> [%5.1fs] %s\n", elapsed(), what);
  std::fflush(stdout);
}

double VtDevDriver::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
}

}  // namespace plfm::e2e
