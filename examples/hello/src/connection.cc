#include "connection.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "http.h"
#include "log.h"
#include "proxy_peek.h"
#include "stream.h"
#include "tls.h"

namespace plfm::hello {
namespace {

void setTimeouts(int fd) {
  timeval tv{};
  tv.tv_sec = kIoTimeout.count();
  (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  (void)::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

std::string_view listenerName(Listener l) { return l == Listener::kHttps ? "https" : "health"; }

std::string describe(const RequestContext& ctx) {
  std::string s = "client=" + clientText(ctx.client);
  s += " listener=" + std::string(listenerName(ctx.listener));
  if (ctx.listener == Listener::kHttps) {
    s += std::string(" proxy=") + (ctx.via_proxy ? "v2" : "none");
    s += " sni=" + (ctx.sni.empty() ? std::string("-") : printable(ctx.sni));
  }
  return s;
}

// Reads the request head. Returns 0 with `head` set, or the status to
// answer with (400, 431), or -1 when the client went away or timed out.
int readHead(Stream& stream, std::string& head) {
  std::string buf;
  char chunk[2048];
  for (;;) {
    if (auto len = headLength(buf)) {
      head = buf.substr(0, *len);
      return 0;
    }
    if (buf.size() >= kMaxHeadBytes) return 431;
    long n = stream.read(chunk, sizeof chunk);
    if (n <= 0) return buf.empty() ? -1 : 400;
    buf.append(chunk, static_cast<size_t>(n));
  }
}

void serveRequest(Stream& stream, const Config& config, RequestContext& ctx) {
  std::string head;
  int early = readHead(stream, head);
  if (early < 0) {
    logLine("no request " + describe(ctx));
    return;
  }
  Response response;
  Request request;
  if (early > 0) {
    response.status = early;
  } else if (auto parsed = parseRequestHead(head)) {
    request = *parsed;
    struct stat st {};
    ctx.secrets_present = ::stat(config.secrets_file.c_str(), &st) == 0;
    response = answer(request, config, ctx);
  } else {
    response.status = 400;
  }
  if (response.status >= 400 && response.body.empty()) {
    response.body = std::string(reasonPhrase(response.status)) + "\n";
  }
  const bool head_only = request.method == "HEAD";
  bool sent = false;
  if (response.pace.count() > 0 && response.chunk > 0 && !head_only) {
    // A paced download: the head, then one chunk per pace.
    sent = stream.writeAll(serialize(response, true));
    for (size_t at = 0; sent && at < response.body.size(); at += response.chunk) {
      std::this_thread::sleep_for(response.pace);
      sent = stream.writeAll(std::string_view(response.body).substr(at, response.chunk));
    }
  } else {
    sent = stream.writeAll(serialize(response, head_only));
  }
  logLine("request method=" + (request.method.empty() ? "-" : printable(request.method, 16)) +
          " path=" + (request.path.empty() ? "-" : printable(request.path)) + " status=" +
          std::to_string(response.status) + " " + describe(ctx) + (sent ? "" : " write=failed"));
}

void serveHttps(int fd, const Config& config, SSL_CTX* tls, RequestContext& ctx) {
  ProxyPeek peek = readProxyV2(fd, kIoTimeout);
  if (peek.kind == ProxyPeek::Kind::kError) {
    logLine("closed " + describe(ctx) + " reason=\"" + peek.error + "\"");
    return;
  }
  if (peek.kind == ProxyPeek::Kind::kHeader) {
    ctx.via_proxy = true;
    // LOCAL and UNSPEC headers carry no client: keep the real peer (§2.2).
    if (auto client = peek.header.clientAddress()) ctx.client = *client;
  }
  TlsStream stream(tls, fd);
  std::string error;
  if (!stream.handshake(error)) {
    logLine("tls handshake failed " + describe(ctx) + " reason=\"" + error + "\"");
    return;
  }
  ctx.sni = stream.serverName();
  serveRequest(stream, config, ctx);
  stream.shutdown();
}

}  // namespace

void serveConnection(int fd, Listener listener, const net::IpEndpoint& peer, const Config& config,
                     SSL_CTX* tls) {
  setTimeouts(fd);
  RequestContext ctx;
  ctx.listener = listener;
  ctx.client = peer;
  if (listener == Listener::kHttps) {
    serveHttps(fd, config, tls, ctx);
  } else {
    PlainStream stream(fd);
    serveRequest(stream, config, ctx);
  }
  ::close(fd);
}

}  // namespace plfm::hello
