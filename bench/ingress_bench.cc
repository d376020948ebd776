// ingress_bench: plfm-ingress against haproxy (mode tcp + req.ssl_sni) and
// nginx (stream + ssl_preread), same backends, same run, at 1 and 2 workers.
//
//   build/bench/ingress_bench [--rounds 5] [--seconds 1] [--conns 32] [--workers 1,2]
//                             [--mode all|raw|wrk] [--wrk-seconds 2] [--wrk-conns 16]
//                             [--baseline OTHER-PLFM-INGRESS-BINARY]
//
// For each worker count every peer is started with that many workers
// (threads or processes) and measured in interleaved rounds; the tables give
// the medians.
//
// The backend is an epoll server in this process. Every connection starts
// with a real ClientHello (made by OpenSSL, SNI bench.test) followed by one
// command byte, which the backend reads before acting:
//   'D' download: the backend streams bytes until the client closes (MB/s)
//   'E' echo: 64-byte ping-pong on one connection (added latency p50/p99)
//   'R' respond: the backend writes 1 KiB and closes; the client opens the
//       next connection at once, 32 in flight (new connections/s)
// A real TLS row uses `openssl s_time -new` (full handshakes, no SNI, so
// every proxy's default route) against an nginx HTTPS server. "direct" is the
// backend without a proxy, the floor for latency.
//
// The wrk mode is what users see: wrk (TLS, SNI "localhost", so every
// proxy's default route) to the nginx HTTPS backend through each proxy, with
// "Connection: close" so that every request is a full TLS handshake on a new
// connection, and one keep-alive connection fetching a 1 MiB file.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "peers.h"
#include "plfm/core/process.h"

namespace {

using Clock = std::chrono::steady_clock;
using plfm::Process;
using plfm::SpawnOptions;

std::string g_hello;  // ClientHello for bench.test

double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int listenOn(uint16_t port) {
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_port = htons(port);
  sa.sin6_addr = in6addr_loopback;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 4096) != 0) {
    std::perror("backend bind");
    std::exit(1);
  }
  return fd;
}

uint16_t portOf(int fd) {
  sockaddr_in6 sa{};
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  return ntohs(sa.sin6_port);
}

// The backend: one epoll thread, per-connection state in a small struct.
class Backend {
 public:
  Backend() : lfd_(listenOn(0)), epfd_(::epoll_create1(0)) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;
    ::epoll_ctl(epfd_, EPOLL_CTL_ADD, lfd_, &ev);
    thread_ = std::thread([this] { run(); });
  }
  ~Backend() {
    stop_ = true;
    thread_.join();
    ::close(lfd_);
    ::close(epfd_);
  }
  [[nodiscard]] uint16_t port() const { return portOf(lfd_); }

 private:
  struct Conn {
    int fd;
    std::string head;  // hello + command byte
    size_t need = 6;   // record header + command, until the header is read
    char mode = 0;
    size_t sent = 0;
  };

  void run() {
    std::vector<epoll_event> events(256);
    static char zeros[256 * 1024];
    char buf[64 * 1024];
    while (!stop_) {
      const int n = ::epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), 100);
      for (int i = 0; i < n; ++i) {
        if (events[i].data.ptr == nullptr) {
          for (;;) {
            const int fd = ::accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) break;
            const int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            auto* c = new Conn{fd, {}, 6, 0, 0};
            epoll_event ev{};
            ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
            ev.data.ptr = c;
            ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
          }
          continue;
        }
        auto* c = static_cast<Conn*>(events[i].data.ptr);
        bool done = false;
        while (c->mode == 0 && !done) {
          const ssize_t r = ::recv(c->fd, buf, c->need - c->head.size(), 0);
          if (r <= 0) {
            done = r == 0 || errno != EAGAIN;
            if (!done) break;
            continue;
          }
          c->head.append(buf, static_cast<size_t>(r));
          if (c->head.size() >= 5 && c->need == 6) {
            c->need = 5 +
                      ((static_cast<uint8_t>(c->head[3]) << 8) | static_cast<uint8_t>(c->head[4])) +
                      1;
          }
          if (c->head.size() == c->need) {
            c->mode = c->head.back();
            if (c->mode == 'R') {
              (void)::send(c->fd, zeros, 1024, MSG_NOSIGNAL);
              done = true;
            }
          }
        }
        if (!done && c->mode == 'E') {
          for (;;) {
            const ssize_t r = ::recv(c->fd, buf, sizeof buf, 0);
            if (r > 0) {
              (void)::send(c->fd, buf, static_cast<size_t>(r), MSG_NOSIGNAL);
              continue;
            }
            done = r == 0 || errno != EAGAIN;
            break;
          }
        }
        if (!done && c->mode == 'D') {
          for (;;) {
            const ssize_t r = ::send(c->fd, zeros, sizeof zeros, MSG_NOSIGNAL);
            if (r > 0) continue;
            done = errno != EAGAIN;
            break;
          }
        }
        if (done) {
          // DEL first: a child forked for s_time may still hold the socket
          // (fork to exec), which would keep it in the epoll set after close.
          ::epoll_ctl(epfd_, EPOLL_CTL_DEL, c->fd, nullptr);
          ::close(c->fd);
          delete c;
        }
      }
    }
  }

  int lfd_;
  int epfd_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

int dial(uint16_t port) {
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_port = htons(port);
  sa.sin6_addr = in6addr_loopback;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

double throughputMBs(uint16_t port, double seconds) {
  const int fd = dial(port);
  if (fd < 0) return 0;
  (void)plfm::ingress::testing::sendAll(fd, g_hello + "D");
  std::vector<char> buf(size_t{256} * 1024);
  size_t total = 0;
  const auto start = Clock::now();
  while (secondsSince(start) < seconds) {
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) break;
    total += static_cast<size_t>(n);
  }
  const double dt = secondsSince(start);
  ::close(fd);
  return static_cast<double>(total) / dt / 1e6;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

// Round trips of 64 bytes on one connection, in microseconds.
std::vector<double> pingPong(uint16_t port, int rounds) {
  std::vector<double> rtts;
  const int fd = dial(port);
  if (fd < 0) return rtts;
  (void)plfm::ingress::testing::sendAll(fd, g_hello + "E");
  char msg[64] = {};
  char buf[64];
  for (int i = 0; i < rounds; ++i) {
    const auto t = Clock::now();
    (void)plfm::ingress::testing::sendAll(fd, std::string_view(msg, sizeof msg));
    size_t got = 0;
    while (got < sizeof msg) {
      const ssize_t n = ::recv(fd, buf, sizeof buf - got, 0);
      if (n <= 0) {
        ::close(fd);
        return rtts;
      }
      got += static_cast<size_t>(n);
    }
    rtts.push_back(secondsSince(t) * 1e6);
  }
  ::close(fd);
  return rtts;
}

// CPU time (ns, on any core) of process `pid`'s threads and of its child
// processes' (nginx's workers), from /proc/*/task/*/schedstat.
double cpuNanos(pid_t pid) {
  double total = 0;
  auto add = [&total](const std::filesystem::path& proc) {
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator(proc / "task", ec)) {
      const std::string text = plfm::readFile((task.path() / "schedstat").string()).value_or("");
      total += std::strtod(text.c_str(), nullptr);
    }
  };
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (std::stol(name) == pid) {
      add(e.path());
      continue;
    }
    // stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
    const std::string stat = plfm::readFile((e.path() / "stat").string()).value_or("");
    const size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    long ppid = 0;
    if (std::sscanf(stat.c_str() + close + 1, " %c %ld", &state, &ppid) == 2 && ppid == pid) {
      add(e.path());
    }
  }
  return total;
}

struct RateResult {
  size_t done = 0;
  double per_sec = 0;
  double p50_us = 0;
  double p99_us = 0;
  size_t failed = 0;
};

// `conns` connections in flight from one epoll thread; each connects, sends
// the hello and 'R', reads the 1 KiB answer to EOF, and is replaced at once.
RateResult connectionRate(uint16_t port, double seconds, int conns) {
  struct C {
    int fd = -1;
    Clock::time_point start;
    size_t got = 0;
    bool sent = false;
  };
  const int ep = ::epoll_create1(0);
  std::vector<C> cs(static_cast<size_t>(conns));
  std::vector<double> lat;
  size_t done = 0;
  RateResult res;
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_port = htons(port);
  sa.sin6_addr = in6addr_loopback;
  const std::string first = g_hello + "R";
  auto open = [&](size_t i) {
    C& c = cs[i];
    c = C{};
    c.fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c.start = Clock::now();
    (void)::connect(c.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);  // EINPROGRESS
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = i;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  };
  for (size_t i = 0; i < cs.size(); ++i) open(i);
  const auto start = Clock::now();
  std::vector<epoll_event> events(256);
  char buf[4096];
  while (secondsSince(start) < seconds) {
    const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    for (int k = 0; k < n; ++k) {
      const size_t i = events[k].data.u64;
      C& c = cs[i];
      bool finished = false;
      bool failed = (events[k].events & EPOLLERR) != 0;
      if (!failed && !c.sent && (events[k].events & EPOLLOUT) != 0) {
        failed = ::send(c.fd, first.data(), first.size(), MSG_NOSIGNAL) !=
                 static_cast<ssize_t>(first.size());
        c.sent = true;
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = i;
        ::epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
      }
      if (!failed && (events[k].events & (EPOLLIN | EPOLLHUP)) != 0) {
        for (;;) {
          const ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
          if (r > 0) {
            c.got += static_cast<size_t>(r);
            continue;
          }
          if (r == 0) finished = true;
          if (r < 0 && errno != EAGAIN) failed = true;
          break;
        }
      }
      if (finished && c.got < 1024) failed = true;
      if (finished || failed) {
        if (failed) {
          ++res.failed;
        } else {
          ++done;
          lat.push_back(secondsSince(c.start) * 1e6);
        }
        ::epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
        ::close(c.fd);
        open(i);
      }
    }
  }
  const double dt = secondsSince(start);
  for (C& c : cs) ::close(c.fd);
  ::close(ep);
  res.done = done;
  res.per_sec = static_cast<double>(done) / dt;
  res.p50_us = percentile(lat, 0.50);
  res.p99_us = percentile(lat, 0.99);
  return res;
}

// `openssl s_time -new`: full TLS handshakes per second, one at a time.
// s_time reports whole seconds only, so the wall time is measured here.
double tlsHandshakes(uint16_t port, double seconds, const std::string& dir) {
  if (port == 0) return 0;
  SpawnOptions o;
  o.stdout_path = dir + "/s_time.out";
  std::ofstream(o.stdout_path, std::ios::trunc).flush();
  const auto start = Clock::now();
  auto p = plfm::spawn({"openssl", "s_time", "-connect", "[::1]:" + std::to_string(port), "-new",
                        "-time", std::to_string(std::max(1, static_cast<int>(seconds)))},
                       o);
  if (!p) return 0;
  p->wait();
  const double dt = secondsSince(start);
  const std::string out = plfm::readFile(o.stdout_path).value_or("");
  std::smatch m;
  // "1234 connections in 6 real seconds, 0 bytes read per connection"
  if (std::regex_search(out, m, std::regex(R"((\d+) connections in \d+ real seconds)"))) {
    return std::stod(m[1]) / dt;
  }
  return 0;
}

bool waitPort(uint16_t port) {
  for (int i = 0; i < 200; ++i) {
    const int fd = dial(port);
    if (fd >= 0) {
      ::close(fd);
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return false;
}

uint16_t freePort() {
  const int fd = listenOn(0);
  const uint16_t p = portOf(fd);
  ::close(fd);
  return p;
}

struct Peer {
  std::string name;
  uint16_t port = 0;  // [::1] and 127.0.0.1
  Process process;
  bool wrk = true;  // measured in the wrk mode
  bool raw = true;  // measured in the raw mode
};

struct Env {
  std::string dir;
  uint16_t backend_port = 0;  // the raw backend in this process, [::1]
  uint16_t tls_port = 0;      // the nginx HTTPS backend, [::1] and 127.0.0.1
  std::string baseline;       // another plfm-ingress binary to compare with
};

struct Options {
  double seconds = 1;
  int rounds = 5;
  int conns = 32;
  std::vector<int> workers{1, 2};
  bool raw = true;
  bool wrk = true;
  int wrk_seconds = 2;
  int wrk_conns = 16;
};

Process spawnLogged(const std::vector<std::string>& argv, const std::string& log) {
  SpawnOptions o;
  o.stdout_path = log;
  auto p = plfm::spawn(argv, o);
  if (!p) {
    std::fprintf(stderr, "%s: %s\n", argv[0].c_str(), p.error().toString().c_str());
    std::exit(1);
  }
  return std::move(*p);
}

// nginx as an HTTPS server: "/" answers a few bytes, "/bulk" is a 1 MiB file.
// One worker process, the same for every proxy in front of it.
Process startTlsBackend(const Env& env) {
  const std::string d = env.dir + "/backend";
  std::filesystem::create_directories(d + "/www");
  {
    std::ofstream bulk(d + "/www/bulk", std::ios::binary);
    const std::string mib(size_t{1} << 20, 'x');
    bulk << mib;
  }
  std::ofstream(d + "/nginx.conf")
      << "daemon off;\nmaster_process off;\npid " << d << "/nginx.pid;\nerror_log " << d
      << "/error.log;\nworker_rlimit_nofile 16000;\nevents { worker_connections 4000; }\n"
         "http {\n  access_log off;\n  client_body_temp_path "
      << d << "/tmp;\n  proxy_temp_path " << d << "/tmp;\n  fastcgi_temp_path " << d
      << "/tmp;\n  uwsgi_temp_path " << d << "/tmp;\n  scgi_temp_path " << d
      << "/tmp;\n  keepalive_requests 1000000;\n  server {\n    listen [::1]:" << env.tls_port
      << " ssl;\n    listen 127.0.0.1:" << env.tls_port << " ssl;\n    ssl_certificate " << env.dir
      << "/cert.pem;\n    ssl_certificate_key " << env.dir << "/key.pem;\n    root " << d
      << "/www;\n    location = / { return 200 \"ok\\n\"; }\n    location = /bulk { }\n  }\n}\n";
  return spawnLogged({"nginx", "-e", d + "/error.log", "-p", d, "-c", d + "/nginx.conf"},
                     d + "/nginx.log");
}

std::vector<Peer> startPeers(const Env& env, int workers) {
  const std::string& dir = env.dir;
  const std::string w = std::to_string(workers);
  const uint16_t bp = env.backend_port;
  const uint16_t tls = env.tls_port;
  std::vector<Peer> peers;
  peers.push_back({"direct (no proxy)", bp, Process(), false, true});
  peers.push_back({"direct (no proxy)", tls, Process(), true, false});
  // plfm-ingress, and optionally another build of it (--baseline BIN) for an
  // A/B comparison in the same run.
  for (const std::string& bin : {std::string(PLFM_INGRESS_BIN), env.baseline}) {
    if (bin.empty()) continue;
    const bool ours = bin == PLFM_INGRESS_BIN;
    Peer p{ours ? "plfm-ingress" : "plfm-ingress (baseline)", freePort(), Process()};
    std::string d = dir;
    d += "/ingress-";
    d += w;
    if (!ours) d += "-baseline";
    std::filesystem::create_directories(d);
    std::ofstream(d + "/routes.json")
        << R"({"routes":[{"id":"bench","hostname":"bench.test","listener_port":)" << p.port
        << R"(,"backends":[{"address":"::1","port":)" << bp
        << R"(}]},{"id":"tls","hostname":"*","listener_port":)" << p.port
        << R"(,"backends":[{"address":"::1","port":)" << tls << "}]}]}";
    std::ofstream(d + "/ingress.toml")
        << "listen = [\"[::1]:" << p.port << "\", \"127.0.0.1:" << p.port
        << "\"]\nmetrics_listen = []\nstate_dir = \"" << d << "/state\"\nworkers = " << w
        << "\n[source]\nroutes_file = \"" << d
        << "/routes.json\"\n[limits]\nmax_connections = 4000\n";
    p.process = spawnLogged({bin, "serve", "--config", d + "/ingress.toml", "--log-level", "warn"},
                            d + "/ingress.log");
    peers.push_back(std::move(p));
  }
  for (bool splice : {false, true}) {
    Peer p{splice ? "haproxy 2.6 (splice-auto)" : "haproxy 2.6", freePort(), Process()};
    const std::string cfg = dir + "/haproxy" + (splice ? "-splice" : "") + ".cfg";
    std::ofstream(cfg) << "global\n  nbthread " << w
                       << "\n  maxconn 4000\ndefaults\n  mode tcp\n  timeout connect 5s\n"
                          "  timeout client 30s\n  timeout server 30s\n"
                       << (splice ? "  option splice-auto\n" : "")
                       << "frontend fe\n  bind [::1]:" << p.port << "\n  bind 127.0.0.1:" << p.port
                       << "\n  tcp-request inspect-delay 5s\n"
                          "  tcp-request content accept if { req.ssl_hello_type 1 }\n"
                          "  use_backend be if { req.ssl_sni -i bench.test }\n"
                          "  default_backend tls\n"
                          "backend be\n  server s1 [::1]:"
                       << bp << "\nbackend tls\n  server s2 [::1]:" << tls << "\n";
    p.process = spawnLogged({"haproxy", "-db", "-f", cfg}, dir + "/haproxy.log");
    peers.push_back(std::move(p));
  }
  {
    Peer p{"nginx 1.22 (stream, ssl_preread)", freePort(), Process()};
    // master_process on: without a master nginx runs one process whatever
    // worker_processes says.
    const std::string d = dir + "/nginx-" + w;
    std::filesystem::create_directories(d);
    std::ofstream(d + "/nginx.conf")
        << "daemon off;\nworker_processes " << w << ";\npid " << d << "/nginx.pid;\nerror_log " << d
        << "/error.log;\nload_module /usr/lib/nginx/modules/ngx_stream_module.so;\n"
           "worker_rlimit_nofile 16000;\nevents { worker_connections 4000; }\n"
           "stream {\n  map $ssl_preread_server_name $up { bench.test be; default tls; }\n"
           "  upstream be { server [::1]:"
        << bp << "; }\n  upstream tls { server [::1]:" << tls
        << "; }\n  server { listen [::1]:" << p.port << "; listen 127.0.0.1:" << p.port
        << "; ssl_preread on; proxy_pass $up; }\n}\n";
    p.process = spawnLogged({"nginx", "-e", d + "/error.log", "-p", d, "-c", d + "/nginx.conf"},
                            d + "/nginx.log");
    peers.push_back(std::move(p));
  }
  for (const Peer& p : peers) {
    if (!waitPort(p.port)) {
      std::fprintf(stderr, "%s did not listen; see %s\n", p.name.c_str(), dir.c_str());
      std::exit(1);
    }
  }
  return peers;
}

void stopPeers(std::vector<Peer>& peers) {
  for (Peer& p : peers) {
    if (p.process.valid()) {
      p.process.signal(SIGTERM);
      (void)p.process.waitOrKill(std::chrono::seconds(5), true);
    }
  }
  peers.clear();
}

std::string bold(const Peer& p, const std::string& cell) {
  if (p.name != "plfm-ingress") return cell;
  std::string out = "**";
  out += cell;
  out += "**";
  return out;
}

std::string fmt(int decimals, double v) {
  char buf[64];
  if (decimals == 0) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f", v);
  }
  return buf;
}

void runRaw(std::vector<Peer>& peers, const Env& env, const Options& o, int workers) {
  struct Samples {
    std::vector<double> mbs, rate, conn_p50, conn_p99, rtt_p50, rtt_p99, tls, cpu_per_conn;
    size_t failed = 0;
  };
  std::vector<Samples> samples(peers.size());
  // Interleaved rounds: the machine is shared, so background load hits every
  // peer alike instead of whichever ran during a build.
  for (int round = 0; round < o.rounds; ++round) {
    for (size_t i = 0; i < peers.size(); ++i) {
      const Peer& p = peers[i];
      if (!p.raw) continue;
      Samples& s = samples[i];
      s.mbs.push_back(throughputMBs(p.port, o.seconds));
      const pid_t pid = p.process.valid() ? p.process.pid() : 0;
      const double cpu_before = pid != 0 ? cpuNanos(pid) : 0;
      const RateResult rate = connectionRate(p.port, o.seconds, o.conns);
      if (pid != 0 && rate.done > 0) {
        s.cpu_per_conn.push_back((cpuNanos(pid) - cpu_before) / 1e3 /
                                 static_cast<double>(rate.done));
      }
      s.rate.push_back(rate.per_sec);
      s.conn_p50.push_back(rate.p50_us);
      s.conn_p99.push_back(rate.p99_us);
      s.failed += rate.failed;
      const std::vector<double> rtt = pingPong(p.port, 10'000);
      s.rtt_p50.push_back(percentile(rtt, 0.5));
      s.rtt_p99.push_back(percentile(rtt, 0.99));
      s.tls.push_back(tlsHandshakes(p.process.valid() ? p.port : env.tls_port, o.seconds, env.dir));
    }
    std::fprintf(stderr, "raw, %d worker(s): round %d/%d done\n", workers, round + 1, o.rounds);
  }
  std::printf(
      "\nraw, %d worker(s) each: %d connections in flight, %.1f s per figure, median of %d "
      "rounds\n\n| peer | bulk MB/s (1 conn) | new conns/s | proxy CPU us/conn | conn p50 us | "
      "conn p99 us | RTT p50 us | RTT p99 us | TLS handshakes/s |\n"
      "|---|---|---|---|---|---|---|---|---|\n",
      workers, o.conns, o.seconds, o.rounds);
  for (size_t i = 0; i < peers.size(); ++i) {
    const Samples& s = samples[i];
    if (!peers[i].raw) continue;
    std::string failed;
    if (s.failed != 0) failed = " (" + std::to_string(s.failed) + " failed)";
    const std::string cpu = s.cpu_per_conn.empty() ? "" : fmt(0, percentile(s.cpu_per_conn, 0.5));
    std::printf("| %s | %s | %s%s | %s | %.0f | %.0f | %.1f | %.1f | %.0f |\n",
                bold(peers[i], peers[i].name).c_str(),
                bold(peers[i], fmt(0, percentile(s.mbs, 0.5))).c_str(),
                bold(peers[i], fmt(0, percentile(s.rate, 0.5))).c_str(), failed.c_str(),
                bold(peers[i], cpu).c_str(), percentile(s.conn_p50, 0.5),
                percentile(s.conn_p99, 0.5), percentile(s.rtt_p50, 0.5), percentile(s.rtt_p99, 0.5),
                percentile(s.tls, 0.5));
  }
  std::fflush(stdout);
}

// One wrk run; returns requests/s and the transfer rate in MB/s.
std::pair<double, double> wrkRun(uint16_t port, const std::string& path, bool close, int conns,
                                 int seconds, const std::string& dir) {
  const std::string out = dir + "/wrk.out";
  std::ofstream(out, std::ios::trunc).flush();
  std::vector<std::string> argv{"wrk", "-t1", "-c" + std::to_string(conns),
                                "-d" + std::to_string(seconds) + "s"};
  if (close) {
    argv.emplace_back("-H");
    argv.emplace_back("Connection: close");
  }
  argv.push_back("https://localhost:" + std::to_string(port) + path);
  SpawnOptions so;
  so.stdout_path = out;
  auto p = plfm::spawn(argv, so);
  if (!p) return {0, 0};
  p->wait();
  const std::string text = plfm::readFile(out).value_or("");
  std::smatch m;
  double rps = 0;
  double mbs = 0;
  if (std::regex_search(text, m, std::regex(R"(Requests/sec:\s+([0-9.]+))"))) rps = std::stod(m[1]);
  if (std::regex_search(text, m, std::regex(R"(Transfer/sec:\s+([0-9.]+)([KMG]?)B)"))) {
    const double scale = m[2] == "G" ? 1024.0 : m[2] == "K" ? 1.0 / 1024 : m[2] == "M" ? 1.0 : 0;
    mbs = std::stod(m[1]) * scale * 1.048576;  // MiB/s -> MB/s
  }
  return {rps, mbs};
}

void runWrk(std::vector<Peer>& peers, const Env& env, const Options& o, int workers) {
  struct Samples {
    std::vector<double> handshakes, bulk;
  };
  std::vector<Samples> samples(peers.size());
  for (int round = 0; round < o.rounds; ++round) {
    for (size_t i = 0; i < peers.size(); ++i) {
      if (!peers[i].wrk) continue;
      samples[i].handshakes.push_back(
          wrkRun(peers[i].port, "/", true, o.wrk_conns, o.wrk_seconds, env.dir).first);
      samples[i].bulk.push_back(
          wrkRun(peers[i].port, "/bulk", false, 1, o.wrk_seconds, env.dir).second);
    }
    std::fprintf(stderr, "wrk, %d worker(s): round %d/%d done\n", workers, round + 1, o.rounds);
  }
  double best_peer = 0;
  double best_peer_bulk = 0;
  double ours = 0;
  double ours_bulk = 0;
  for (size_t i = 0; i < peers.size(); ++i) {
    if (!peers[i].wrk || !peers[i].process.valid()) continue;
    const double h = percentile(samples[i].handshakes, 0.5);
    const double b = percentile(samples[i].bulk, 0.5);
    if (peers[i].name == "plfm-ingress") {
      ours = h;
      ours_bulk = b;
    } else if (peers[i].name.rfind("plfm-ingress", 0) != 0) {  // not the baseline
      best_peer = std::max(best_peer, h);
      best_peer_bulk = std::max(best_peer_bulk, b);
    }
  }
  std::printf(
      "\nwrk, %d worker(s) each: wrk -t1, %d connections, -H \"Connection: close\" (a full TLS "
      "handshake per request) and 1 keep-alive connection fetching 1 MiB, %d s per figure, "
      "median of %d rounds\n\n| peer | handshake req/s | vs best peer | bulk MB/s (1 MiB, "
      "keep-alive) | vs best peer |\n|---|---|---|---|---|\n",
      workers, o.wrk_conns, o.wrk_seconds, o.rounds);
  for (size_t i = 0; i < peers.size(); ++i) {
    if (!peers[i].wrk) continue;
    const double h = percentile(samples[i].handshakes, 0.5);
    const double b = percentile(samples[i].bulk, 0.5);
    const bool proxy = peers[i].process.valid();
    std::printf("| %s | %s | %s | %s | %s |\n", bold(peers[i], peers[i].name).c_str(),
                bold(peers[i], fmt(0, h)).c_str(),
                proxy && best_peer > 0 ? fmt(2, h / best_peer).c_str() : "",
                bold(peers[i], fmt(0, b)).c_str(),
                proxy && best_peer_bulk > 0 ? fmt(2, b / best_peer_bulk).c_str() : "");
  }
  std::printf("\nplfm-ingress: %.2f x the best peer (handshakes), %.2f x (bulk)\n",
              best_peer > 0 ? ours / best_peer : 0,
              best_peer_bulk > 0 ? ours_bulk / best_peer_bulk : 0);
  std::fflush(stdout);
}

std::string firstLineWith(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "?";
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  Env env;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const std::string v = argv[i + 1];
    if (a == "--seconds") o.seconds = std::stod(v);
    if (a == "--conns") o.conns = std::stoi(v);
    if (a == "--rounds") o.rounds = std::stoi(v);
    if (a == "--wrk-seconds") o.wrk_seconds = std::stoi(v);
    if (a == "--wrk-conns") o.wrk_conns = std::stoi(v);
    if (a == "--baseline") env.baseline = v;  // shown as "plfm-ingress (baseline)"
    if (a == "--mode") {
      o.raw = v != "wrk";
      o.wrk = v != "raw";
    }
    if (a == "--workers") {
      o.workers.clear();
      for (size_t at = 0; at < v.size();) {
        const size_t comma = std::min(v.find(',', at), v.size());
        o.workers.push_back(std::stoi(v.substr(at, comma - at)));
        at = comma + 1;
      }
    }
  }
  ::signal(SIGPIPE, SIG_IGN);
  g_hello = plfm::ingress::testing::clientHello("bench.test");
  env.dir = "/tmp/plfm-ingress-bench-" + std::to_string(::getpid());
  std::filesystem::create_directories(env.dir);

  Backend backend;
  env.backend_port = backend.port();
  env.tls_port = freePort();
  SpawnOptions so;
  so.stdout_path = env.dir + "/req.log";
  if (auto r = plfm::runChecked(
          {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-nodes", "-keyout", env.dir + "/key.pem", "-out", env.dir + "/cert.pem", "-days", "1",
           "-subj", "/CN=localhost"},
          so);
      !r) {
    std::fprintf(stderr, "%s\n", r.error().toString().c_str());
    return 1;
  }
  Process tls_backend = startTlsBackend(env);
  if (!waitPort(env.tls_port)) {
    std::fprintf(stderr, "the nginx TLS backend did not listen; see %s\n", env.dir.c_str());
    return 1;
  }
  std::string load = plfm::readFile("/proc/loadavg").value_or("?");
  std::printf(
      "ingress_bench: CPU %s, %u cores; load average at start %s\nEach table: every peer is "
      "measured in turn in each round, and the median over rounds is shown.\n",
      firstLineWith("/proc/cpuinfo", "model name").c_str(), std::thread::hardware_concurrency(),
      load.substr(0, load.find(' ', load.find(' ', load.find(' ') + 1) + 1)).c_str());
  std::fflush(stdout);
  for (const int workers : o.workers) {
    std::vector<Peer> peers = startPeers(env, workers);
    if (o.raw) runRaw(peers, env, o, workers);
    if (o.wrk) runWrk(peers, env, o, workers);
    stopPeers(peers);
  }
  load = plfm::readFile("/proc/loadavg").value_or("?");
  std::printf("\nload average at the end %s\n",
              load.substr(0, load.find(' ', load.find(' ', load.find(' ') + 1) + 1)).c_str());
  tls_backend.signal(SIGTERM);
  (void)tls_backend.waitOrKill(std::chrono::seconds(5), true);
  std::filesystem::remove_all(env.dir);
  return 0;
}
