#include "netdev/mesh.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <sodium.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "netdev/errors.h"
#include "plfm/core/assert.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"
#include "plfm/core/unique_fd.h"

namespace plfm::netdev {
namespace {

void wipe(std::string& s) {
  if (!s.empty()) sodium_memzero(s.data(), s.size());
  s.clear();
}

std::string readAll(int fd, size_t limit) {
  std::string out;
  if (::lseek(fd, 0, SEEK_SET) != 0) return out;
  char buf[16384];
  ssize_t n = 0;
  while (out.size() < limit && (n = ::read(fd, buf, sizeof buf)) > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  sodium_memzero(buf, sizeof buf);  // may hold a dump's private key
  return out;
}

std::string joined(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

bool routeIsPeers(const MeshRoute& r, const MeshPlan& plan, const RoutedPeers& routed) {
  for (const auto& p : plan.peers) {
    if (routed && routed->count(p.node_id) == 0) continue;
    for (const auto& a : p.allowed_ips) {
      if (a.length == r.dst.length && std::memcmp(&a.address, &r.dst.address, 16) == 0) {
        return true;
      }
    }
  }
  return false;
}

std::set<std::string> prefixSet(const std::vector<Ipv6Prefix>& v) {
  std::set<std::string> s;
  for (const auto& p : v) s.insert(p.str());
  return s;
}

}  // namespace

bool validMeshInterfaceName(std::string_view name) {
  return !name.empty() && name.size() <= 15 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

std::string renderWgConfig(const MeshPlan& named, const WgKey& private_key) {
  const MeshPlan plan = peersSwitched(named);
  std::string s = "# Written by plfm-node-agent for `wg syncconf` (mesh version " +
                  std::to_string(plan.version) + "); rewritten at each apply.\n";
  s += "[Interface]\nPrivateKey = " + private_key.base64() +
       "\nListenPort = " + std::to_string(plan.self.listen_port) + "\n";
  for (const auto& p : plan.peers) {
    s += "\n# node " + std::to_string(p.node_number) +
         "\n[Peer]\nPublicKey = " + p.public_key.base64() + "\nEndpoint = " + p.endpoint.str() +
         "\nAllowedIPs = ";
    for (size_t i = 0; i < p.allowed_ips.size(); ++i) {
      s += (i == 0 ? "" : ", ") + p.allowed_ips[i].str();
    }
    // Always written: `wg syncconf` leaves a setting the file omits as it was,
    // so "off" ends the keepalive of a peer that has finished rotating.
    s += "\nPersistentKeepalive = " +
         (p.persistent_keepalive == 0 ? std::string("off")
                                      : std::to_string(p.persistent_keepalive)) +
         "\n";
  }
  return s;
}

std::vector<MeshRoute> parseRouteList(std::string_view text) {
  std::vector<MeshRoute> out;
  for (std::string_view line : splitLines(text)) {
    std::vector<std::string> words;
    size_t pos = 0;
    while (pos < line.size()) {
      const size_t end = std::min(line.find(' ', pos), line.size());
      if (end > pos) words.emplace_back(line.substr(pos, end - pos));
      pos = end + 1;
    }
    if (words.empty()) continue;
    std::string dst = words[0];
    if (dst.find('/') == std::string::npos) dst += "/128";
    auto prefix = parseIpv6Prefix(dst);
    if (!prefix) continue;  // "default", "unreachable ...", "local ...": not ours
    MeshRoute r;
    r.dst = *prefix;
    for (size_t i = 1; i + 1 < words.size(); ++i) {
      if (words[i] == "proto" && words[i + 1] == "kernel") r.kernel = true;
      if (words[i] == "mtu") {
        const std::string& v =
            words[i + 1] == "lock" && i + 2 < words.size() ? words[i + 2] : words[i + 1];
        r.mtu = std::all_of(v.begin(), v.end(), ::isdigit) && v.size() < 7 ? std::stoi(v) : 0;
      }
    }
    out.push_back(r);
  }
  return out;
}

std::vector<std::string> meshDrift(const MeshPlan& named, const WgKey& own_key, const WgDump& dump,
                                   const std::vector<MeshRoute>& routes,
                                   const RoutedPeers& routed) {
  const MeshPlan plan = peersSwitched(named);
  std::vector<std::string> d;
  if (!dump.public_key || !(*dump.public_key == own_key)) d.emplace_back("the interface's key");
  if (dump.listen_port != plan.self.listen_port) d.emplace_back("the listen port");
  std::map<WgKey, const WgDumpPeer*> have;
  for (const auto& p : dump.peers) have[p.public_key] = &p;
  for (const auto& p : plan.peers) {
    const std::string who = "peer " + p.node_id;
    auto it = have.find(p.public_key);
    if (it == have.end()) {
      d.push_back(who + " is missing");
      continue;
    }
    const WgDumpPeer& got = *it->second;
    have.erase(it);
    // A host name is resolved by wg: the dump shows an address.
    if (p.endpoint.kind != WgEndpoint::Kind::kHostname &&
        (!got.endpoint || !(*got.endpoint == p.endpoint))) {
      d.push_back(who + ": endpoint");
    }
    if (got.ipv4_allowed_ips != 0 || prefixSet(got.allowed_ips) != prefixSet(p.allowed_ips)) {
      d.push_back(who + ": allowed IPs");
    }
  }
  for (const auto& [key, peer] : have) d.push_back("unknown peer " + key.base64());
  std::set<std::string> have_route;
  for (const auto& r : routes) {
    if (r.kernel) continue;
    if (!routeIsPeers(r, plan, routed)) {
      d.push_back("a route to " + r.dst.str() + " names no peer routed here");
    } else if (r.mtu != kMeshMtu) {
      d.push_back("the route to " + r.dst.str() + ": mtu");
    }
    have_route.insert(r.dst.str());
  }
  for (const auto& p : plan.peers) {
    if (routed && routed->count(p.node_id) == 0) continue;
    for (const auto& a : p.allowed_ips) {
      if (have_route.count(a.str()) == 0) d.push_back("no route to " + a.str());
    }
  }
  return d;
}

MeshLink parseMeshLink(std::string_view link_text, std::string_view addr_text) {
  MeshLink link;
  // "7: plfm-wg0: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420 qdisc ..."
  const size_t open = link_text.find('<');
  const size_t close = link_text.find('>', open);
  if (open != std::string_view::npos && close != std::string_view::npos) {
    const std::string flags = "," + std::string(link_text.substr(open + 1, close - open - 1)) + ",";
    link.up = flags.find(",UP,") != std::string::npos;
  }
  if (const size_t m = link_text.find(" mtu "); m != std::string_view::npos) {
    int v = 0;
    std::from_chars(link_text.data() + m + 5, link_text.data() + link_text.size(), v);
    link.mtu = v;
  }
  // "7: plfm-wg0    inet6 fd7a:5c00:0:1::1/128 scope global ..."
  for (std::string_view line : splitLines(addr_text)) {
    const size_t at = line.find(" inet6 ");
    if (at == std::string_view::npos) continue;
    std::string_view rest = line.substr(at + 7);
    rest = rest.substr(0, rest.find_first_of("/ "));
    const std::string text(rest);
    in6_addr a{};
    if (inet_pton(AF_INET6, text.c_str(), &a) == 1) link.addresses.push_back(a);
  }
  return link;
}

std::vector<std::string> linkDrift(const MeshPlan& plan, const MeshLink& link) {
  std::vector<std::string> d;
  if (!link.up) d.emplace_back("the interface is down");
  if (link.mtu != kMeshMtu) d.emplace_back("the interface's MTU");
  const bool has = std::any_of(
      link.addresses.begin(), link.addresses.end(),
      [&](const in6_addr& a) { return std::memcmp(&a, &plan.self.address, sizeof a) == 0; });
  if (!has) d.push_back("no host address " + ipv6Text(plan.self.address));
  return d;
}

Result<WgEndpoint> resolveEndpoint(const WgEndpoint& endpoint) {
  if (endpoint.kind != WgEndpoint::Kind::kHostname) return endpoint;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(endpoint.host.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    return Error(errc::kUnavailable,
                 "cannot resolve " + endpoint.host + ": " + std::string(gai_strerror(rc)));
  }
  std::optional<WgEndpoint> v6;
  std::optional<WgEndpoint> v4;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (a->ai_family == AF_INET6 && !v6) {
      inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(a->ai_addr)->sin6_addr, buf,
                sizeof buf);
      v6 = WgEndpoint{WgEndpoint::Kind::kIpv6, buf, endpoint.port};
    } else if (a->ai_family == AF_INET && !v4) {
      inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(a->ai_addr)->sin_addr, buf,
                sizeof buf);
      v4 = WgEndpoint{WgEndpoint::Kind::kIpv4, buf, endpoint.port};
    }
  }
  ::freeaddrinfo(res);
  if (v6) return *v6;
  if (v4) return *v4;
  return Error(errc::kUnavailable, "no address for " + endpoint.host);
}

ResolvedPlan resolveEndpoints(const MeshPlan& plan, const EndpointResolver& resolve) {
  ResolvedPlan out;
  out.plan = plan;
  out.plan.peers.clear();
  for (const auto& p : plan.peers) {
    // The endpoint it is configured with (the staged one while it rotates).
    auto e = resolve(p.next ? p.next->endpoint : p.endpoint);
    if (!e) {
      out.skipped.push_back(std::move(e).error().with("node_id", p.node_id));
      continue;
    }
    MeshPeer resolved = p;
    (resolved.next ? resolved.next->endpoint : resolved.endpoint) = *e;
    out.plan.peers.push_back(std::move(resolved));
  }
  return out;
}

WgKey publicKeyOf(const WgKey& private_key) {
  std::array<uint8_t, 32> pk{};
  if (sodium_init() < 0) return WgKey{};
  if (crypto_scalarmult_base(pk.data(), private_key.bytes().data()) != 0) return WgKey{};
  return WgKey::fromBytes(pk);
}

WgKey generatePrivateKey() {
  PLFM_ASSERT(sodium_init() >= 0, "libsodium did not initialize");
  std::array<uint8_t, 32> sk{};
  randombytes_buf(sk.data(), sk.size());
  // Curve25519 clamping (RFC 7748 section 5), as `wg genkey` does.
  sk[0] &= 248;
  sk[31] = static_cast<uint8_t>((sk[31] & 127) | 64);
  WgKey key = WgKey::fromBytes(sk);
  sodium_memzero(sk.data(), sk.size());
  return key;
}

CommandRunner realCommandRunner(std::chrono::milliseconds timeout) {
  return [timeout](const std::vector<std::string>& argv) -> Result<std::string> {
    UniqueFd out(::memfd_create("plfm-mesh-out", MFD_CLOEXEC));
    UniqueFd err(::memfd_create("plfm-mesh-err", MFD_CLOEXEC));
    if (!out || !err) return errnoError("memfd_create", errno);
    SpawnOptions so;
    so.stdout_fd = out.get();
    so.stderr_fd = err.get();
    PLFM_ASSIGN_OR_RETURN(Process p, spawn(argv, so));
    const auto st = p.waitOrKill(timeout, true);
    if (!st) {
      return Error(errc::kDeadlineExceeded, "`" + joined(argv) + "` ran too long and was killed");
    }
    if (exitCodeOf(*st) != 0) {
      std::string tail(trim(readAll(err.get(), 4096)));
      if (tail.size() > 400) tail = tail.substr(tail.size() - 400);
      return Error(errc::kMeshCommandFailed, "`" + joined(argv) + "` failed (" +
                                                 describeWaitStatus(*st) + ")" +
                                                 (tail.empty() ? "" : ": " + tail));
    }
    return readAll(out.get(), size_t{16} << 20);
  };
}

Mesh::Mesh(MeshOptions options, CommandRunner run)
    : options_(std::move(options)), run_(std::move(run)) {}

std::string Mesh::meshDir() const { return options_.state_dir + "/mesh"; }
std::string Mesh::planPath() const { return meshDir() + "/plan.json"; }
std::string Mesh::configPath() const { return meshDir() + "/" + options_.interface + ".conf"; }

std::string Mesh::keyPath() const {
  return options_.key_file.empty() ? options_.state_dir + "/wireguard.key" : options_.key_file;
}

bool Mesh::exists() const {
  if (options_.link_exists) return options_.link_exists(options_.interface);
  return if_nametoindex(options_.interface.c_str()) != 0;
}

Result<WgKey> Mesh::privateKey() const {
  const std::string path = keyPath();
  auto text = readFile(path);
  if (!text) {
    return Error(errc::kFailedPrecondition,
                 "no WireGuard key at " + path + " (made at enrollment)");
  }
  auto key = WgKey::parse(trim(*text));
  wipe(*text);
  if (!key) return Error(errc::kInvalidArgument, path + " is not a WireGuard key");
  return key;
}

Result<void> Mesh::bringUp() {
  const std::string& name = options_.interface;
  if (!validMeshInterfaceName(name)) {
    return Error(errc::kInvalidArgument, "bad mesh interface name").with("device", name);
  }
  if (exists()) return ok();
  auto kernel = run_({options_.ip, "link", "add", name, "type", "wireguard"});
  if (!kernel) {
    // No module (as in CI): the userspace implementation. It daemonizes
    // and creates the TUN shortly after.
    auto go = run_({options_.wireguard_go, name});
    if (!go) {
      return Error(errc::kMeshBringupFailed,
                   "neither the kernel's WireGuard nor wireguard-go brought " + name +
                       " up: " + kernel.error().message() + "; " + go.error().message());
    }
    const auto deadline = std::chrono::steady_clock::now() + options_.link_wait;
    while (!exists() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!exists()) {
      return Error(errc::kMeshBringupFailed,
                   "wireguard-go started but " + name + " did not appear");
    }
  }
  return ok();
}

Result<void> Mesh::apply(const MeshPlan& named) {
  const std::string& name = options_.interface;
  const MeshPlan plan = peersSwitched(named);
  PLFM_TRY(bringUp());
  std::error_code ec;
  std::filesystem::create_directories(meshDir(), ec);
  std::filesystem::permissions(meshDir(), std::filesystem::perms::owner_all, ec);
  {
    PLFM_ASSIGN_OR_RETURN(WgKey key, privateKey());
    std::string conf = renderWgConfig(plan, key);
    key.wipe();
    auto written = writeFileAtomic(configPath(), conf, 0600);
    wipe(conf);
    PLFM_TRY(written);
  }
  PLFM_TRY(run_({options_.wg, "syncconf", name, configPath()}));
  PLFM_TRY(run_(
      {options_.ip, "-6", "addr", "replace", ipv6Text(plan.self.address) + "/128", "dev", name}));
  PLFM_TRY(run_({options_.ip, "link", "set", name, "mtu", std::to_string(kMeshMtu), "up"}));
  PLFM_TRY(syncRoutes(plan));
  if (!options_.save_plan) return ok();
  return writeFileAtomic(planPath(), named.toJson().dump(1) + "\n", 0600);
}

Result<void> Mesh::routeVia(const Ipv6Prefix& prefix) {
  PLFM_TRY(run_({options_.ip, "-6", "route", "replace", prefix.str(), "dev", options_.interface,
                 "mtu", std::to_string(kMeshMtu)}));
  return ok();
}

Result<void> Mesh::syncRoutes(const MeshPlan& plan) {
  const std::string& name = options_.interface;
  PLFM_ASSIGN_OR_RETURN(auto current, routes());
  std::set<std::string> good;
  for (const auto& r : current) {
    if (r.kernel) continue;
    if (!routeIsPeers(r, plan, routed_)) {
      PLFM_TRY(run_({options_.ip, "-6", "route", "del", r.dst.str(), "dev", name}));
    } else if (r.mtu == kMeshMtu) {
      good.insert(r.dst.str());
    }
  }
  for (const auto& p : plan.peers) {
    if (routed_ && routed_->count(p.node_id) == 0) continue;
    for (const auto& a : p.allowed_ips) {
      if (good.count(a.str()) != 0) continue;
      PLFM_TRY(run_({options_.ip, "-6", "route", "replace", a.str(), "dev", name, "mtu",
                     std::to_string(kMeshMtu)}));
    }
  }
  return ok();
}

Result<std::vector<std::string>> Mesh::reconcile(const MeshPlan& plan) {
  auto drift = check(plan);
  if (drift && drift->empty()) return drift;
  // Unreadable state counts as drift too: apply says what is wrong.
  PLFM_TRY(apply(plan));
  if (!drift) return std::vector<std::string>{drift.error().message()};
  return drift;
}

Result<WgDump> Mesh::dump() {
  PLFM_ASSIGN_OR_RETURN(std::string text, run_({options_.wg, "show", options_.interface, "dump"}));
  auto d = parseWgDump(text);
  wipe(text);
  return d;
}

Result<std::vector<MeshRoute>> Mesh::routes() {
  PLFM_ASSIGN_OR_RETURN(std::string text,
                        run_({options_.ip, "-6", "route", "show", "dev", options_.interface}));
  return parseRouteList(text);
}

Result<std::vector<std::string>> Mesh::check(const MeshPlan& plan) {
  if (!exists()) return std::vector<std::string>{"the interface is missing"};
  PLFM_ASSIGN_OR_RETURN(WgKey key, privateKey());
  const WgKey own = publicKeyOf(key);
  key.wipe();
  PLFM_ASSIGN_OR_RETURN(std::string link_text,
                        run_({options_.ip, "-o", "link", "show", "dev", options_.interface}));
  PLFM_ASSIGN_OR_RETURN(std::string addr_text,
                        run_({options_.ip, "-6", "-o", "addr", "show", "dev", options_.interface}));
  const MeshLink link = parseMeshLink(link_text, addr_text);
  PLFM_ASSIGN_OR_RETURN(WgDump d, dump());
  PLFM_ASSIGN_OR_RETURN(auto r, routes());
  auto drift = linkDrift(plan, link);
  for (auto& x : meshDrift(plan, own, d, r, routed_)) drift.push_back(std::move(x));
  return drift;
}

Result<void> Mesh::remove() {
  if (!exists()) return ok();
  PLFM_TRY(run_({options_.ip, "link", "del", options_.interface}));
  return ok();
}

}  // namespace plfm::netdev
