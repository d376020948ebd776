// The NodePlan's `mesh` section (docs/specs/networking/mesh.md, "The NodePlan
// mesh section"): the node itself (its number, /64, host address, WireGuard
// port and role) and every other mesh member as a WireGuard peer, built from
// nodes_view. Its version is the seq of the last event that changed any
// node's mesh membership or attributes (max nodes_view.mesh_seq), and every
// plan's version is at least that, so a join or a leave wakes every agent's
// long-poll (PlanFeed, node_plan.h).
//
//   PLFM_ASSIGN_OR_RETURN(json::Json mesh, meshSection(tx, node_id, "fd7a:5c00::/48"));
//
// A peer's endpoint is rendered only from an underlay address that is an IPv6
// or IPv4 literal or a host name (meshEndpoint); enrollment refuses anything
// else, and a row that is not one (written before that check) is left out.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "plfm/core/json.h"
#include "plfm/core/result.h"
#include "plfm/pg/pg.h"

namespace plfm::cp {

// A node's mesh facts at enrollment: its WireGuard UDP port on the underlay
// and whether it runs instances (worker) or only the ingress (edge).
inline constexpr int64_t kDefaultMeshPort = 51820;
inline constexpr std::string_view kRoleWorker = "worker";
inline constexpr std::string_view kRoleEdge = "edge";

// True when `host` is an IPv6 or dotted-quad IPv4 unicast address or a DNS
// host name (labels of letters, digits and '-', at most 253 characters).
[[nodiscard]] bool meshEndpointHost(std::string_view host);

// "[2001:db8::1]:51820", "192.0.2.1:51820", "node-b.example:51820"; nullopt
// when `host` is none of those or `port` is outside 1..65535.
[[nodiscard]] std::optional<std::string> meshEndpoint(std::string_view host, int64_t port);

// True when `key` is a WireGuard public key in canonical standard base64:
// 32 bytes, so 43 characters of the alphabet and '=', the last character's
// two unused low bits zero. A non-canonical spelling decodes to the same key
// as another string, so two different strings could name one key (and
// `wg` would print neither back); enrollment and the mesh-key route refuse it.
[[nodiscard]] bool meshPublicKey(std::string_view key);
inline constexpr std::string_view kMeshKeyRule =
    "must be a WireGuard public key in canonical base64 (44 characters for 32 bytes, as "
    "`wg pubkey` prints it)";

// The mesh version: max(nodes_view.mesh_seq), 0 with no nodes.
inline constexpr std::string_view kMeshVersionSql =
    "(SELECT coalesce(max(mesh_seq), 0) FROM nodes_view)";

// The section for node `node_id` (which must exist), read in `tx`.
// `cluster_prefix` is the control plane's cluster_ipv6_prefix: node numbers
// are the /64's subnet index inside it.
[[nodiscard]] Result<json::Json> meshSection(pg::Transaction& tx, const std::string& node_id,
                                             const std::string& cluster_prefix);

}  // namespace plfm::cp
