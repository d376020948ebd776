#include "mesh_plan.h"

#include <algorithm>
#include <cctype>
#include <vector>

#include "plfm/core/log.h"
#include "plfm/reconcile/ipv6.h"

namespace plfm::cp {
namespace {

using json::Json;

// A dotted-quad IPv4 unicast address (not 0.0.0.0, multicast, class E or
// broadcast: nothing a peer could be reached at).
bool ipv4Literal(std::string_view s) {
  int parts = 0;
  int first = -1;
  while (true) {
    size_t digits = 0;
    int value = 0;
    while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits])) != 0) {
      value = value * 10 + (s[digits] - '0');
      if (++digits > 3) return false;
    }
    if (digits == 0 || value > 255 || (digits > 1 && s[0] == '0')) return false;
    if (++parts == 1) first = value;
    s.remove_prefix(digits);
    if (s.empty()) return parts == 4 && first != 0 && first < 224;
    if (s[0] != '.' || parts == 4) return false;
    s.remove_prefix(1);
  }
}

// A DNS host name: labels of letters, digits and '-' (not first or last),
// 1 to 63 each, at most 253 in all, the last one not all digits.
bool hostName(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t label = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '.') {
      if (label == 0 || s[i - 1] == '-') return false;
      label = 0;
      continue;
    }
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) != 0 || (c == '-' && label > 0);
    if (!ok || ++label > 63) return false;
  }
  if (label == 0 || s.back() == '-') return false;
  // A numeric last label is a malformed address ("192.0.2.01"), not a name.
  const std::string_view last = s.substr(s.size() - label);
  return !std::all_of(last.begin(), last.end(),
                      [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; });
}

// The subnet index of `prefix` (a /64) inside `cluster`: its node number.
std::uint64_t nodeNumber(const reconcile::Ipv6Prefix& cluster, const reconcile::Ipv6& prefix) {
  const int len = std::clamp(cluster.length, 0, 64);
  const std::uint64_t host_bits = len == 0 ? ~std::uint64_t{0} : (~std::uint64_t{0} >> len);
  return prefix.hi & host_bits;
}

struct Member {
  std::uint64_t number = 0;
  std::string node_id;
  std::string prefix;
  std::string public_key;
  std::string endpoint;
  std::string role;
  Json next;  // {"public_key", "endpoint"} while a key is staged, else null
};

// An IPv6 unicast address: not :: and not multicast (ff00::/8).
std::optional<reconcile::Ipv6> ipv6Unicast(std::string_view s) {
  auto a = reconcile::parseIpv6(s);
  if (!a || (a->hi == 0 && a->lo == 0) || (a->hi >> 56) == 0xff) return std::nullopt;
  return *a;
}

}  // namespace

bool meshEndpointHost(std::string_view host) {
  return ipv6Unicast(host).has_value() || ipv4Literal(host) || hostName(host);
}

std::optional<std::string> meshEndpoint(std::string_view host, int64_t port) {
  if (port < 1 || port > 65535) return std::nullopt;
  const std::string p = ":" + std::to_string(port);
  if (auto a = ipv6Unicast(host)) return "[" + reconcile::formatIpv6(*a) + "]" + p;
  if (ipv4Literal(host) || hostName(host)) return std::string(host) + p;
  return std::nullopt;
}

bool meshPublicKey(std::string_view key) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (key.size() != 44 || key.back() != '=') return false;
  for (char c : key.substr(0, 43)) {
    if (value(c) < 0) return false;
  }
  // 43 characters carry 258 bits; the last two must be zero.
  return (value(key[42]) & 3) == 0;
}

Result<Json> meshSection(pg::Transaction& tx, const std::string& node_id,
                         const std::string& cluster_prefix) {
  PLFM_ASSIGN_OR_RETURN(auto cluster, reconcile::parseIpv6Prefix(cluster_prefix));
  PLFM_ASSIGN_OR_RETURN(
      auto rs, tx.exec("SELECT node_id, ipv6_prefix, mesh_port, role, wireguard_public_key, "
                       "underlay_address, state, removed_at IS NOT NULL, " +
                       std::string(kMeshVersionSql) +
                       ", next_wireguard_public_key, next_mesh_port, mesh_rotation_requested "
                       "FROM nodes_view"));
  Json self;
  std::vector<Member> peers;
  int64_t version = 0;
  for (int i = 0; i < rs.rows(); ++i) {
    version = rs.int64(i, 8).value_or(0);
    const std::string id(rs.text(i, 0));
    auto prefix = reconcile::parseIpv6Prefix(rs.text(i, 1));
    if (!prefix || prefix->length != 64) continue;  // never enrolled with a /64: not a member
    const std::uint64_t number = nodeNumber(cluster, prefix->address);
    const int64_t port = rs.int64(i, 2).value_or(kDefaultMeshPort);
    // A staged key (mesh.md, "Contract for key rotation"): its port is
    // the node's other interface's.
    const bool staged = !rs.isNull(i, 9) && !rs.isNull(i, 10);
    const int64_t next_port = staged ? rs.int64(i, 10).value_or(0) : 0;
    if (id == node_id) {
      self = {{"node_number", number},
              {"prefix", reconcile::formatIpv6Prefix(*prefix)},
              {"address", reconcile::formatIpv6({prefix->address.hi, 1})},
              {"listen_port", port},
              {"role", std::string(rs.text(i, 3))},
              {"public_key", std::string(rs.text(i, 4))},
              {"next_public_key", staged ? Json(std::string(rs.text(i, 9))) : Json(nullptr)},
              {"next_listen_port", staged ? Json(next_port) : Json(nullptr)},
              {"rotate", rs.text(i, 11) == "t"}};
      continue;
    }
    // Members: enrolled, not removed, not down, with a key. Unreachable
    // nodes stay: they may come back.
    if (rs.text(i, 7) == "t" || rs.text(i, 6) == "down" || rs.text(i, 4).empty()) continue;
    auto endpoint = meshEndpoint(rs.text(i, 5), port);
    if (!endpoint) {
      log::warn("node plan leaves out a mesh peer whose underlay address is not an address",
                {{"node_id", node_id}, {"peer", id}});
      continue;
    }
    Json next = nullptr;
    if (staged) {
      auto next_endpoint = meshEndpoint(rs.text(i, 5), next_port);
      if (next_endpoint) {
        next = {{"public_key", std::string(rs.text(i, 9))}, {"endpoint", *next_endpoint}};
      }
    }
    peers.push_back(Member{number, id, reconcile::formatIpv6Prefix(*prefix),
                           std::string(rs.text(i, 4)), std::move(*endpoint),
                           std::string(rs.text(i, 3)), std::move(next)});
  }
  if (self.is_null()) {
    return Error(plfm::errc::kFailedPrecondition, "node " + node_id + " has no IPv6 /64")
        .with("node_id", node_id);
  }
  std::sort(peers.begin(), peers.end(), [](const Member& a, const Member& b) {
    return std::tie(a.number, a.node_id) < std::tie(b.number, b.node_id);
  });
  Json list = Json::array();
  for (Member& m : peers) {
    list.push_back({{"node_id", std::move(m.node_id)},
                    {"node_number", m.number},
                    {"public_key", std::move(m.public_key)},
                    {"endpoint", std::move(m.endpoint)},
                    {"allowed_ips", Json::array({std::move(m.prefix)})},
                    {"role", std::move(m.role)},
                    {"next", std::move(m.next)}});
  }
  return Json{{"version", version},
              {"cluster_prefix", reconcile::formatIpv6Prefix(cluster)},
              {"self", std::move(self)},
              {"peers", std::move(list)}};
}

}  // namespace plfm::cp
