#include "netdev/mesh_plan.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "plfm/core/id.h"

namespace plfm::netdev {
namespace {
using nlohmann::json;

constexpr std::string_view kBase64 =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

Error fieldError(const std::string& field, std::string_view why) {
  return Error(errc::kInvalidArgument, "mesh." + field + ": " + std::string(why))
      .with("field", field);
}

// The member `key` of `obj` as a T, or an error naming `path.key`.
template <class T>
Result<T> member(const json& obj, const char* key, const std::string& path) {
  const std::string field = path.empty() ? key : path + "." + key;
  auto it = obj.find(key);
  if (it == obj.end()) return fieldError(field, "missing");
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return fieldError(field, "not a string");
    if (it->get_ref<const std::string&>().size() > 256) return fieldError(field, "too long");
    return it->get<std::string>();
  } else {
    if (!it->is_number_integer()) return fieldError(field, "not an integer");
    return it->get<T>();
  }
}

Result<int64_t> integerIn(const json& obj, const char* key, const std::string& path, int64_t lo,
                          int64_t hi) {
  const std::string field = path.empty() ? key : path + "." + key;
  auto it = obj.find(key);
  if (it != obj.end() && it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(INT64_MAX)) {
    return fieldError(field, "out of range");
  }
  PLFM_ASSIGN_OR_RETURN(int64_t v, member<int64_t>(obj, key, path));
  if (v < lo || v > hi) {
    return fieldError(field, "must be " + std::to_string(lo) + " to " + std::to_string(hi));
  }
  return v;
}

Result<Ipv6Prefix> prefixField(const json& obj, const char* key, const std::string& path) {
  PLFM_ASSIGN_OR_RETURN(std::string text, member<std::string>(obj, key, path));
  auto p = parseIpv6Prefix(text);
  if (!p) return fieldError(path.empty() ? key : path + "." + key, p.error().message());
  return p;
}

Result<std::string> roleField(const json& obj, const std::string& path, bool required) {
  if (!required && !obj.contains("role")) return std::string("worker");
  PLFM_ASSIGN_OR_RETURN(std::string role, member<std::string>(obj, "role", path));
  if (role != "worker" && role != "edge") {
    return fieldError(path + ".role", R"(must be "worker" or "edge")");
  }
  return role;
}

bool hostnameOk(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  size_t label = 0;
  char prev = '.';
  for (char c : h) {
    if (c == '.') {
      if (label == 0 || prev == '-') return false;
      label = 0;
    } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
      if (label == 0 && c == '-') return false;
      if (++label > 63) return false;
    } else {
      return false;
    }
    prev = c;
  }
  return label > 0 && prev != '-';
}

// A key that may be absent or null.
Result<std::optional<WgKey>> optionalKey(const json& obj, const char* key,
                                         const std::string& path) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<WgKey>();
  PLFM_ASSIGN_OR_RETURN(std::string text, member<std::string>(obj, key, path));
  auto k = WgKey::parse(text);
  if (!k) return fieldError(path + "." + key, k.error().message());
  return std::optional(*k);
}

Result<MeshSelf> parseSelf(const json& j, const Ipv6Prefix& cluster) {
  if (!j.is_object()) return fieldError("self", "not an object");
  MeshSelf s;
  PLFM_ASSIGN_OR_RETURN(int64_t number, integerIn(j, "node_number", "self", 1, 65534));
  s.node_number = static_cast<uint32_t>(number);
  PLFM_ASSIGN_OR_RETURN(s.prefix, prefixField(j, "prefix", "self"));
  if (s.prefix.length != 64 || !prefixContains(cluster, s.prefix)) {
    return fieldError("self.prefix", "must be a /64 inside the cluster prefix");
  }
  PLFM_ASSIGN_OR_RETURN(std::string address, member<std::string>(j, "address", "self"));
  auto host = parseIpv6Prefix(address + "/128");
  if (!host || !prefixContains(s.prefix, *host)) {
    return fieldError("self.address", "must be an IPv6 address inside self.prefix");
  }
  s.address = host->address;
  PLFM_ASSIGN_OR_RETURN(int64_t port, integerIn(j, "listen_port", "self", 1, 65535));
  s.listen_port = static_cast<uint16_t>(port);
  PLFM_ASSIGN_OR_RETURN(s.role, roleField(j, "self", false));
  PLFM_ASSIGN_OR_RETURN(s.public_key, optionalKey(j, "public_key", "self"));
  PLFM_ASSIGN_OR_RETURN(s.next_public_key, optionalKey(j, "next_public_key", "self"));
  if (auto it = j.find("next_listen_port"); it != j.end() && !it->is_null()) {
    PLFM_ASSIGN_OR_RETURN(int64_t next_port, integerIn(j, "next_listen_port", "self", 1, 65535));
    s.next_listen_port = static_cast<uint16_t>(next_port);
  }
  if (s.next_public_key.has_value() != s.next_listen_port.has_value()) {
    return fieldError(s.next_public_key ? "self.next_listen_port" : "self.next_public_key",
                      "next_public_key and next_listen_port come together");
  }
  if (s.next_listen_port == s.listen_port) {
    return fieldError("self.next_listen_port", "must differ from self.listen_port");
  }
  if (auto it = j.find("rotate"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) return fieldError("self.rotate", "not a boolean");
    s.rotate = it->get<bool>();
  }
  return s;
}

Result<std::optional<MeshPeerNext>> parsePeerNext(const json& j, const std::string& path) {
  auto it = j.find("next");
  if (it == j.end() || it->is_null()) return std::optional<MeshPeerNext>();
  const std::string field = path + ".next";
  if (!it->is_object()) return fieldError(field, "not an object or null");
  MeshPeerNext n;
  PLFM_ASSIGN_OR_RETURN(std::string key, member<std::string>(*it, "public_key", field));
  auto k = WgKey::parse(key);
  if (!k) return fieldError(field + ".public_key", k.error().message());
  n.public_key = *k;
  PLFM_ASSIGN_OR_RETURN(std::string endpoint, member<std::string>(*it, "endpoint", field));
  auto e = parseWgEndpoint(endpoint);
  if (!e) return fieldError(field + ".endpoint", e.error().message());
  n.endpoint = *e;
  return std::optional(n);
}

Result<MeshPeer> parsePeer(const json& j, const std::string& path, const MeshPlan& plan) {
  if (!j.is_object()) return fieldError(path, "not an object");
  MeshPeer p;
  PLFM_ASSIGN_OR_RETURN(p.node_id, member<std::string>(j, "node_id", path));
  if (!NodeId::parse(p.node_id)) return fieldError(path + ".node_id", "not a node id");
  PLFM_ASSIGN_OR_RETURN(int64_t number, integerIn(j, "node_number", path, 1, 65534));
  p.node_number = static_cast<uint32_t>(number);
  PLFM_ASSIGN_OR_RETURN(std::string key, member<std::string>(j, "public_key", path));
  auto k = WgKey::parse(key);
  if (!k) return fieldError(path + ".public_key", k.error().message());
  p.public_key = *k;
  PLFM_ASSIGN_OR_RETURN(std::string endpoint, member<std::string>(j, "endpoint", path));
  auto e = parseWgEndpoint(endpoint);
  if (!e) return fieldError(path + ".endpoint", e.error().message());
  p.endpoint = *e;
  auto ips = j.find("allowed_ips");
  if (ips == j.end() || !ips->is_array() || ips->empty() || ips->size() > kMaxAllowedIpsPerPeer) {
    return fieldError(path + ".allowed_ips", "must be an array of 1 to 16 IPv6 prefixes");
  }
  for (size_t i = 0; i < ips->size(); ++i) {
    const std::string field = path + ".allowed_ips[" + std::to_string(i) + "]";
    if (!(*ips)[i].is_string()) return fieldError(field, "not a string");
    auto prefix = parseIpv6Prefix((*ips)[i].get<std::string>());
    if (!prefix) return fieldError(field, prefix.error().message());
    if (!prefixContains(plan.cluster_prefix, *prefix)) {
      return fieldError(field, "outside the cluster prefix");
    }
    if (prefixesOverlap(*prefix, plan.self.prefix)) {
      return fieldError(field, "overlaps this node's own prefix");
    }
    p.allowed_ips.push_back(*prefix);
  }
  PLFM_ASSIGN_OR_RETURN(p.role, roleField(j, path, false));
  PLFM_ASSIGN_OR_RETURN(p.next, parsePeerNext(j, path));
  if (p.next && p.next->public_key == p.public_key) {
    return fieldError(path + ".next.public_key", "is the peer's current key");
  }
  return p;
}

// A peer that passed its own checks, against the ones kept before it.
Result<void> checkAgainst(const MeshPeer& p, const std::string& path, const MeshPlan& plan) {
  const auto keys = [](const MeshPeer& x) {
    std::vector<WgKey> k{x.public_key};
    if (x.next) k.push_back(x.next->public_key);
    return k;
  };
  const std::vector<WgKey> mine = keys(p);
  for (const auto& q : plan.peers) {
    for (const WgKey& theirs : keys(q)) {
      for (size_t i = 0; i < mine.size(); ++i) {
        if (mine[i] == theirs) {
          return fieldError(path + (i == 0 ? ".public_key" : ".next.public_key"),
                            "repeats a peer's");
        }
      }
    }
    if (q.node_number == p.node_number || q.node_id == p.node_id) {
      return fieldError(path + ".node_number", "repeats a peer's");
    }
    for (const auto& a : p.allowed_ips) {
      for (const auto& b : q.allowed_ips) {
        if (prefixesOverlap(a, b)) {
          return fieldError(path + ".allowed_ips", "overlaps another peer's");
        }
      }
    }
  }
  if (p.node_number == plan.self.node_number) {
    return fieldError(path + ".node_number", "is this node's");
  }
  return ok();
}

}  // namespace

Result<WgKey> WgKey::parse(std::string_view text) {
  const auto bad = [] {
    return Error(errc::kInvalidArgument, "not the base64 of a 32-byte WireGuard key");
  };
  if (text.size() != 44 || text[43] != '=') return bad();
  WgKey k;
  uint32_t acc = 0;
  int bits = 0;
  size_t out = 0;
  for (size_t i = 0; i < 43; ++i) {
    const size_t v = kBase64.find(text[i]);
    if (v == std::string_view::npos) return bad();
    if (i == 42 && (v & 3) != 0) return bad();  // not canonical
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      k.bytes_[out++] = static_cast<uint8_t>((acc >> bits) & 0xff);
    }
  }
  return k;
}

void WgKey::wipe() { explicit_bzero(bytes_.data(), bytes_.size()); }

std::string WgKey::base64() const {
  std::string s;
  s.reserve(44);
  uint32_t acc = 0;
  int bits = 0;
  for (uint8_t b : bytes_) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      s += kBase64[(acc >> bits) & 63];
    }
  }
  s += kBase64[(acc << (6 - bits)) & 63];
  s += '=';
  return s;
}

std::string ipv6Text(const in6_addr& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, &a, buf, sizeof buf);
  return buf;
}

bool prefixContains(const Ipv6Prefix& outer, const Ipv6Prefix& inner) {
  if (inner.length < outer.length) return false;
  for (int bit = 0; bit < outer.length; ++bit) {
    const auto mask = static_cast<uint8_t>(0x80 >> (bit % 8));
    if ((outer.address.s6_addr[bit / 8] & mask) != (inner.address.s6_addr[bit / 8] & mask)) {
      return false;
    }
  }
  return true;
}

bool prefixesOverlap(const Ipv6Prefix& a, const Ipv6Prefix& b) {
  return prefixContains(a, b) || prefixContains(b, a);
}

std::string WgEndpoint::str() const {
  const std::string p = std::to_string(port);
  return kind == Kind::kIpv6 ? "[" + host + "]:" + p : host + ":" + p;
}

Result<WgEndpoint> parseWgEndpoint(std::string_view text) {
  const auto bad = [](std::string_view why) {
    return Error(errc::kInvalidArgument,
                 "expected [v6]:port, v4:port or host:port: " + std::string(why));
  };
  if (text.empty() || text.size() > 270) return bad("empty or too long");
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad("no port");
  const std::string_view port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return bad("bad port");
  }
  const int n = std::stoi(std::string(port));
  if (n < 1 || n > 65535) return bad("the port is 1 to 65535");
  WgEndpoint e;
  e.port = static_cast<uint16_t>(n);
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    const std::string inner(host.substr(1, host.size() - 2));
    in6_addr a{};
    if (inner.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos ||
        inet_pton(AF_INET6, inner.c_str(), &a) != 1) {
      return bad("not an IPv6 address in brackets");
    }
    if (IN6_IS_ADDR_UNSPECIFIED(&a) || IN6_IS_ADDR_MULTICAST(&a)) return bad("not unicast");
    e.kind = WgEndpoint::Kind::kIpv6;
    e.host = ipv6Text(a);
    return e;
  }
  const std::string h(host);
  in_addr v4{};
  if (!h.empty() && h.find_first_not_of("0123456789.") == std::string::npos) {
    if (inet_pton(AF_INET, h.c_str(), &v4) != 1) return bad("not an IPv4 address");
    const uint32_t a = ntohl(v4.s_addr);
    if (a == 0 || (a >> 28) == 14 || a == 0xffffffffU) return bad("not unicast");
    char buf[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &v4, buf, sizeof buf);
    e.kind = WgEndpoint::Kind::kIpv4;
    e.host = buf;
    return e;
  }
  std::string lower = h;
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (!hostnameOk(lower)) return bad("not a host name");
  e.kind = WgEndpoint::Kind::kHostname;
  e.host = lower;
  return e;
}

Result<ParsedMeshPlan> parseMeshPlan(const json& section) {
  if (!section.is_object()) return fieldError("", "the mesh section is not an object");
  ParsedMeshPlan out;
  MeshPlan& plan = out.plan;
  PLFM_ASSIGN_OR_RETURN(plan.version, integerIn(section, "version", "", 0, INT64_MAX));
  PLFM_ASSIGN_OR_RETURN(plan.cluster_prefix, prefixField(section, "cluster_prefix", ""));
  if (plan.cluster_prefix.length < 1 || plan.cluster_prefix.length > 63) {
    return fieldError("cluster_prefix", "the length is 1 to 63");
  }
  auto self = section.find("self");
  if (self == section.end()) return fieldError("self", "missing");
  PLFM_ASSIGN_OR_RETURN(plan.self, parseSelf(*self, plan.cluster_prefix));
  auto peers = section.find("peers");
  if (peers == section.end() || !peers->is_array()) return fieldError("peers", "not an array");
  if (peers->size() > kMaxMeshPeers) return fieldError("peers", "more than 4096 peers");
  for (size_t i = 0; i < peers->size(); ++i) {
    const std::string path = "peers[" + std::to_string(i) + "]";
    auto p = parsePeer((*peers)[i], path, plan);
    if (p) {
      if (auto c = checkAgainst(*p, path, plan); !c) p = std::move(c).error();
    }
    if (!p) {
      out.skipped.push_back(std::move(p).error());
      continue;
    }
    plan.peers.push_back(std::move(*p));
  }
  std::stable_sort(plan.peers.begin(), plan.peers.end(), [](const MeshPeer& a, const MeshPeer& b) {
    return a.node_number < b.node_number;
  });
  return out;
}

MeshPlan peersSwitched(const MeshPlan& plan) {
  MeshPlan out = plan;
  for (auto& p : out.peers) {
    if (!p.next) continue;
    p.public_key = p.next->public_key;
    p.endpoint = p.next->endpoint;
    p.next.reset();
    p.persistent_keepalive = kRotationKeepaliveSeconds;
  }
  return out;
}

std::optional<int64_t> meshSectionVersion(const json& section) {
  if (!section.is_object()) return std::nullopt;
  auto v = integerIn(section, "version", "", 0, INT64_MAX);
  return v ? std::optional(*v) : std::nullopt;
}

json MeshPlan::toJson() const {
  json peers_json = json::array();
  for (const auto& p : peers) {
    json ips = json::array();
    for (const auto& a : p.allowed_ips) ips.push_back(a.str());
    json next = nullptr;
    if (p.next) {
      next = {{"public_key", p.next->public_key.base64()}, {"endpoint", p.next->endpoint.str()}};
    }
    peers_json.push_back({{"node_id", p.node_id},
                          {"node_number", p.node_number},
                          {"public_key", p.public_key.base64()},
                          {"endpoint", p.endpoint.str()},
                          {"allowed_ips", ips},
                          {"role", p.role},
                          {"next", next}});
  }
  const auto keyOrNull = [](const std::optional<WgKey>& k) {
    return k ? json(k->base64()) : json(nullptr);
  };
  return {
      {"version", version},
      {"cluster_prefix", cluster_prefix.str()},
      {"self",
       {{"node_number", self.node_number},
        {"prefix", self.prefix.str()},
        {"address", ipv6Text(self.address)},
        {"listen_port", self.listen_port},
        {"role", self.role},
        {"public_key", keyOrNull(self.public_key)},
        {"next_public_key", keyOrNull(self.next_public_key)},
        {"next_listen_port", self.next_listen_port ? json(*self.next_listen_port) : json(nullptr)},
        {"rotate", self.rotate}}},
      {"peers", peers_json}};
}

}  // namespace plfm::netdev
