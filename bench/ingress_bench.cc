// ingress_bench: plfm-ingress against haproxy (mode tcp + req.ssl_sni) and
// nginx (stream + ssl_preread), same backend, same run, one worker each.
//
//   build-ingress/bench/ingress_bench [--rounds 5] [--seconds 1] [--conns 32] [--workers 1]
//
// The backend is an epoll server in this process. Every connection starts
// with a real ClientHello (made by OpenSSL, SNI bench.test) followed by one
// command byte, which the backend reads before acting:
//   'D' download: the backend streams bytes until the client closes (MB/s)
//   'E' echo: 64-byte ping-pong on one connection (added latency p50/p99)
//   'R' respond: the backend writes 1 KiB and closes; the client opens the
//       next connection at once, 32 in flight (new connections/s)
// A real TLS row uses `openssl s_time -new` (full handshakes, no SNI, so
// every proxy's default route) against `openssl s_server`. "direct" is the
// backend without a proxy, the floor for latency.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <csignal>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
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

struct RateResult {
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
  res.per_sec = static_cast<double>(done) / dt;
  res.p50_us = percentile(lat, 0.50);
  res.p99_us = percentile(lat, 0.99);
  return res;
}

// `openssl s_time -new`: full TLS handshakes per second, one at a time.
// s_time reports whole seconds only, so the wall time is measured here.
double tlsHandshakes(uint16_t port, double seconds, const std::string& dir) {
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
  uint16_t port = 0;
  Process process;
};

}  // namespace

int main(int argc, char** argv) {
  double seconds = 1;
  int rounds = 5;
  int conns = 32;
  int workers = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--seconds") seconds = std::stod(argv[i + 1]);
    if (a == "--conns") conns = std::stoi(argv[i + 1]);
    if (a == "--rounds") rounds = std::stoi(argv[i + 1]);
    if (a == "--workers") workers = std::stoi(argv[i + 1]);
  }
  ::signal(SIGPIPE, SIG_IGN);
  g_hello = plfm::ingress::testing::clientHello("bench.test");
  const std::string dir = "/tmp/plfm-ingress-bench-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);

  Backend backend;
  const uint16_t bp = backend.port();
  // A real TLS server for the handshake row, reached through each proxy's default route.
  const uint16_t tls_port = freePort();
  SpawnOptions so;
  so.stdout_path = dir + "/req.log";
  if (auto r =
          plfm::runChecked({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", dir + "/key.pem",
                            "-out", dir + "/cert.pem", "-days", "1", "-subj", "/CN=bench.test"},
                           so);
      !r) {
    std::fprintf(stderr, "%s\n", r.error().toString().c_str());
    return 1;
  }
  so.stdout_path = dir + "/s_server.log";
  Process s_server = plfm::spawn({"openssl", "s_server", "-quiet", "-6", "-accept",
                                  "[::1]:" + std::to_string(tls_port), "-cert", dir + "/cert.pem",
                                  "-key", dir + "/key.pem", "-naccept", "1000000"},
                                 so)
                         .value();

  std::vector<Peer> peers;
  peers.push_back({"direct (no proxy)", bp, Process()});
  {
    Peer p{"plfm-ingress", freePort(), Process()};
    std::ofstream(dir + "/routes.json")
        << R"({"routes":[{"id":"bench","hostname":"bench.test","listener_port":)" << p.port
        << R"(,"backends":[{"address":"::1","port":)" << bp
        << R"(}]},{"id":"tls","hostname":"*","listener_port":)" << p.port
        << R"(,"backends":[{"address":"::1","port":)" << tls_port << "}]}]}";
    std::ofstream(dir + "/ingress.toml")
        << "listen = [\"[::1]:" << p.port << "\"]\nmetrics_listen = []\nstate_dir = \"" << dir
        << "/state\"\nworkers = " << workers << "\n[source]\nroutes_file = \"" << dir
        << "/routes.json\"\n[limits]\nmax_connections = 4000\n";
    SpawnOptions o;
    o.stdout_path = dir + "/ingress.log";
    p.process = plfm::spawn({PLFM_INGRESS_BIN, "serve", "--config", dir + "/ingress.toml",
                             "--log-level", "warn"},
                            o)
                    .value();
    peers.push_back(std::move(p));
  }
  for (bool splice : {false, true}) {
    Peer p{splice ? "haproxy 2.6 (splice-auto)" : "haproxy 2.6", freePort(), Process()};
    const std::string cfg = dir + "/haproxy" + (splice ? "-splice" : "") + ".cfg";
    std::ofstream(cfg) << "global\n  nbthread " << workers
                       << "\n  maxconn 4000\ndefaults\n  mode tcp\n  timeout connect 5s\n"
                          "  timeout client 30s\n  timeout server 30s\n"
                       << (splice ? "  option splice-auto\n" : "")
                       << "frontend fe\n  bind [::1]:" << p.port
                       << "\n  tcp-request inspect-delay 5s\n"
                          "  tcp-request content accept if { req.ssl_hello_type 1 }\n"
                          "  use_backend be if { req.ssl_sni -i bench.test }\n"
                          "  default_backend tls\n"
                          "backend be\n  server s1 [::1]:"
                       << bp << "\nbackend tls\n  server s2 [::1]:" << tls_port << "\n";
    SpawnOptions o;
    o.stdout_path = dir + "/haproxy.log";
    p.process = plfm::spawn({"haproxy", "-db", "-f", cfg}, o).value();
    peers.push_back(std::move(p));
  }
  {
    Peer p{"nginx 1.22 (stream, ssl_preread)", freePort(), Process()};
    std::ofstream(dir + "/nginx.conf")
        << "daemon off;\nmaster_process off;\nworker_processes " << workers << ";\npid " << dir
        << "/nginx.pid;\nerror_log " << dir
        << "/nginx-error.log;\nload_module /usr/lib/nginx/modules/ngx_stream_module.so;\n"
           "worker_rlimit_nofile 16000;\nevents { worker_connections 4000; }\n"
           "stream {\n  map $ssl_preread_server_name $up { bench.test be; default tls; }\n"
           "  upstream be { server [::1]:"
        << bp << "; }\n  upstream tls { server [::1]:" << tls_port
        << "; }\n  server { listen [::1]:" << p.port << "; ssl_preread on; proxy_pass $up; }\n}\n";
    SpawnOptions o;
    o.stdout_path = dir + "/nginx.log";
    p.process =
        plfm::spawn({"nginx", "-e", dir + "/nginx-error.log", "-p", dir, "-c", dir + "/nginx.conf"},
                    o)
            .value();
    peers.push_back(std::move(p));
  }
  for (const Peer& p : peers) {
    if (!waitPort(p.port)) {
      std::fprintf(stderr, "%s did not listen; see %s\n", p.name.c_str(), dir.c_str());
      return 1;
    }
  }
  waitPort(tls_port);

  std::printf(
      "ingress_bench: %d rounds; in each round every peer is measured in turn (%.1f s per "
      "figure), and the table shows the median over rounds. %d connections in flight, %d "
      "worker(s) each.\n\n",
      rounds, seconds, conns, workers);
  struct Samples {
    std::vector<double> mbs, rate, conn_p50, conn_p99, rtt_p50, rtt_p99, tls;
    size_t failed = 0;
  };
  std::vector<Samples> samples(peers.size());
  // Interleaved rounds: the machine is shared, so background load hits every
  // peer alike instead of whichever ran during a build.
  for (int round = 0; round < rounds; ++round) {
    for (size_t i = 0; i < peers.size(); ++i) {
      const Peer& p = peers[i];
      Samples& s = samples[i];
      s.mbs.push_back(throughputMBs(p.port, seconds));
      const RateResult rate = connectionRate(p.port, seconds, conns);
      s.rate.push_back(rate.per_sec);
      s.conn_p50.push_back(rate.p50_us);
      s.conn_p99.push_back(rate.p99_us);
      s.failed += rate.failed;
      const std::vector<double> rtt = pingPong(p.port, 10'000);
      s.rtt_p50.push_back(percentile(rtt, 0.5));
      s.rtt_p99.push_back(percentile(rtt, 0.99));
      s.tls.push_back(tlsHandshakes(p.process.valid() ? p.port : tls_port, seconds, dir));
    }
    std::fprintf(stderr, "round %d/%d done\n", round + 1, rounds);
  }
  std::printf(
      "| peer | bulk MB/s (1 conn) | new conns/s | conn p50 us | conn p99 us | RTT p50 us | "
      "RTT p99 us | TLS handshakes/s |\n|---|---|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < peers.size(); ++i) {
    const Samples& s = samples[i];
    const std::string failed =
        s.failed != 0 ? " (" + std::to_string(s.failed) + " failed)" : std::string();
    std::printf("| %s | %.0f | %.0f%s | %.0f | %.0f | %.1f | %.1f | %.0f |\n",
                peers[i].name.c_str(), percentile(s.mbs, 0.5), percentile(s.rate, 0.5),
                failed.c_str(), percentile(s.conn_p50, 0.5), percentile(s.conn_p99, 0.5),
                percentile(s.rtt_p50, 0.5), percentile(s.rtt_p99, 0.5), percentile(s.tls, 0.5));
  }
  for (Peer& p : peers) {
    if (p.process.valid()) {
      p.process.signal(SIGTERM);
      p.process.waitFor(std::chrono::seconds(5));
    }
  }
  std::filesystem::remove_all(dir);
  return 0;
}
