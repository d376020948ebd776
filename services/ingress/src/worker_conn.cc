// The connection state machine of Worker: ClientHello, routing, backend
// connect with retries, then splice in both directions with half-close.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "sockets.h"
#include "worker.h"

namespace plfm::ingress {

namespace {

// Bytes asked of one splice into a pipe: its default capacity.
constexpr size_t kSpliceChunk = size_t{64} * 1024;
constexpr unsigned kSpliceFlags = SPLICE_F_NONBLOCK | SPLICE_F_MOVE;
constexpr uint32_t kReadable = EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR;
constexpr uint32_t kWritable = EPOLLOUT | EPOLLHUP | EPOLLERR;

}  // namespace

void Worker::onClient(Conn* c, uint32_t events) {
  switch (c->state) {
    case ConnState::kHello:
      if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) readHello(c);
      break;
    case ConnState::kProxying:
      // Readable: its flow has bytes to move; writable: the flow into it may
      // go on. Only those flows are pumped, to save splices that would just
      // say EAGAIN.
      pump(c, (events & kReadable) != 0, (events & kWritable) != 0);
      break;
    case ConnState::kConnecting:
      // Client bytes wait in the socket until the backend is connected; the
      // edge is remembered so that the first pump reads them.
      if ((events & EPOLLERR) != 0) {
        destroy(c);
      } else if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) != 0) {
        c->client_readable = true;
      }
      break;
    case ConnState::kClosed:
      break;
  }
}

void Worker::onBackend(Conn* c, uint32_t events) {
  if (c->state == ConnState::kConnecting) {
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(c->bfd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0 || (events & (EPOLLERR | EPOLLHUP)) != 0) {
      backendFailed(c, false);
      return;
    }
    onConnected(c, events);
  } else if (c->state == ConnState::kProxying) {
    pump(c, (events & kWritable) != 0, (events & kReadable) != 0);
  }
}

void Worker::readHello(Conn* c) {
  for (;;) {
    const ssize_t n = ::recv(c->cfd, scratch_.data(), scratch_.size(), 0);
    if (n > 0) {
      const std::span<const uint8_t> got(scratch_.data(), static_cast<size_t>(n));
      c->pending.append(reinterpret_cast<const char*>(got.data()), got.size());
      const net::FeedResult r = c->parser->feed(got);
      if (r.status == net::ParseStatus::kNeedMore) continue;
      if (r.status == net::ParseStatus::kError) {
        stats_.helloError(static_cast<size_t>(c->parser->error()));
        destroy(c);
        return;
      }
      // A read that filled the buffer may have left bytes behind (no new
      // edge will come for them).
      c->client_readable = static_cast<size_t>(n) == scratch_.size();
      std::optional<std::string> sni = c->parser->hello().sni;
      c->parser.reset();
      routeConn(c, sni);
      return;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    destroy(c);  // the client closed or reset before finishing its hello
    return;
  }
}

void Worker::routeConn(Conn* c, std::optional<std::string_view> sni) {
  refreshTable();
  const Route* r = table_ ? table_->lookup(c->port, sni) : nullptr;
  if (r == nullptr) {
    // A clean close (FIN): the client learns nothing about our routes.
    stats_.noRoute(c->port);
    destroy(c);
    return;
  }
  c->table = table_;
  c->route = r;
  r->stats->connections.fetch_add(1, std::memory_order_relaxed);
  r->stats->active.fetch_add(1, std::memory_order_relaxed);
  if (!c->pending.empty()) {
    r->stats->bytes_in.fetch_add(c->pending.size(), std::memory_order_relaxed);
  }
  if (r->proxy_protocol == ProxyProtocol::kV2) {
    auto local = localEndpoint(c->cfd);
    Result<std::string> header =
        local ? proxyV2Header(c->client, *local)
              : Result<std::string>(Error(errc::kInternal, "getsockname failed"));
    if (!header) {
      r->stats->failures.fetch_add(1, std::memory_order_relaxed);
      destroy(c);
      return;
    }
    c->pending.insert(0, *header);
  }
  c->state = ConnState::kConnecting;
  connectNext(c);
}

void Worker::connectNext(Conn* c) {
  const Route& route = *c->route;
  while (c->attempts < options_.connect_attempts) {
    const int i = RoutingTable::pickBackend(route, c->tried, now_ms_);
    if (i < 0) break;
    const Backend& b = route.backends[static_cast<size_t>(i)];
    c->tried |= uint64_t{1} << static_cast<unsigned>(i);
    ++c->attempts;
    const int fd = ::socket(b.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      stats_.closed(CloseReason::kResources);
      break;
    }
    c->backend = i;
    b.load->active.fetch_add(1, std::memory_order_relaxed);
    c->bfd = fd;
    ++c->attempt_gen;
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 =
        reinterpret_cast<uint64_t>(c) | kTagBackend | ((c->attempt_gen & kGenMask) << kGenShift);
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      stats_.closed(CloseReason::kResources);
      break;
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&b.addr), b.addr_len) == 0) {
      onConnected(c, EPOLLOUT);
      return;
    }
    if (errno == EINPROGRESS) {
      c->deadline_ms = now_ms_ + options_.connect_timeout.count();
      return;
    }
    // Refused at once (common on loopback): mark it and try the next one.
    b.load->failed_until_ms.store(now_ms_ + options_.backend_holdoff.count(),
                                  std::memory_order_relaxed);
    b.load->active.fetch_sub(1, std::memory_order_relaxed);
    route.stats->retries.fetch_add(1, std::memory_order_relaxed);
    ::close(fd);
    c->bfd = -1;
    c->backend = -1;
  }
  route.stats->failures.fetch_add(1, std::memory_order_relaxed);
  destroy(c);
}

void Worker::backendFailed(Conn* c, bool timeout) {
  if (timeout) stats_.closed(CloseReason::kConnectTimeout);
  const Route& route = *c->route;
  if (c->backend >= 0) {
    const Backend& b = route.backends[static_cast<size_t>(c->backend)];
    b.load->failed_until_ms.store(now_ms_ + options_.backend_holdoff.count(),
                                  std::memory_order_relaxed);
    b.load->active.fetch_sub(1, std::memory_order_relaxed);
    c->backend = -1;
  }
  route.stats->retries.fetch_add(1, std::memory_order_relaxed);
  if (c->bfd >= 0) ::close(c->bfd);
  c->bfd = -1;
  connectNext(c);
}

void Worker::onConnected(Conn* c, uint32_t backend_events) {
  c->state = ConnState::kProxying;
  c->last_active_ms = now_ms_;
  c->up.pipe = takePipe();
  c->down.pipe = takePipe();
  if (c->up.pipe.r < 0 || c->down.pipe.r < 0) {
    stats_.closed(CloseReason::kResources);
    destroy(c);
    return;
  }
  // The backend's events say whether it already sent something; the client
  // flow runs only if the client sent more than the hello (or may have), which
  // saves a splice that would just say EAGAIN on most connections.
  const bool up = std::exchange(c->client_readable, false);
  pump(c, up, (backend_events & kReadable) != 0);
}

void Worker::pump(Conn* c, bool up, bool down) {
  if (c->pending_off < c->pending.size()) {
    const ssize_t n = ::send(c->bfd, c->pending.data() + c->pending_off,
                             c->pending.size() - c->pending_off, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      destroy(c);
      return;
    }
    if (n > 0) c->pending_off += static_cast<size_t>(n);
    if (c->pending_off < c->pending.size()) {
      // The rest goes on the backend's next EPOLLOUT; the client's bytes wait
      // behind it, so remember that the client flow is owed a pump.
      c->client_readable = c->client_readable || up;
      up = false;
    } else {
      std::string().swap(c->pending);
      c->pending_off = 0;
      up = up || std::exchange(c->client_readable, false);
    }
  }
  if ((up && !pumpFlow(c, c->up, c->cfd, c->bfd, true)) ||
      (down && !pumpFlow(c, c->down, c->bfd, c->cfd, false))) {
    destroy(c);  // a reset or write error on either side ends both
    return;
  }
  if (c->up.shut && c->down.shut) destroy(c);
}

bool Worker::pumpFlow(Conn* c, Flow& f, int src, int dst, bool upstream) {
  size_t moved = 0;
  for (;;) {
    bool progress = false;
    if (!f.eof) {
      const ssize_t n = ::splice(src, nullptr, f.pipe.w, nullptr, kSpliceChunk, kSpliceFlags);
      if (n > 0) {
        f.in_pipe += static_cast<size_t>(n);
        progress = true;
      } else if (n == 0) {
        f.eof = true;
        progress = true;
      } else if (errno != EAGAIN && errno != EINTR) {
        return false;
      }
      // EAGAIN: no data, or the pipe is full; draining it below tells which.
    }
    if (f.in_pipe > 0) {
      const ssize_t n = ::splice(f.pipe.r, nullptr, dst, nullptr, f.in_pipe, kSpliceFlags);
      if (n > 0) {
        f.in_pipe -= static_cast<size_t>(n);
        moved += static_cast<size_t>(n);
        progress = true;
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        return false;
      }
    }
    if (f.eof && f.in_pipe == 0 && !f.shut) {
      ::shutdown(dst, SHUT_WR);  // half-close: pass the FIN on, keep the other way open
      f.shut = true;
    }
    if (!progress) break;
  }
  if (moved > 0) {
    c->last_active_ms = now_ms_;
    auto& counter = upstream ? c->route->stats->bytes_in : c->route->stats->bytes_out;
    counter.fetch_add(moved, std::memory_order_relaxed);
  }
  return true;
}

}  // namespace plfm::ingress
