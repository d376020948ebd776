// What hello answers: `GET /` on the HTTPS port describes the instance and
// the client, `GET /healthz` on either port says "ok". The body format of
// `/` is a contract (README.md, "The answer"): the end-to-end test parses it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "config.h"
#include "http.h"
#include "plfm/net/proxy_protocol.h"

namespace plfm::hello {

enum class Listener { kHttps, kHealth };

// Everything an answer depends on besides the request.
struct RequestContext {
  Listener listener = Listener::kHttps;
  net::IpEndpoint client;  // from the PROXY v2 header when there was one
  bool via_proxy = false;  // the connection began with a PROXY v2 header
  std::string sni;         // the TLS server name, "" when none was sent
  bool secrets_present = false;
};

// "192.0.2.1:443" or "[2001:db8::1]:443". An IPv4-mapped IPv6 address
// (::ffff:a.b.c.d, how a dual-stack socket or a mixed-family PROXY header
// shows an IPv4 client) is written as the IPv4 address it maps.
[[nodiscard]] std::string clientText(const net::IpEndpoint& client);

// `text` with every byte outside printable ASCII replaced by '?', cut at
// `max` bytes: env values and request paths go on one line of the answer
// or the log, whatever they hold.
[[nodiscard]] std::string printable(std::string_view text, size_t max = 256);

// The body of `GET /`.
[[nodiscard]] std::string rootBody(const Config& config, const RequestContext& ctx);

// `GET /stream/N` (N = 1..60): a download of N seconds, "tick 0000\n" to
// "tick NNNN\n", one line every 100 ms.
inline constexpr int kMaxStreamSeconds = 60;
// N of a /stream/N path, or nullopt.
[[nodiscard]] std::optional<int> streamSeconds(std::string_view path);

// Routes a parsed request.
[[nodiscard]] Response answer(const Request& request, const Config& config,
                              const RequestContext& ctx);

}  // namespace plfm::hello
