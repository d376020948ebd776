// One data-plane thread: an edge-triggered epoll loop over its listeners and
// connections. Internal to the proxy (see proxy.h for the model).
//
// A connection goes kHello -> kConnecting -> kProxying and then closes.
// Every state has a deadline checked by a sweep four times a second: the
// ClientHello deadline is absolute from accept (a slowloris client cannot
// extend it), the connect deadline is per backend attempt, and the idle
// deadline moves with every byte. Small flows are copied through the
// worker's buffer; a bulk flow moves with splice(2) through a pipe (pipes are
// pooled), so its payload never enters user space.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "plfm/core/result.h"
#include "plfm/net/client_hello.h"
#include "proxy.h"

namespace plfm::ingress {

struct Pipe {
  int r = -1;
  int w = -1;
};

// One direction of a proxied connection. A flow copies through the worker's
// buffer until one read fills it, then splices (see pumpFlow); the pipe is
// taken only when the flow needs one.
struct Flow {
  Pipe pipe;
  size_t in_pipe = 0;     // bytes in the pipe, not yet written out
  bool spliced = false;   // bulk: bytes move with splice(2) through the pipe
  bool readable = false;  // a full read may have left bytes in the source
  bool hup = false;       // epoll reported the source's FIN (or an error)
  bool eof = false;       // the source sent FIN
  bool shut = false;      // we passed the FIN on (shutdown SHUT_WR)
};

// Bytes copied per read before a flow switches to splice(2).
inline constexpr size_t kCopyChunk = size_t{16} * 1024;

// epoll_event.data.u64: the low two bits say what the event is for; a
// connection pointer (8-byte aligned, below 2^48 on x86-64 and arm64) fills
// the middle, and backend events carry the connect attempt in the top bits.
inline constexpr uint64_t kTagBits = 2;
inline constexpr uint64_t kTagMask = 3;
inline constexpr uint64_t kTagWake = 0;
inline constexpr uint64_t kTagListener = 1;  // index << kTagBits
inline constexpr uint64_t kTagClient = 2;
inline constexpr uint64_t kTagBackend = 3;
inline constexpr uint64_t kGenShift = 48;
inline constexpr uint64_t kGenMask = 0xFFFF;
inline constexpr uint64_t kPtrMask = ((uint64_t{1} << kGenShift) - 1) & ~uint64_t{7};

enum class ConnState : uint8_t { kHello, kConnecting, kProxying, kClosed };

struct Conn {
  ConnState state = ConnState::kHello;
  int cfd = -1;              // client
  int bfd = -1;              // backend
  uint16_t port = 0;         // listener port, the routing key with the SNI
  uint16_t attempt_gen = 0;  // tags backend epoll events; stale ones are dropped
  net::IpEndpoint client;
  std::unique_ptr<net::ClientHelloParser> parser;  // kHello only
  std::string pending;  // PROXY header + bytes read before routing, for the backend
  size_t pending_off = 0;
  std::shared_ptr<const RoutingTable> table;  // the snapshot this connection was routed with
  const Route* route = nullptr;
  int backend = -1;
  uint64_t tried = 0;  // bit i: backend i was tried
  int attempts = 0;
  bool client_readable = false;  // client bytes may be waiting while not proxying
  Flow up;                       // client -> backend
  Flow down;                     // backend -> client
  int64_t deadline_ms = 0;       // kHello, kConnecting
  int64_t last_active_ms = 0;    // kProxying
  Conn* prev = nullptr;          // all connections of the worker, for the sweep
  Conn* next = nullptr;
};

class Worker {
 public:
  Worker(ProxyOptions options, SharedTable& table, IngressStats& stats);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Watches a listening socket that the Proxy owns and every worker shares.
  [[nodiscard]] Result<void> addListener(int fd, uint16_t port);
  void run();
  // Thread-safe. Closes the listeners; the loop exits once no connection is
  // left, or at `deadline` (steady ms), closing what is left.
  void drain(int64_t deadline_ms);

 private:
  struct Listener {
    int fd = -1;
    uint16_t port = 0;
  };

  // worker.cc: the loop, accepting, timers.
  void onListener(Listener& l);
  bool watchListener(size_t index);
  void sweep();
  void closeListeners();
  void refreshTable();
  void link(Conn* c);
  void destroy(Conn* c);  // closes fds; frees after the current event batch
  Pipe takePipe();
  void returnPipe(Flow& f);

  // worker_conn.cc: the connection state machine.
  void onClient(Conn* c, uint32_t events);
  void onBackend(Conn* c, uint32_t events);
  void readHello(Conn* c);
  void routeConn(Conn* c, std::optional<std::string_view> sni);
  void connectNext(Conn* c);
  void backendFailed(Conn* c, bool timeout);
  void onConnected(Conn* c, uint32_t backend_events);
  // Sends what is pending for the backend, then moves the flows asked for.
  void pump(Conn* c, bool up, bool down);
  bool pumpFlow(Conn* c, Flow& f, int src, int dst, bool upstream);
  bool copyChunk(Flow& f, int src, int dst, size_t& moved);

  ProxyOptions options_;
  SharedTable& shared_;
  IngressStats& stats_;
  int epfd_ = -1;
  int wakefd_ = -1;
  std::vector<Listener> listeners_;
  std::atomic<int64_t> drain_deadline_{0};  // 0: running
  bool draining_ = false;
  bool accept_paused_ = false;

  std::shared_ptr<const RoutingTable> table_;
  uint64_t table_version_ = ~uint64_t{0};

  int64_t now_ms_ = 0;
  int64_t next_sweep_ms_ = 0;
  Conn* conns_ = nullptr;  // intrusive list head
  size_t conn_count_ = 0;
  std::vector<Conn*> graveyard_;
  std::vector<Pipe> pipe_pool_;
  std::vector<uint8_t> scratch_;
};

// Steady clock in milliseconds (CLOCK_MONOTONIC_COARSE: a few ms resolution
// is plenty for timeouts, and it is cheaper than the full clock).
[[nodiscard]] int64_t steadyMs();

}  // namespace plfm::ingress
