#include "hello_process.h"

#include <chrono>
#include <csignal>
#include <regex>
#include <thread>

namespace plfm::hello::testing {

using namespace std::chrono_literals;

Output runCapture(const std::vector<std::string>& argv, const std::string& dir,
                  const std::vector<std::string>& env) {
  static int n = 0;
  const std::string path = dir + "/run-" + std::to_string(++n);
  SpawnOptions o;
  o.stdout_path = path + ".out";
  o.stderr_path = path + ".err";
  o.env = env;
  auto p = spawn(argv, o);
  if (!p) return {-1, "", p.error().toString()};
  Output r;
  r.exit_code = exitCodeOf(p->wait());
  r.out = readFile(path + ".out").value_or("");
  r.err = readFile(path + ".err").value_or("");
  return r;
}

Result<void> makeCertificate(const std::string& dir, const std::vector<std::string>& names) {
  std::string san = "subjectAltName=";
  for (size_t i = 0; i < names.size(); ++i) san += (i == 0 ? "DNS:" : ",DNS:") + names[i];
  Output r =
      runCapture({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                  "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", dir + "/key.pem", "-out",
                  dir + "/cert.pem", "-days", "1", "-subj", "/CN=" + names.front(), "-addext", san},
                 dir);
  if (r.exit_code != 0) return Error(errc::kInternal, "openssl req failed: " + r.err);
  return ok();
}

Result<HelloProcess> HelloProcess::start(const Options& options) {
  HelloProcess h;
  h.log_ = options.log;
  SpawnOptions o;
  o.stdout_path = options.log;
  o.env = {"PORT=0", "HEALTH_PORT=0", "ECHO_PORT=0", "TLS_CERT_FILE=" + options.cert,
           "TLS_KEY_FILE=" + options.key};
  o.env.insert(o.env.end(), options.env.begin(), options.env.end());
  PLFM_ASSIGN_OR_RETURN(h.process_, spawn({options.bin}, o));
  const std::regex listening(
      R"(listening https=\[::\]:(\d+) health=\[::\]:(\d+) echo=\[::\]:(\d+)/udp)");
  for (auto until = std::chrono::steady_clock::now() + 10s;
       std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(20ms)) {
    std::smatch m;
    const std::string log = h.log();
    if (std::regex_search(log, m, listening)) {
      h.port_ = std::stoi(m[1]);
      h.health_port_ = std::stoi(m[2]);
      h.echo_port_ = std::stoi(m[3]);
      return h;
    }
    if (h.process_.poll()) return Error(errc::kUnavailable, "hello exited: " + log);
  }
  return Error(errc::kUnavailable, "hello did not listen: " + h.log());
}

std::string HelloProcess::log() const { return readFile(log_).value_or(""); }

int HelloProcess::stop() {
  if (!process_.valid()) return -1;
  if (auto done = process_.poll()) return exitCodeOf(*done);
  process_.signal(SIGTERM);
  auto status = process_.waitFor(10s);
  return status ? exitCodeOf(*status) : -1;
}

}  // namespace plfm::hello::testing
