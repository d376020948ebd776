#include "integration_support.h"

#include <csignal>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "peers.h"
#include "plfm/http/http.h"

namespace plfm::ingress::testing {

Result<void> makeCertificate(const std::string& dir, const std::vector<std::string>& names) {
  std::string san = "subjectAltName=";
  for (size_t i = 0; i < names.size(); ++i) san += (i ? ",DNS:" : "DNS:") + names[i];
  SpawnOptions o;
  o.stdout_path = dir + "/openssl-req.log";
  return runChecked(
      {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
       "-nodes", "-keyout", dir + "/key.pem", "-out", dir + "/cert.pem", "-days", "1", "-subj",
       "/CN=" + names.front(), "-addext", san},
      o);
}

bool waitListening(const std::string& endpoint, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    const int fd = connectTo(endpoint);
    if (fd >= 0) {
      ::close(fd);
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

Result<Process> startTlsServer(const std::string& workdir, const std::string& cert_dir,
                               const std::string& accept, const std::string& body) {
  std::ofstream(workdir + "/id.txt") << body;
  SpawnOptions o;
  o.cwd = workdir;
  o.stdout_path = workdir + "/s_server.log";
  const bool v6 = accept.front() == '[';
  std::vector<std::string> argv = {"openssl", "s_server",
                                   "-quiet",  "-accept",
                                   accept,    v6 ? "-6" : "-4",
                                   "-cert",   cert_dir + "/cert.pem",
                                   "-key",    cert_dir + "/key.pem",
                                   "-WWW"};
  PLFM_ASSIGN_OR_RETURN(Process p, spawn(argv, o));
  if (!waitListening(accept, 10'000)) {
    return Error(errc::kUnavailable, "s_server did not listen on " + accept);
  }
  return p;
}

Result<void> IngressProcess::start(const std::string& dir, const std::string& toml,
                                   const std::vector<std::string>& args) {
  dir_ = dir;
  std::ofstream(dir + "/ingress.toml") << toml;
  std::vector<std::string> argv = {PLFM_INGRESS_BIN, "serve", "--config", dir + "/ingress.toml"};
  argv.insert(argv.end(), args.begin(), args.end());
  SpawnOptions o;
  o.stdout_path = dir + "/ingress.out";
  o.stderr_path = dir + "/ingress.log";
  std::ofstream(dir + "/ingress.out", std::ios::trunc).flush();
  PLFM_ASSIGN_OR_RETURN(process_, spawn(argv, o));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(dir + "/ingress.out");
    std::string word, listen, metrics_word, metrics;
    if (in >> word >> listen >> metrics_word >> metrics && word == "listening") {
      metrics_url_ = "http://" + metrics;
      return ok();
    }
    if (process_.poll()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Error(errc::kUnavailable,
               "plfm-ingress did not start: " + tailFile(dir + "/ingress.log", 20));
}

void IngressProcess::stop() {
  if (!process_.valid()) return;
  process_.signal(SIGTERM);
  if (!process_.waitFor(std::chrono::seconds(15))) process_.signal(SIGKILL);
  process_ = Process();
}

double IngressProcess::metric(const std::string& sample) const {
  http::ClientRequest req;
  req.url = metrics_url_ + "/metrics";
  auto resp = http::request(req);
  if (!resp) return -1;
  std::istringstream in(resp->body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(sample + " ", 0) == 0) return std::stod(line.substr(sample.size() + 1));
  }
  return -1;
}

std::string IngressProcess::log() const { return tailFile(dir_ + "/ingress.log", 40); }

namespace {

// curl -sk --resolve host:port:addr https://host:port/path, plus `extra`
// arguments; stdout, or "<curl exit N>".
std::string runCurl(const std::string& host, int port, const std::string& addr,
                    const std::string& path, const std::string& scratch_file,
                    const std::vector<std::string>& extra) {
  const std::string p = std::to_string(port);
  SpawnOptions o;
  o.stdout_path = scratch_file;
  std::ofstream(scratch_file, std::ios::trunc).flush();
  std::vector<std::string> argv = {"curl", "-sk",       "--max-time",
                                   "10",   "--resolve", host + ":" + p + ":" + addr};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back("https://" + host + ":" + p + path);
  auto proc = spawn(argv, o);
  if (!proc) return "<spawn failed>";
  const int status = proc->wait();
  if (exitCodeOf(status) != 0) return "<curl exit " + std::to_string(exitCodeOf(status)) + ">";
  return readFile(scratch_file).value_or("<unreadable>");
}

}  // namespace

std::string curlGet(const std::string& host, int port, const std::string& addr,
                    const std::string& path, const std::string& scratch_file) {
  return runCurl(host, port, addr, path, scratch_file, {});
}

CurlResult curlGetWithLocal(const std::string& host, int port, const std::string& addr,
                            const std::string& path, const std::string& scratch_file) {
  std::string out =
      runCurl(host, port, addr, path, scratch_file, {"-w", "\n%{local_ip} %{local_port}"});
  CurlResult r;
  const size_t nl = out.rfind('\n');
  if (out.starts_with("<curl exit") || nl == std::string::npos) {
    r.body = out;
    return r;
  }
  r.body = out.substr(0, nl);
  std::istringstream tail(out.substr(nl + 1));
  tail >> r.local_ip >> r.local_port;
  return r;
}

Result<Process> startNginxProxyReceiver(const std::string& dir, const std::string& cert_dir,
                                        int port) {
  std::ofstream(dir + "/nginx.conf")
      << "daemon off;\nmaster_process off;\nworker_processes 1;\npid " << dir
      << "/nginx.pid;\nerror_log " << dir
      << "/nginx-error.log;\nevents { worker_connections 64; }\n"
      << "http {\n  access_log off;\n  client_body_temp_path " << dir << ";\n  proxy_temp_path "
      << dir << ";\n  fastcgi_temp_path " << dir << ";\n  uwsgi_temp_path " << dir
      << ";\n  scgi_temp_path " << dir
      << ";\n  log_format pp '$proxy_protocol_addr:$proxy_protocol_port $remote_addr';\n"
      << "  server {\n    listen [::1]:" << port << " ssl proxy_protocol;\n    ssl_certificate "
      << cert_dir << "/cert.pem;\n    ssl_certificate_key " << cert_dir
      << "/key.pem;\n    access_log " << dir << "/nginx-access.log pp;\n"
      << "    location / { return 200 \"pp=$proxy_protocol_addr:$proxy_protocol_port\"; }\n"
      << "  }\n}\n";
  SpawnOptions o;
  o.stdout_path = dir + "/nginx.log";
  PLFM_ASSIGN_OR_RETURN(
      Process p,
      spawn({"nginx", "-e", dir + "/nginx-error.log", "-p", dir, "-c", dir + "/nginx.conf"}, o));
  if (!waitListening("[::1]:" + std::to_string(port), 10'000)) {
    return Error(errc::kUnavailable,
                 "nginx did not listen: " + tailFile(dir + "/nginx-error.log", 20));
  }
  return p;
}

}  // namespace plfm::ingress::testing
