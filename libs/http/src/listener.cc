// Listening sockets for http::Server (Beast-free).
#include "listener.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

namespace plfm::http::internal {
namespace {

Deadline after(std::chrono::steady_clock::duration d) { return SteadyClock::now() + d; }

struct ListenSpec {
  bool is_unix = false;
  std::string unix_path;
  SockAddr address;
};

Error listenError(const std::string& spec, std::string_view what) {
  return Error(errc::kInvalidArgument, "listen address " + spec + ": " + std::string(what))
      .with("address", spec);
}

Error bindError(const std::string& spec, std::string_view step, const std::error_code& ec) {
  return Error(errc::kIo, "listen on " + spec + ": " + std::string(step) + ": " + ec.message())
      .with("address", spec);
}

Result<ListenSpec> parseListen(const std::string& spec) {
  ListenSpec out;
  const std::string_view s = spec;
  if (s.starts_with("unix:")) {
    out.is_unix = true;
    out.unix_path = spec.substr(5);
    if (out.unix_path.empty() || out.unix_path.front() != '/') {
      return listenError(spec, "unix socket path must be absolute");
    }
    if (out.unix_path.size() >= sizeof(sockaddr_un::sun_path)) {
      return listenError(spec, "unix socket path is longer than 107 bytes");
    }
    return out;
  }
  std::string_view host;
  size_t colon = 0;
  const bool v6 = !s.empty() && s.front() == '[';
  if (v6) {
    const size_t close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      return listenError(spec, "expected [v6-address]:port");
    }
    host = s.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = s.rfind(':');
    if (colon == std::string_view::npos) return listenError(spec, "expected address:port");
    host = s.substr(0, colon);
  }
  const std::string_view port_text = s.substr(colon + 1);
  uint16_t port = 0;
  const auto [end, perr] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (perr != std::errc() || end != port_text.data() + port_text.size() || port_text.empty()) {
    return listenError(spec, "invalid port");
  }
  auto address = numericAddress(std::string(host), port);
  if (!address || address->family() != (v6 ? AF_INET6 : AF_INET)) {
    return listenError(
        spec, v6 ? "invalid IPv6 address" : "invalid IPv4 address (host names are not accepted)");
  }
  out.address = *address;
  return out;
}

// Removes the socket file of a server that is gone. A live server (one that
// accepts a connection) keeps its file, and so does anything that is not a
// socket.
Result<void> removeStaleSocket(const std::string& spec, const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return ok();
    return errnoError("stat " + path, errno).with("address", spec);
  }
  if (!S_ISSOCK(st.st_mode)) return listenError(spec, "path exists and is not a socket");
  const SockAddr addr = unixAddress(path);
  Socket probe;
  if (!connectSocket(probe, addr.get(), addr.len, after(std::chrono::milliseconds(100)))) {
    return Error(errc::kUnavailable, "listen on " + spec + ": a running server owns the socket")
        .with("address", spec);
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return errnoError("remove stale socket " + path, errno).with("address", spec);
  }
  return ok();
}

}  // namespace

Result<Listener> bindListener(const std::string& spec) {
  PLFM_ASSIGN_OR_RETURN(ListenSpec ls, parseListen(spec));
  Listener l;
  std::string_view step;
  if (ls.is_unix) {
    PLFM_TRY(removeStaleSocket(spec, ls.unix_path));
    if (auto ec = listenOn(l.socket, unixAddress(ls.unix_path), step)) {
      if (step == "listen") ::unlink(ls.unix_path.c_str());
      return bindError(spec, step, ec);
    }
    struct stat st {};
    if (::lstat(ls.unix_path.c_str(), &st) != 0) return errnoError("stat " + ls.unix_path, errno);
    l.endpoint = "unix:" + ls.unix_path;
    l.unix_path = ls.unix_path;
    l.unix_inode = st.st_ino;
    return l;
  }
  if (auto ec = listenOn(l.socket, ls.address, step)) return bindError(spec, step, ec);
  SockAddr local;
  if (auto ec = localAddress(l.socket, local)) {
    return bindError(spec, "getsockname", ec);
  }
  l.endpoint = formatPeer(local.storage);
  return l;
}

void removeSocketFile(const Listener& l) {
  if (l.unix_path.empty()) return;
  struct stat st {};
  // Only our own file: another server may have replaced it since.
  if (::lstat(l.unix_path.c_str(), &st) == 0 && st.st_ino == l.unix_inode) {
    ::unlink(l.unix_path.c_str());
  }
}

}  // namespace plfm::http::internal

namespace plfm::http {

bool isLoopbackListen(std::string_view spec) {
  if (spec.starts_with("unix:")) return true;
  std::string_view host;
  if (spec.starts_with("[")) {
    const size_t close = spec.find(']');
    if (close == std::string_view::npos) return false;
    host = spec.substr(1, close - 1);
  } else {
    host = spec.substr(0, spec.rfind(':'));
  }
  return host != "localhost" && internal::isLoopbackHost(std::string(host));
}

}  // namespace plfm::http
