// A tiny UDP DNS responder for tests (no daemon): answers TXT queries from a
// table the test sets, NXDOMAIN for other names, or nothing at all when
// silent (to test resolver timeouts). Listens on 127.0.0.1, port 0. Only
// what the domain ownership tests need: one question, class IN.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace plfm::testing {

class DnsServer {
 public:
  DnsServer();
  ~DnsServer();
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  // "127.0.0.1:PORT", for --dns-resolver.
  [[nodiscard]] std::string address() const;
  // The TXT records of `name` (lowercase, no trailing dot); empty removes it.
  void setTxt(const std::string& name, std::vector<std::string> values);
  // When silent, queries are read and never answered.
  void setSilent(bool silent) { silent_ = silent; }
  [[nodiscard]] int queries() const { return queries_; }

 private:
  void serve();
  [[nodiscard]] std::vector<unsigned char> answer(const unsigned char* q, size_t n);

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> silent_{false};
  std::atomic<int> queries_{0};
  std::mutex mu_;
  std::map<std::string, std::vector<std::string>> txt_;
  std::thread thread_;
};

}  // namespace plfm::testing
