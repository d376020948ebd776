#include "dev_hosts.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>

#include "plfm/core/process.h"
#include "plfm/core/sha256.h"

namespace plfm::vt::dev {
namespace fs = std::filesystem;

namespace {

constexpr const char* kNetnsDir = "/run/netns";
constexpr const char* kWireguardSockets = "/var/run/wireguard";
constexpr const char* kBridge = "br0";

Result<void> run(const std::vector<std::string>& argv, const std::string& log) {
  SpawnOptions so;
  so.stdout_path = log;
  so.timeout = std::chrono::seconds(20);
  return runChecked(argv, so);
}

bool succeeds(const std::vector<std::string>& argv) {
  SpawnOptions so;
  so.stdout_path = "/dev/null";
  so.timeout = std::chrono::seconds(20);
  return runChecked(argv, so).has_value();
}

bool netnsExists(const std::string& name) {
  return fs::exists(std::string(kNetnsDir) + "/" + name);
}

// `ip` for host h: `ip -n NS` for hosts B..., plain `ip` for host A.
std::vector<std::string> ip(const Host& h, std::initializer_list<std::string> args) {
  std::vector<std::string> argv = {"ip"};
  if (!h.netns.empty()) argv.insert(argv.end(), {"-n", h.netns});
  argv.insert(argv.end(), args);
  return argv;
}

// The interface in this namespace holding the IPv6 address `addr`, or "".
std::string interfaceHolding(const std::string& addr) {
  in6_addr want{};
  if (::inet_pton(AF_INET6, addr.c_str(), &want) != 1) return "";
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return "";
  std::string out;
  for (ifaddrs* i = list; i != nullptr && out.empty(); i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET6) continue;
    const auto* a = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
    if (std::equal(std::begin(a->sin6_addr.s6_addr), std::end(a->sin6_addr.s6_addr),
                   std::begin(want.s6_addr))) {
      out = i->ifa_name;
    }
  }
  ::freeifaddrs(list);
  return out;
}

// The processes whose network namespace is the named one.
std::vector<pid_t> pidsIn(const std::string& netns) {
  std::vector<pid_t> out;
  struct stat ns {};
  if (::stat((std::string(kNetnsDir) + "/" + netns).c_str(), &ns) != 0) return out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    struct stat st {};
    if (::stat((e.path() / "ns/net").c_str(), &st) != 0) continue;
    const auto pid = static_cast<pid_t>(std::stol(name));
    if (st.st_ino == ns.st_ino && st.st_dev == ns.st_dev && pid != ::getpid()) {
      out.push_back(pid);
    }
  }
  return out;
}

}  // namespace

std::string underlayAddress(int index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "fd00:5c::%x", 0xa + index);
  return buf;
}

std::string nodeHostAddress(const std::string& node_prefix) {
  const size_t slash = node_prefix.find('/');
  if (slash == std::string::npos || node_prefix.substr(slash) != "/64") return "";
  in6_addr a{};
  if (::inet_pton(AF_INET6, node_prefix.substr(0, slash).c_str(), &a) != 1) return "";
  std::fill(std::begin(a.s6_addr) + 8, std::end(a.s6_addr), 0);
  a.s6_addr[15] = 1;
  char buf[INET6_ADDRSTRLEN];
  if (::inet_ntop(AF_INET6, &a, buf, sizeof buf) == nullptr) return "";
  return std::string(buf) + "/128";
}

std::string underlayAddress4(int index) { return "198.18.0." + std::to_string(10 + index); }

std::vector<std::string> inHost(const Host& h, std::vector<std::string> argv) {
  if (h.netns.empty()) return argv;
  std::vector<std::string> out = {"nsenter", "--net=" + std::string(kNetnsDir) + "/" + h.netns,
                                  "--"};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

Hosts::Hosts(const std::string& state_dir, int nodes) : tag_(Sha256::hex(state_dir).substr(0, 8)) {
  for (int i = 0; i < std::clamp(nodes, 1, kMaxNodes); ++i) {
    Host h;
    h.index = i;
    h.letter = static_cast<char>('a' + i);
    const std::string suffix(1, h.letter);
    if (i > 0) h.netns = "plfm-" + tag_ + "-" + suffix;
    h.underlay = underlayAddress(i);
    h.underlay4 = underlayAddress4(i);
    h.mesh_interface = "wg-" + tag_ + "-" + suffix;
    h.component = i == 0 ? "node-agent" : "node-agent-" + suffix;
    hosts_.push_back(std::move(h));
  }
}

Result<void> Hosts::create(const std::string& log) const {
  if (::geteuid() != 0) {
    return Error(errc::kFailedPrecondition,
                 "--nodes N > 1 needs root (network namespaces, veths, a bridge)");
  }
  const std::string held = interfaceHolding(hosts_[0].underlay);
  if (!held.empty() && held != underlayInterface()) {
    return Error(errc::kFailedPrecondition,
                 hosts_[0].underlay + " is already on " + held +
                     " in this network namespace (another multi-host dev platform?); stop it "
                     "with `vt dev down --state-dir ITS_DIR`");
  }
  const std::string ul = underlayNetns();
  if (!netnsExists(ul)) PLFM_TRY(run({"ip", "netns", "add", ul}, log));
  PLFM_TRY(run({"ip", "-n", ul, "link", "set", "lo", "up"}, log));
  if (!succeeds({"ip", "-n", ul, "link", "show", kBridge})) {
    PLFM_TRY(run({"ip", "-n", ul, "link", "add", kBridge, "type", "bridge"}, log));
  }
  PLFM_TRY(run({"ip", "-n", ul, "link", "set", kBridge, "up"}, log));
  const std::string veth = underlayInterface();
  for (const Host& h : hosts_) {
    if (!h.netns.empty() && !netnsExists(h.netns)) {
      PLFM_TRY(run({"ip", "netns", "add", h.netns}, log));
    }
    if (!h.netns.empty()) PLFM_TRY(run(ip(h, {"link", "set", "lo", "up"}), log));
    const std::string port = std::string("h-") + h.letter;
    if (!succeeds(ip(h, {"link", "show", veth}))) {
      (void)succeeds({"ip", "-n", ul, "link", "del", port});  // a half-made pair
      PLFM_TRY(run(ip(h, {"link", "add", veth, "type", "veth", "peer", "name", port, "netns", ul}),
                   log));
    }
    PLFM_TRY(run({"ip", "-n", ul, "link", "set", port, "master", kBridge, "up"}, log));
    PLFM_TRY(run(ip(h, {"addr", "replace", h.underlay + "/64", "dev", veth, "nodad"}), log));
    PLFM_TRY(run(ip(h, {"addr", "replace", h.underlay4 + "/24", "dev", veth}), log));
    PLFM_TRY(run(ip(h, {"link", "set", veth, "up"}), log));
    // Hosts B... are ours alone: they route between the mesh and their taps.
    // Host A is the caller's namespace, whose forwarding is left as it is.
    if (!h.netns.empty()) {
      PLFM_TRY(run(inHost(h, {"sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"}), log));
    }
  }
  return ok();
}

std::vector<std::string> Hosts::namespaces() const {
  std::vector<std::string> out;
  const std::string prefix = "plfm-" + tag_ + "-";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(kNetnsDir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with(prefix)) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> Hosts::destroy(const std::string& log) const {
  std::vector<std::string> done;
  const std::string mesh_prefix = "wg-" + tag_ + "-";
  for (const std::string& ns : namespaces()) {
    const std::string mesh = mesh_prefix + ns.substr(ns.rfind('-') + 1);
    if (ns != underlayNetns() && succeeds({"ip", "-n", ns, "link", "del", mesh})) {
      done.push_back("mesh interface " + mesh);
      done.back() += " in ";
      done.back() += ns;
    }
    // wireguard-go, or a VMM whose agent was killed: nothing of ours outlives its host.
    for (pid_t pid : pidsIn(ns)) {
      stopProcess(pid, SIGTERM, std::chrono::seconds(5));
      done.push_back("process " + std::to_string(pid) + " in " + ns);
    }
    if (succeeds({"ip", "netns", "del", ns})) done.push_back("network namespace " + ns);
  }
  // Host A's two mesh slots (the second during a key rotation).
  for (const std::string& mesh_a : {mesh_prefix + "a", mesh_prefix + "a1"}) {
    if (::if_nametoindex(mesh_a.c_str()) != 0 && run({"ip", "link", "del", mesh_a}, log)) {
      done.push_back("mesh interface " + mesh_a);
    }
  }
  for (pid_t pid : processesMentioning(mesh_prefix)) {
    stopProcess(pid, SIGTERM, std::chrono::seconds(5));
    done.push_back("process " + std::to_string(pid) + " (" + mesh_prefix + "*)");
  }
  // A wireguard-go that was killed leaves its socket behind.
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(kWireguardSockets, ec)) {
    if (e.path().filename().string().starts_with(mesh_prefix) && fs::remove(e.path(), ec)) {
      done.push_back("socket " + e.path().string());
    }
  }
  const std::string veth = underlayInterface();
  if (::if_nametoindex(veth.c_str()) != 0 && run({"ip", "link", "del", veth}, log)) {
    done.push_back("underlay interface " + veth);
  }
  return done;
}

Result<std::vector<std::string>> Hosts::stop(const Host& h, pid_t agent,
                                             const std::string& log) const {
  if (h.netns.empty()) {
    return Error(errc::kInvalidArgument,
                 "host a runs the control plane and cannot stop alone; "
                 "`vt dev down` stops everything");
  }
  std::vector<std::string> done;
  if (agent > 0) {
    stopProcess(agent, SIGKILL, std::chrono::seconds(5));
    done.push_back("agent killed (pid " + std::to_string(agent) + ")");
  }
  for (pid_t pid : pidsIn(h.netns)) {
    stopProcess(pid, SIGKILL, std::chrono::seconds(5));
    done.push_back("process " + std::to_string(pid) + " killed in " + h.netns);
  }
  PLFM_TRY(run(ip(h, {"link", "set", underlayInterface(), "down"}), log));
  done.push_back("underlay link " + underlayInterface() + " in " + h.netns + " down");
  return done;
}

std::vector<std::string> Hosts::leftovers() const {
  std::vector<std::string> left;
  for (const std::string& ns : namespaces()) left.push_back("network namespace " + ns);
  const std::string mesh_prefix = "wg-" + tag_ + "-";
  for (const std::string& name : {mesh_prefix + "a", mesh_prefix + "a1", underlayInterface()}) {
    if (::if_nametoindex(name.c_str()) != 0) left.push_back("interface " + name);
  }
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(kWireguardSockets, ec)) {
    if (e.path().filename().string().starts_with(mesh_prefix)) {
      left.push_back("socket " + e.path().string());
    }
  }
  for (pid_t pid : processesMentioning(mesh_prefix)) {
    left.push_back("process " + std::to_string(pid) + " (" + mesh_prefix + "*)");
  }
  return left;
}

}  // namespace plfm::vt::dev
