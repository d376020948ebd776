#include "proxy_peek.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <thread>

#include "plfm/net/proxy_protocol_wire.h"

namespace plfm::hello {
namespace {

constexpr size_t kFixedBytes = net::proxy::kV2FixedBytes;

ProxyPeek failed(std::string why) {
  ProxyPeek p;
  p.kind = ProxyPeek::Kind::kError;
  p.error = std::move(why);
  return p;
}

// recv() until `len` bytes arrived (MSG_WAITALL may still return early on a
// signal or timeout).
bool recvAll(int fd, uint8_t* buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = ::recv(fd, buf + got, len - got, MSG_WAITALL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    got += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

ProxyPeek readProxyV2(int fd, std::chrono::milliseconds deadline) {
  const auto& sig = net::proxy::kV2Signature;
  const auto until = std::chrono::steady_clock::now() + deadline;
  std::array<uint8_t, kFixedBytes> fixed{};
  for (;;) {
    ssize_t n = ::recv(fd, fixed.data(), sig.size(), MSG_PEEK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return failed("no data before the read timeout");
    if (n == 0) return failed("closed before sending anything");
    const auto got = static_cast<size_t>(n);
    if (!std::equal(fixed.begin(), fixed.begin() + n, sig.begin())) return {};
    if (got == sig.size()) break;
    // A strict prefix of the signature: wait for the rest to arrive.
    if (std::chrono::steady_clock::now() >= until) return failed("partial PROXY v2 signature");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  net::ProxyHeaderParser parser({.accept_v1 = false});
  if (!recvAll(fd, fixed.data(), fixed.size())) return failed("truncated PROXY v2 header");
  auto r = parser.feed(fixed);
  if (r.status == net::ParseStatus::kNeedMore) {
    const size_t rest = (size_t{fixed[14]} << 8) | fixed[15];
    std::string body(rest, '\0');
    auto* bytes = reinterpret_cast<uint8_t*>(body.data());
    if (!recvAll(fd, bytes, rest)) return failed("truncated PROXY v2 header");
    r = parser.feed({bytes, rest});
  }
  if (r.status != net::ParseStatus::kDone) {
    return failed("bad PROXY v2 header: " + std::string(parser.errorName()));
  }
  ProxyPeek p;
  p.kind = ProxyPeek::Kind::kHeader;
  p.header = parser.header();
  return p;
}

}  // namespace plfm::hello
