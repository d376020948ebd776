// The test DNS responder (dns_server.h). Messages per RFC 1035 4.1.
#include "plfm/testing/dns_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace plfm::testing {
namespace {

constexpr size_t kHeader = 12;
constexpr uint16_t kTypeTxt = 16;

void put16(std::vector<unsigned char>& out, unsigned v) {
  out.push_back(static_cast<unsigned char>((v >> 8) & 0xff));
  out.push_back(static_cast<unsigned char>(v & 0xff));
}

}  // namespace

DnsServer::DnsServer() {
  fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("DnsServer: socket/bind");
    std::abort();
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { serve(); });
}

DnsServer::~DnsServer() {
  stop_ = true;
  thread_.join();
  ::close(fd_);
}

std::string DnsServer::address() const { return "127.0.0.1:" + std::to_string(port_); }

void DnsServer::setTxt(const std::string& name, std::vector<std::string> values) {
  const std::lock_guard lock(mu_);
  if (values.empty()) {
    txt_.erase(name);
  } else {
    txt_[name] = std::move(values);
  }
}

void DnsServer::serve() {
  std::vector<unsigned char> buf(4096);
  while (!stop_) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    sockaddr_in from{};
    socklen_t len = sizeof from;
    const ssize_t n =
        ::recvfrom(fd_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n <= 0) continue;
    ++queries_;
    if (silent_) continue;
    const auto reply = answer(buf.data(), static_cast<size_t>(n));
    if (!reply.empty()) {
      (void)::sendto(fd_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }
}

std::vector<unsigned char> DnsServer::answer(const unsigned char* q, size_t n) {
  if (n < kHeader) return {};
  // The question's name, as labels.
  size_t pos = kHeader;
  std::string name;
  while (pos < n && q[pos] != 0) {
    const size_t l = q[pos];
    if (l > 63 || pos + 1 + l >= n) return {};
    if (!name.empty()) name += '.';
    for (size_t i = 0; i < l; ++i) {
      char c = static_cast<char>(q[pos + 1 + i]);
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      name += c;
    }
    pos += 1 + l;
  }
  if (pos + 5 > n) return {};
  const size_t question_end = pos + 5;  // the root label, type and class
  const unsigned qtype = (q[pos + 1] << 8) | q[pos + 2];
  std::vector<std::string> values;
  bool known = false;
  {
    const std::lock_guard lock(mu_);
    if (auto it = txt_.find(name); it != txt_.end()) {
      known = true;
      if (qtype == kTypeTxt) values = it->second;
    }
  }
  std::vector<unsigned char> out;
  out.push_back(q[0]);  // the query's id
  out.push_back(q[1]);
  out.push_back(static_cast<unsigned char>(0x80 | (q[2] & 0x01)));  // QR, RD copied
  out.push_back(known ? 0x80 : 0x83);                               // RA; NXDOMAIN if unknown
  put16(out, 1);                                                    // one question
  put16(out, static_cast<unsigned>(values.size()));
  put16(out, 0);
  put16(out, 0);
  out.insert(out.end(), q + kHeader, q + question_end);
  for (const auto& v : values) {
    put16(out, 0xC000 | kHeader);  // the question's name
    put16(out, kTypeTxt);
    put16(out, 1);  // IN
    put16(out, 0);
    put16(out, 60);  // TTL
    std::vector<unsigned char> rdata;
    for (size_t off = 0; off < v.size() || off == 0; off += 255) {
      const size_t len = std::min<size_t>(255, v.size() - off);
      rdata.push_back(static_cast<unsigned char>(len));
      rdata.insert(rdata.end(), v.begin() + static_cast<std::ptrdiff_t>(off),
                   v.begin() + static_cast<std::ptrdiff_t>(off + len));
      if (v.empty()) break;
    }
    put16(out, static_cast<unsigned>(rdata.size()));
    out.insert(out.end(), rdata.begin(), rdata.end());
  }
  return out;
}

}  // namespace plfm::testing
