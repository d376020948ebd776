#include "answer.h"

#include <algorithm>

namespace plfm::hello {
namespace {

constexpr std::array<uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

std::string valueOrDash(const std::string& v) { return v.empty() ? "-" : printable(v); }

}  // namespace

std::string clientText(const net::IpEndpoint& client) {
  if (client.v6 &&
      std::equal(kV4MappedPrefix.begin(), kV4MappedPrefix.end(), client.address.begin())) {
    return net::IpEndpoint::ipv4(
               {client.address[12], client.address[13], client.address[14], client.address[15]},
               client.port)
        .toString();
  }
  return client.toString();
}

std::string printable(std::string_view text, size_t max) {
  std::string out(text.substr(0, max));
  std::replace_if(
      out.begin(), out.end(), [](char c) { return c < 0x20 || c > 0x7e; }, '?');
  return out;
}

std::string rootBody(const Config& config, const RequestContext& ctx) {
  std::string b;
  b += "greeting: " + valueOrDash(config.greeting) + "\n";
  b += "instance: " + valueOrDash(config.instance_id) + "\n";
  b += "release: " + valueOrDash(config.release_id) + "\n";
  b += std::string("secrets: ") + (ctx.secrets_present ? "present" : "absent") + "\n";
  b += "client: " + clientText(ctx.client) + "\n";
  b += std::string("proxy: ") + (ctx.via_proxy ? "v2" : "none") + "\n";
  b += "sni: " + valueOrDash(ctx.sni) + "\n";
  return b;
}

std::optional<int> streamSeconds(std::string_view path) {
  constexpr std::string_view kPrefix = "/stream/";
  if (!path.starts_with(kPrefix)) return std::nullopt;
  const std::string_view n = path.substr(kPrefix.size());
  if (n.empty() || n.size() > 2 || n.front() == '0' ||
      !std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  const int seconds = std::stoi(std::string(n));
  if (seconds > kMaxStreamSeconds) return std::nullopt;
  return seconds;
}

Response answer(const Request& request, const Config& config, const RequestContext& ctx) {
  Response r;
  const auto stream = ctx.listener == Listener::kHttps ? streamSeconds(request.path) : std::nullopt;
  const bool known = request.path == "/healthz" || stream.has_value() ||
                     (request.path == "/" && ctx.listener == Listener::kHttps);
  if (!known) {
    r.status = 404;
    r.body = "not found\n";
    return r;
  }
  if (request.method != "GET" && request.method != "HEAD") {
    r.status = 405;
    r.body = "method not allowed\n";
    r.allow = "GET, HEAD";
    return r;
  }
  if (const int seconds = stream.value_or(0); seconds > 0) {
    for (int i = 0; i < seconds * 10; ++i) {
      std::string n = std::to_string(i);
      r.body += "tick " + std::string(4 - n.size(), '0') + n + "\n";  // i < 600
    }
    r.pace = std::chrono::milliseconds(100);
    r.chunk = 10;
    return r;
  }
  r.body = request.path == "/healthz" ? "ok\n" : rootBody(config, ctx);
  return r;
}

}  // namespace plfm::hello
