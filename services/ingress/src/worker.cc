#include "worker.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <utility>

#include "plfm/core/assert.h"
#include "plfm/core/log.h"
#include "sockets.h"

namespace plfm::ingress {

namespace {

constexpr int64_t kSweepMs = 250;
constexpr int kAcceptBatch = 64;
constexpr size_t kPipePoolMax = 256;
constexpr int kMaxEvents = 256;
// Bytes read before routing: the largest ClientHello plus the headers of
// the records that may carry it. The parser refuses anything larger first.
constexpr size_t kScratchBytes = size_t{32} * 1024;

}  // namespace

int64_t steadyMs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
}

SharedTable::SharedTable() : table_(std::make_shared<RoutingTable>()) {}

void SharedTable::store(std::shared_ptr<const RoutingTable> table) {
  std::lock_guard lock(mu_);
  table_ = std::move(table);
  version_.fetch_add(1, std::memory_order_release);
}

std::shared_ptr<const RoutingTable> SharedTable::load() const {
  std::lock_guard lock(mu_);
  return table_;
}

Worker::Worker(ProxyOptions options, SharedTable& table, IngressStats& stats)
    : options_(std::move(options)), shared_(table), stats_(stats), scratch_(kScratchBytes) {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wakefd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  PLFM_ASSERT(epfd_ >= 0 && wakefd_ >= 0, "epoll_create1/eventfd failed");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kTagWake;
  PLFM_ASSERT(::epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev) == 0, "epoll_ctl(eventfd)");
}

Worker::~Worker() {
  while (conns_ != nullptr) destroy(conns_);
  for (Conn* c : graveyard_) delete c;
  for (const Pipe& p : pipe_pool_) {
    ::close(p.r);
    ::close(p.w);
  }
  closeListeners();
  ::close(wakefd_);
  ::close(epfd_);
}

Result<void> Worker::addListener(int fd, uint16_t port) {
  const size_t index = listeners_.size();
  listeners_.push_back(Listener{fd, port});
  if (!watchListener(index)) return errnoError("epoll_ctl(listener)", errno);
  return ok();
}

bool Worker::watchListener(size_t index) {
  // EPOLLEXCLUSIVE: the workers share one listening socket, and a new
  // connection wakes one of the waiting workers instead of all of them.
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLEXCLUSIVE;
  ev.data.u64 = (uint64_t{index} << kTagBits) | kTagListener;
  return ::epoll_ctl(epfd_, EPOLL_CTL_ADD, listeners_[index].fd, &ev) == 0;
}

void Worker::drain(int64_t deadline_ms) {
  drain_deadline_.store(std::max<int64_t>(deadline_ms, 1));
  const uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wakefd_, &one, sizeof one);
}

void Worker::closeListeners() {
  // The Proxy owns the sockets (shared by every worker); this worker only
  // stops watching them.
  for (Listener& l : listeners_) {
    if (l.fd >= 0 && !accept_paused_) ::epoll_ctl(epfd_, EPOLL_CTL_DEL, l.fd, nullptr);
    l.fd = -1;
  }
}

void Worker::run() {
  std::array<epoll_event, kMaxEvents> events{};
  now_ms_ = steadyMs();
  next_sweep_ms_ = now_ms_ + kSweepMs;
  for (;;) {
    const int timeout =
        static_cast<int>(std::clamp<int64_t>(next_sweep_ms_ - now_ms_, 0, kSweepMs));
    const int n = ::epoll_wait(epfd_, events.data(), kMaxEvents, timeout);
    now_ms_ = steadyMs();
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[i].data.u64;
      const uint32_t ev = events[i].events;
      switch (tag & kTagMask) {
        case kTagWake: {
          uint64_t v = 0;
          [[maybe_unused]] auto r = ::read(wakefd_, &v, sizeof v);
          if (drain_deadline_.load() != 0 && !draining_) {
            draining_ = true;
            closeListeners();
          }
          break;
        }
        case kTagListener: {
          const size_t index = tag >> kTagBits;
          if (index < listeners_.size() && listeners_[index].fd >= 0) onListener(listeners_[index]);
          break;
        }
        case kTagClient: {
          auto* c = reinterpret_cast<Conn*>(tag & kPtrMask);  // NOLINT(performance-no-int-to-ptr)
          if (c->state != ConnState::kClosed) onClient(c, ev);
          break;
        }
        default: {
          auto* c = reinterpret_cast<Conn*>(tag & kPtrMask);  // NOLINT(performance-no-int-to-ptr)
          if (c->state != ConnState::kClosed && (tag >> kGenShift) == (c->attempt_gen & kGenMask)) {
            onBackend(c, ev);
          }
          break;
        }
      }
    }
    for (Conn* c : graveyard_) delete c;
    graveyard_.clear();
    if (now_ms_ >= next_sweep_ms_) {
      sweep();
      next_sweep_ms_ = now_ms_ + kSweepMs;
    }
    if (draining_ && (conn_count_ == 0 || now_ms_ >= drain_deadline_.load())) break;
  }
  while (conns_ != nullptr) destroy(conns_);
  for (Conn* c : graveyard_) delete c;
  graveyard_.clear();
}

void Worker::onListener(Listener& l) {
  for (int i = 0; i < kAcceptBatch; ++i) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    const int fd =
        ::accept4(l.fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EINVAL) {
        // The Proxy shut the listener down (draining): stop watching it.
        ::epoll_ctl(epfd_, EPOLL_CTL_DEL, l.fd, nullptr);
        l.fd = -1;
        return;
      }
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: stop accepting until the next sweep instead of
        // spinning on a listener that stays readable.
        stats_.closed(CloseReason::kResources);
        for (Listener& other : listeners_) {
          if (other.fd >= 0) ::epoll_ctl(epfd_, EPOLL_CTL_DEL, other.fd, nullptr);
        }
        accept_paused_ = true;
      }
      return;
    }
    stats_.accepted.fetch_add(1, std::memory_order_relaxed);
    if (stats_.active.load(std::memory_order_relaxed) >=
        static_cast<int64_t>(options_.max_connections)) {
      ::close(fd);
      stats_.closed(CloseReason::kConnectionCap);
      continue;
    }
    stats_.active.fetch_add(1, std::memory_order_relaxed);
    auto* c = new Conn();
    c->cfd = fd;
    c->port = l.port;
    if (auto e = endpointFromSockaddr(ss)) c->client = *e;
    link(c);  // TCP_NODELAY is inherited from the listener
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = reinterpret_cast<uint64_t>(c) | kTagClient;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      stats_.closed(CloseReason::kResources);
      destroy(c);
      continue;
    }
    refreshTable();
    if (table_ && table_->tcpRoute(c->port) != nullptr) {
      routeConn(c, std::nullopt);  // a tcp port: no ClientHello to wait for
      continue;
    }
    c->parser = std::make_unique<net::ClientHelloParser>();
    c->deadline_ms = now_ms_ + options_.client_hello_timeout.count();
    readHello(c);  // with TCP_DEFER_ACCEPT the hello is usually there already
  }
}

void Worker::refreshTable() {
  const uint64_t v = shared_.version();
  if (v != table_version_) {
    table_ = shared_.load();
    table_version_ = v;
  }
}

void Worker::sweep() {
  if (accept_paused_ && !draining_) {
    accept_paused_ = false;
    for (size_t i = 0; i < listeners_.size(); ++i) {
      if (listeners_[i].fd >= 0) (void)watchListener(i);
    }
  }
  const int64_t idle = options_.idle_timeout.count();
  Conn* c = conns_;
  while (c != nullptr) {
    Conn* next = c->next;
    switch (c->state) {
      case ConnState::kHello:
        if (now_ms_ >= c->deadline_ms) {
          stats_.closed(CloseReason::kHelloTimeout);
          destroy(c);
        }
        break;
      case ConnState::kConnecting:
        if (now_ms_ >= c->deadline_ms && c->bfd >= 0) backendFailed(c, true);
        break;
      case ConnState::kProxying:
        if (now_ms_ - c->last_active_ms >= idle) {
          stats_.closed(CloseReason::kIdleTimeout);
          destroy(c);
        }
        break;
      case ConnState::kClosed:
        break;
    }
    c = next;
  }
}

void Worker::link(Conn* c) {
  c->next = conns_;
  if (conns_ != nullptr) conns_->prev = c;
  conns_ = c;
  ++conn_count_;
}

void Worker::destroy(Conn* c) {
  if (c->state == ConnState::kClosed) return;
  if (c->prev != nullptr) c->prev->next = c->next;
  if (c->next != nullptr) c->next->prev = c->prev;
  if (conns_ == c) conns_ = c->next;
  c->prev = c->next = nullptr;
  --conn_count_;
  if (c->cfd >= 0) ::close(c->cfd);
  if (c->bfd >= 0) ::close(c->bfd);
  c->cfd = c->bfd = -1;
  returnPipe(c->up);
  returnPipe(c->down);
  if (c->route != nullptr) {
    c->route->stats->active.fetch_sub(1, std::memory_order_relaxed);
    if (c->backend >= 0) {
      c->route->backends[static_cast<size_t>(c->backend)].load->active.fetch_sub(
          1, std::memory_order_relaxed);
    }
  }
  stats_.active.fetch_sub(1, std::memory_order_relaxed);
  c->state = ConnState::kClosed;
  c->parser.reset();
  c->table.reset();
  graveyard_.push_back(c);
}

Pipe Worker::takePipe() {
  if (!pipe_pool_.empty()) {
    Pipe p = pipe_pool_.back();
    pipe_pool_.pop_back();
    return p;
  }
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return Pipe{};
  // The copy path hands a pipe up to one chunk at once (copyChunk), so every
  // pipe must hold one. A new pipe holds 64 KiB, but only 8 KiB once the
  // user's pipe budget (fs.pipe-user-pages-soft) is spent; grow such a pipe,
  // and when that is refused too, report it as out of resources (the
  // connection closes as `resources`) rather than cut a flow short.
  const int size = ::fcntl(fds[0], F_GETPIPE_SZ);
  if (size < static_cast<int>(kCopyChunk) &&
      ::fcntl(fds[0], F_SETPIPE_SZ, static_cast<int>(kCopyChunk)) < static_cast<int>(kCopyChunk)) {
    ::close(fds[0]);
    ::close(fds[1]);
    return Pipe{};
  }
  return Pipe{fds[0], fds[1]};
}

void Worker::returnPipe(Flow& f) {
  if (f.pipe.r < 0) return;
  // A pipe that still holds bytes cannot be reused: they belong to a dead
  // connection.
  if (f.in_pipe == 0 && pipe_pool_.size() < kPipePoolMax) {
    pipe_pool_.push_back(f.pipe);
  } else {
    ::close(f.pipe.r);
    ::close(f.pipe.w);
  }
  f.pipe = Pipe{};
  f.in_pipe = 0;
}

Proxy::Proxy(ProxyOptions options, SharedTable& table, IngressStats& stats)
    : options_(std::move(options)), table_(table), stats_(stats) {}

Proxy::~Proxy() {
  stop(std::chrono::milliseconds(0));
  closeListeners();
}

void Proxy::closeListeners() {
  for (const int fd : listen_fds_) ::close(fd);
  listen_fds_.clear();
}

Result<void> Proxy::start() {
  // One listening socket per address, shared by every worker (each worker's
  // epoll watches it with EPOLLEXCLUSIVE), rather than one SO_REUSEPORT
  // socket per worker: a connection goes to whichever worker is free instead
  // of the one the kernel's hash picked (docs/specs/ingress/proxy.md).
  ListenOptions lo;
  lo.backlog = options_.backlog;
  lo.nodelay = true;
  // SO_REUSEPORT on the one shared socket: a new ingress process (an
  // upgrade) can bind the port while this one still serves, and takes every
  // new connection once this one shuts its listener down on SIGTERM, so a
  // restart refuses nothing.
  lo.reuse_port = true;
  if (options_.defer_accept) {
    // Wake up only once the client has sent something, within the hello timeout.
    lo.defer_accept_secs =
        static_cast<int>(std::max<int64_t>(1, options_.client_hello_timeout.count() / 1000));
  }
  std::vector<net::IpEndpoint> bound;
  for (const net::IpEndpoint& at : options_.listen) {
    auto fd = listenTcp(at, lo);
    if (!fd) {
      closeListeners();
      return fd.error();
    }
    listen_fds_.push_back(*fd);
    auto got = localEndpoint(*fd);
    if (!got) {
      const int err = errno;
      closeListeners();
      return errnoError("getsockname " + at.toString(), err);
    }
    bound.push_back(*got);
  }
  const int n = std::max(1, options_.workers);
  std::vector<std::unique_ptr<Worker>> workers;
  for (int w = 0; w < n; ++w) {
    auto worker = std::make_unique<Worker>(options_, table_, stats_);
    for (size_t i = 0; i < listen_fds_.size(); ++i) {
      if (auto r = worker->addListener(listen_fds_[i], bound[i].port); !r) {
        closeListeners();
        return r;
      }
    }
    workers.push_back(std::move(worker));
  }
  workers_ = std::move(workers);
  bound_ = std::move(bound);
  for (auto& w : workers_) threads_.emplace_back([worker = w.get()] { worker->run(); });
  return ok();
}

void Proxy::stopAccepting() {
  // A listener that is shut down refuses new connections and resets the
  // ones still in its queue, and its descriptor stays valid (closed in
  // stop()) while the workers stop watching it (accept4 says EINVAL).
  for (const int fd : listen_fds_) ::shutdown(fd, SHUT_RDWR);
}

void Proxy::stop(std::chrono::milliseconds grace) {
  if (threads_.empty()) return;
  stopAccepting();
  const int64_t deadline = steadyMs() + grace.count();
  for (auto& w : workers_) w->drain(deadline);
  for (auto& t : threads_) t.join();
  threads_.clear();
  workers_.clear();
  closeListeners();
}

}  // namespace plfm::ingress
