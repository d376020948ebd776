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
constexpr uint32_t kHangup = EPOLLRDHUP | EPOLLHUP | EPOLLERR;

// Whether an event lets a flow go on: its source became readable, or its
// destination writable while the flow holds bytes for it. A writable edge on
// a flow that holds nothing would only cost a read that says EAGAIN.
bool advances(const Flow& f, bool src_readable, bool dst_writable) {
  return src_readable || (dst_writable && f.in_pipe > 0);
}

}  // namespace

void Worker::onClient(Conn* c, uint32_t events) {
  if ((events & kHangup) != 0) c->up.hup = true;
  switch (c->state) {
    case ConnState::kHello:
      if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) readHello(c);
      break;
    case ConnState::kProxying:
      // Readable: its flow has bytes to move; writable: the flow into it may
      // go on. Only those flows are pumped, to save splices that would just
      // say EAGAIN.
      pump(c, advances(c->up, (events & kReadable) != 0, false),
           advances(c->down, false, (events & kWritable) != 0));
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
  if ((events & kHangup) != 0 && c->state == ConnState::kProxying) c->down.hup = true;
  if (c->state == ConnState::kConnecting) {
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
    // A failed connect sets the socket's error, which epoll reports as
    // EPOLLERR (and EPOLLHUP once closed), so EPOLLOUT alone means connected:
    // no getsockopt(SO_ERROR) is needed.
    if ((events & (EPOLLERR | EPOLLHUP)) != 0) {
      backendFailed(c, false);
      return;
    }
    onConnected(c, events);
  } else if (c->state == ConnState::kProxying) {
    pump(c, advances(c->up, false, (events & kWritable) != 0),
         advances(c->down, (events & kReadable) != 0, false));
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
      // A read that filled the buffer may have left bytes behind, and a FIN
      // already reported is still to be read (no new edge will come for
      // either).
      c->client_readable = static_cast<size_t>(n) == scratch_.size() || c->up.hup;
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
  // The backend's events say whether it already sent something; the client
  // flow runs only if the client sent more than the hello (or may have), which
  // saves a splice that would just say EAGAIN on most connections.
  if ((backend_events & kHangup) != 0) c->down.hup = true;
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
    // Bytes held in the pipe go out first; while some are left the
    // destination is full, and its EPOLLOUT resumes the flow.
    if (f.in_pipe > 0) {
      const ssize_t n = ::splice(f.pipe.r, nullptr, dst, nullptr, f.in_pipe, kSpliceFlags);
      if (n > 0) {
        f.in_pipe -= static_cast<size_t>(n);
        moved += static_cast<size_t>(n);
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        return false;
      }
      if (f.in_pipe > 0) break;
    }
    if (f.eof) {
      if (!f.shut) {
        // Half-close: pass the FIN on and keep the other way open. When the
        // other way has ended too the connection closes now, and close(2)
        // sends the FIN (both sockets were read to their end, so it is not
        // a reset).
        const Flow& other = upstream ? c->down : c->up;
        if (!other.shut) ::shutdown(dst, SHUT_WR);
        f.shut = true;
      }
      break;
    }
    if (f.spliced) {
      // The pipe is empty here, so EAGAIN means the source has nothing.
      const ssize_t n = ::splice(src, nullptr, f.pipe.w, nullptr, kSpliceChunk, kSpliceFlags);
      if (n > 0) {
        f.in_pipe += static_cast<size_t>(n);
      } else if (n == 0) {
        f.eof = true;
      } else if (errno == EAGAIN) {
        break;
      } else if (errno != EINTR) {
        return false;
      }
      continue;
    }
    if (!copyChunk(f, src, dst, moved)) return false;
    // Parked bytes: the destination is full. A short read drained the source
    // (its next bytes bring a new edge) unless it has hung up, and then the
    // next read finds the FIN.
    if (f.in_pipe > 0 || (!f.eof && !f.readable)) break;
  }
  if (moved > 0) {
    c->last_active_ms = now_ms_;
    auto& counter = upstream ? c->route->stats->bytes_in : c->route->stats->bytes_out;
    counter.fetch_add(moved, std::memory_order_relaxed);
  }
  return true;
}

bool Worker::copyChunk(Flow& f, int src, int dst, size_t& moved) {
  // Small flows (a TLS handshake, a short response) are copied through the
  // worker's buffer: for a few KiB, recv + send is cheaper than splicing
  // through a pipe, and the connection needs no pipe at all. What the
  // destination does not take is parked in the flow's pipe; a flow that
  // fills the buffer is bulk and splices from then on.
  f.readable = false;
  const ssize_t n = ::recv(src, scratch_.data(), kCopyChunk, 0);
  if (n == 0) {
    f.eof = true;
    return true;
  }
  if (n < 0) {
    if (errno == EINTR) f.readable = true;
    return errno == EAGAIN || errno == EINTR;
  }
  const auto got = static_cast<size_t>(n);
  ssize_t sent = ::send(dst, scratch_.data(), got, MSG_NOSIGNAL);
  if (sent < 0) {
    if (errno != EAGAIN && errno != EINTR) return false;
    sent = 0;
  }
  moved += static_cast<size_t>(sent);
  const bool bulk = got == kCopyChunk;
  if (static_cast<size_t>(sent) < got || bulk) {
    if (f.pipe.r < 0) {
      f.pipe = takePipe();
      if (f.pipe.r < 0) {
        stats_.closed(CloseReason::kResources);
        return false;
      }
    }
    // The pipe is empty (a flow reads only once it is drained) and holds at
    // least one chunk (takePipe), so the write takes the whole rest.
    const size_t rest = got - static_cast<size_t>(sent);
    if (rest > 0) {
      const ssize_t w = ::write(f.pipe.w, scratch_.data() + sent, rest);
      if (w != static_cast<ssize_t>(rest)) return false;
      f.in_pipe = rest;
    }
  }
  f.spliced = bulk;
  // A full read may have left bytes behind; a short one drained the socket
  // (edge-triggered: the next bytes bring a new edge), but a FIN already
  // reported brings no new edge, so it is read now.
  f.readable = bulk || f.hup;
  return true;
}

}  // namespace plfm::ingress
