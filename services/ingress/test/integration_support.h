// Process fixtures for the ingress integration test: the real plfm-ingress
// binary, openssl s_server backends, haproxy, and a test certificate made
// at test time with openssl req.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "plfm/core/process.h"
#include "plfm/core/result.h"

namespace plfm::ingress::testing {

// A self-signed ECDSA certificate for the names given (SANs), made with
// `openssl req` into dir/cert.pem and dir/key.pem.
[[nodiscard]] Result<void> makeCertificate(const std::string& dir,
                                           const std::vector<std::string>& names);

// `openssl s_server -WWW` serving dir/id.txt = body, on `accept` ("[::1]:0"
// is not allowed: pick a port), until destroyed.
[[nodiscard]] Result<Process> startTlsServer(const std::string& workdir,
                                             const std::string& cert_dir, const std::string& accept,
                                             const std::string& body);
// Waits until something accepts TCP connections at endpoint.
[[nodiscard]] bool waitListening(const std::string& endpoint, int timeout_ms);

class IngressProcess {
 public:
  // Runs `plfm-ingress serve --config <dir>/ingress.toml` plus `args`, and
  // waits for its "listening" line.
  [[nodiscard]] Result<void> start(const std::string& dir, const std::string& toml,
                                   const std::vector<std::string>& args = {});
  void stop();  // SIGTERM, then wait
  void signal(int sig) { process_.signal(sig); }
  [[nodiscard]] const std::string& metricsUrl() const { return metrics_url_; }
  // The value of one sample of /metrics ("name{label=\"v\"}"), -1 if absent.
  [[nodiscard]] double metric(const std::string& sample) const;
  [[nodiscard]] std::string log() const;

 private:
  Process process_;
  std::string dir_;
  std::string metrics_url_;
};

// `curl -sk --resolve host:port:addr https://host:port/path`; the body, or
// "<curl exit N>".
[[nodiscard]] std::string curlGet(const std::string& host, int port, const std::string& addr,
                                  const std::string& path, const std::string& scratch_file);

// The same GET, also reporting the client's side of the connection, so a
// test knows the address and port a PROXY header must carry.
struct CurlResult {
  std::string body;        // or "<curl exit N>"
  std::string local_ip;    // "::1", "127.0.0.1"
  std::string local_port;  // "40312"
};
[[nodiscard]] CurlResult curlGetWithLocal(const std::string& host, int port,
                                          const std::string& addr, const std::string& path,
                                          const std::string& scratch_file);

// nginx as a PROXY protocol receiver (`listen ... ssl proxy_protocol`) on
// [::1]:port with dir/cert.pem: it answers every request with
// "pp=$proxy_protocol_addr:$proxy_protocol_port" and logs the same, plus
// $remote_addr, one line per request, to dir/nginx-access.log.
[[nodiscard]] Result<Process> startNginxProxyReceiver(const std::string& dir,
                                                      const std::string& cert_dir, int port);

}  // namespace plfm::ingress::testing
