#include "probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "config.h"
#include "plfm/core/unique_fd.h"
#include "probe_dns.h"

namespace plfm::hello {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

ProbeOutcome usage(const std::string& why) {
  return {
      kProbeUsage,
      "probe: " + why + " (usage: probe resolve NAME | connect ADDR PORT | ping ADDR [--count N])"};
}

// Positional words and --flag VALUE pairs; a flag not in `known` is an error.
struct Args {
  std::vector<std::string> words;
  std::map<std::string, std::string> flags;
};

Result<Args> splitArgs(const std::vector<std::string>& in, const std::set<std::string>& known) {
  Args out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i].rfind("--", 0) != 0) {
      out.words.push_back(in[i]);
      continue;
    }
    if (!known.contains(in[i])) return Error(errc::kInvalidArgument, "unknown flag " + in[i]);
    if (i + 1 >= in.size()) return Error(errc::kInvalidArgument, in[i] + " needs a value");
    out.flags[in[i]] = in[i + 1];
    ++i;
  }
  return out;
}

Result<int> number(const Args& a, const std::string& flag, int fallback, int lo, int hi) {
  auto it = a.flags.find(flag);
  if (it == a.flags.end()) return fallback;
  int v = 0;
  const std::string& t = it->second;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || p != t.data() + t.size() || v < lo || v > hi) {
    return Error(errc::kInvalidArgument, flag + ": expected a number from " + std::to_string(lo) +
                                             " to " + std::to_string(hi));
  }
  return v;
}

// An IPv6 or IPv4 literal and a port.
struct Target {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_UNSPEC;
};

Result<Target> target(const std::string& text, int port) {
  Target t;
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&t.addr);
  auto* a4 = reinterpret_cast<sockaddr_in*>(&t.addr);
  if (::inet_pton(AF_INET6, text.c_str(), &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(static_cast<uint16_t>(port));
    t.len = sizeof(sockaddr_in6);
  } else if (::inet_pton(AF_INET, text.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(static_cast<uint16_t>(port));
    t.len = sizeof(sockaddr_in);
  } else {
    return Error(errc::kInvalidArgument,
                 "address: expected an IPv6 or IPv4 literal, got \"" + text.substr(0, 64) + "\"");
  }
  t.family = t.addr.ss_family;
  return t;
}

Result<int> portArg(const std::string& text) {
  Args a;
  a.flags["port"] = text;
  return number(a, "port", 0, 1, 65535);
}

long long msSince(Clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(Clock::now() - t).count();
}

int msUntil(Clock::time_point t) {
  auto left = std::chrono::duration_cast<milliseconds>(t - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

std::string addressText(const std::array<uint8_t, 16>& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET6, a.data(), buf, sizeof buf);
  return buf;
}

ProbeOutcome resolve(const std::vector<std::string>& in, const ProbeEnv& env) {
  auto a = splitArgs(in, {"--server", "--timeout-ms"});
  if (!a) return usage(a.error().message());
  if (a->words.size() != 1) return usage("resolve takes one NAME");
  auto timeout = number(*a, "--timeout-ms", 2000, 1, 60000);
  if (!timeout) return usage(timeout.error().message());
  const std::string& name = a->words[0];
  std::string server = a->flags.contains("--server") ? a->flags["--server"] : "";
  if (server.empty()) {
    std::ifstream f(env.resolv_conf);
    std::stringstream text;
    text << f.rdbuf();
    server = firstNameserver(text.str());
  }
  const std::string head = "resolve name=" + name + " server=" + (server.empty() ? "-" : server);
  if (server.empty())
    return {kProbeFailed, head + " error=\"no nameserver in " + env.resolv_conf + "\""};
  auto to = target(server, env.dns_port);
  if (!to) return {kProbeFailed, head + " error=\"" + to.error().message() + "\""};
  const auto id = static_cast<uint16_t>(std::random_device{}());
  auto query = buildAaaaQuery(id, name);
  if (!query) return usage(query.error().message());
  UniqueFd fd(::socket(to->family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0 || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&to->addr), to->len) != 0 ||
      ::send(fd.get(), query->data(), query->size(), 0) < 0) {
    return {kProbeFailed, head + " error=\"" + std::strerror(errno) + "\""};
  }
  const auto deadline = Clock::now() + milliseconds(*timeout);
  std::vector<uint8_t> buf(4096);
  for (;;) {
    pollfd p{fd.get(), POLLIN, 0};
    const int n = ::poll(&p, 1, msUntil(deadline));
    if (n == 0) return {kProbeFailed, head + " error=\"timeout\""};
    if (n < 0 && errno == EINTR) continue;
    const ssize_t got = ::recv(fd.get(), buf.data(), buf.size(), 0);
    if (got < 0) return {kProbeFailed, head + " error=\"" + std::strerror(errno) + "\""};
    auto answer = parseAaaaAnswer(id, std::vector<uint8_t>(buf.begin(), buf.begin() + got));
    if (!answer) continue;  // not ours, or garbage: wait for the real one
    std::string list;
    for (const auto& addr : answer->addresses)
      list += (list.empty() ? "" : ",") + addressText(addr);
    const std::string line = head + " rcode=" + std::to_string(answer->rcode) +
                             " addresses=" + (list.empty() ? "-" : list);
    return {answer->addresses.empty() ? kProbeFailed : kProbeOk, line};
  }
}

ProbeOutcome connectTo(const std::vector<std::string>& in) {
  auto a = splitArgs(in, {"--timeout-ms"});
  if (!a) return usage(a.error().message());
  if (a->words.size() != 2) return usage("connect takes ADDR PORT");
  auto timeout = number(*a, "--timeout-ms", 2000, 1, 60000);
  if (!timeout) return usage(timeout.error().message());
  auto port = portArg(a->words[1]);
  if (!port) return usage("PORT: expected 1 to 65535");
  auto to = target(a->words[0], *port);
  if (!to) return usage(to.error().message());
  const std::string head = "connect address=" + a->words[0] + " port=" + a->words[1];
  const auto start = Clock::now();
  UniqueFd fd(::socket(to->family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return {kProbeFailed, head + " result=error reason=socket"};
  int err = 0;
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&to->addr), to->len) != 0) {
    err = errno;
    if (err == EINPROGRESS) {
      pollfd p{fd.get(), POLLOUT, 0};
      int n = 0;
      while ((n = ::poll(&p, 1, msUntil(start + milliseconds(*timeout)))) < 0 && errno == EINTR) {
      }
      if (n == 0) {
        return {kProbeFailed, head + " result=timeout ms=" + std::to_string(msSince(start))};
      }
      socklen_t len = sizeof err;
      (void)::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    }
  }
  const std::string ms = " ms=" + std::to_string(msSince(start));
  if (err == 0) return {kProbeOk, head + " result=ok" + ms};
  const char* result = err == ECONNREFUSED                           ? "refused"
                       : err == ETIMEDOUT                            ? "timeout"
                       : (err == ENETUNREACH || err == EHOSTUNREACH) ? "unreachable"
                       : (err == EACCES || err == EPERM)             ? "prohibited"
                                                                     : "error";
  return {kProbeFailed, head + " result=" + result + ms};
}

ProbeOutcome ping(const std::vector<std::string>& in) {
  auto a = splitArgs(in, {"--port", "--interval-ms", "--count", "--timeout-ms"});
  if (!a) return usage(a.error().message());
  if (a->words.size() != 1) return usage("ping takes one ADDR");
  auto port = number(*a, "--port", kDefaultEchoPort, 1, 65535);
  auto interval = number(*a, "--interval-ms", 100, 1, 60000);
  auto count = number(*a, "--count", 10, 1, 100000);
  auto timeout = number(*a, "--timeout-ms", 1000, 1, 60000);
  for (const auto* r : {&port, &interval, &count, &timeout}) {
    if (!*r) return usage(r->error().message());
  }
  auto to = target(a->words[0], *port);
  if (!to) return usage(to.error().message());
  const std::string head = "ping address=" + a->words[0] + " port=" + std::to_string(*port);
  UniqueFd fd(::socket(to->family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0 || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&to->addr), to->len) != 0) {
    return {kProbeFailed, head + " error=\"" + std::strerror(errno) + "\""};
  }
  // Each datagram carries its sequence number and this run's nonce, so an
  // echo of an older run (or a duplicate) is not counted.
  const std::string nonce = std::to_string(std::random_device{}());
  std::set<int> echoed;
  int sent = 0;
  auto next = Clock::now();
  auto last_sent = next;
  char buf[256];
  for (;;) {
    const bool sending = sent < *count;
    if (!sending && (static_cast<int>(echoed.size()) == sent ||
                     Clock::now() >= last_sent + milliseconds(*timeout))) {
      break;
    }
    const auto wake = sending ? next : last_sent + milliseconds(*timeout);
    pollfd p{fd.get(), POLLIN, 0};
    const int n = ::poll(&p, 1, msUntil(wake));
    if (n > 0) {
      const ssize_t got = ::recv(fd.get(), buf, sizeof buf - 1, 0);
      if (got > 0) {
        buf[got] = '\0';
        int seq = -1;
        char their[32] = {};
        if (std::sscanf(buf, "hello-ping %d %31s", &seq, their) == 2 && nonce == their &&
            seq >= 0 && seq < sent) {
          echoed.insert(seq);
        }
      }  // errors (ICMP unreachable as ECONNREFUSED): that datagram is lost
      continue;
    }
    if (sending && Clock::now() >= next) {
      const std::string msg = "hello-ping " + std::to_string(sent) + " " + nonce;
      (void)::send(fd.get(), msg.data(), msg.size(), 0);
      ++sent;
      last_sent = Clock::now();
      next += milliseconds(*interval);
    }
  }
  const int received = static_cast<int>(echoed.size());
  return {received == sent ? kProbeOk : kProbeFailed,
          head + " sent=" + std::to_string(sent) + " received=" + std::to_string(received) +
              " lost=" + std::to_string(sent - received)};
}

}  // namespace

ProbeOutcome runProbe(const std::vector<std::string>& args, const ProbeEnv& env) {
  if (args.empty()) return usage("missing subcommand");
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "resolve") return resolve(rest, env);
  if (args[0] == "connect") return connectTo(rest);
  if (args[0] == "ping") return ping(rest);
  return usage("unknown subcommand \"" + args[0].substr(0, 32) + "\"");
}

}  // namespace plfm::hello
