#include "netdev/mesh_status.h"

#include <algorithm>
#include <map>
#include <set>

#include "plfm/core/clock.h"

namespace plfm::netdev {
using nlohmann::json;

MeshStatus meshStatus(const std::string& interface, const std::optional<MeshPlan>& plan,
                      const std::optional<WgDump>& dump, const std::vector<MeshRoute>& routes,
                      int64_t now_unix) {
  MeshStatus s;
  s.interface = interface;
  s.up = dump.has_value();
  std::set<std::string> routed;
  for (const auto& r : routes) {
    if (!r.kernel) routed.insert(r.dst.str());
  }
  std::map<WgKey, const WgDumpPeer*> live;
  if (dump) {
    s.listen_port = dump->listen_port;
    if (dump->public_key) s.public_key = dump->public_key->base64();
    for (const auto& p : dump->peers) live[p.public_key] = &p;
  }
  const auto fill = [&](MeshPeerStatus& out, const WgDumpPeer& p) {
    out.configured = true;
    if (p.endpoint) out.endpoint = p.endpoint->str();
    out.allowed_ips.clear();
    for (const auto& a : p.allowed_ips) out.allowed_ips.push_back(a.str());
    if (p.latest_handshake > 0) {
      out.handshake_age_seconds = std::max<int64_t>(0, now_unix - p.latest_handshake);
    }
    out.rx_bytes = p.rx_bytes;
    out.tx_bytes = p.tx_bytes;
  };
  if (plan) {
    s.plan_version = plan->version;
    // A peer that rotates is configured with its staged key.
    for (const auto& p : peersSwitched(*plan).peers) {
      MeshPeerStatus out;
      out.node_id = p.node_id;
      out.node_number = p.node_number;
      out.public_key = p.public_key.base64();
      out.endpoint = p.endpoint.str();
      for (const auto& a : p.allowed_ips) out.allowed_ips.push_back(a.str());
      if (auto it = live.find(p.public_key); it != live.end()) {
        fill(out, *it->second);
        live.erase(it);
      }
      s.peers.push_back(std::move(out));
    }
  }
  for (const auto& [key, p] : live) {  // std::map: by key
    MeshPeerStatus out;
    out.public_key = key.base64();
    fill(out, *p);
    s.peers.push_back(std::move(out));
  }
  for (auto& p : s.peers) {
    p.route = !p.allowed_ips.empty() &&
              std::all_of(p.allowed_ips.begin(), p.allowed_ips.end(),
                          [&](const std::string& a) { return routed.count(a) != 0; });
  }
  return s;
}

MeshRotationStatus rotationStatus(const MeshRotation& r) {
  return {r.retire_interface.empty() ? r.phase : "retiring", r.interface, r.since};
}

json toJson(const MeshStatus& s) {
  json peers = json::array();
  for (const auto& p : s.peers) {
    peers.push_back({{"node_id", p.node_id},
                     {"node_number", p.node_number},
                     {"public_key", p.public_key},
                     {"endpoint", p.endpoint},
                     {"allowed_ips", p.allowed_ips},
                     {"configured", p.configured},
                     {"handshake_age_seconds",
                      p.handshake_age_seconds ? json(*p.handshake_age_seconds) : json(nullptr)},
                     {"rx_bytes", p.rx_bytes},
                     {"tx_bytes", p.tx_bytes},
                     {"route", p.route}});
  }
  json rotation = nullptr;
  if (s.rotation) {
    rotation = {{"phase", s.rotation->phase},
                {"interface", s.rotation->interface},
                {"since", toRfc3339(Clock::WallTime(std::chrono::seconds(s.rotation->since)))}};
  }
  return {{"interface", s.interface},
          {"up", s.up},
          {"listen_port", s.listen_port},
          {"public_key", s.public_key},
          {"plan_version", s.plan_version},
          {"rotation", rotation},
          {"peers", peers}};
}

std::string toText(const MeshStatus& s) {
  std::string out = "interface " + s.interface + (s.up ? " up" : " absent");
  if (s.up) {
    out += ", port " + std::to_string(s.listen_port) + ", public key " +
           (s.public_key.empty() ? "(none)" : s.public_key);
  }
  out += s.plan_version < 0 ? ", no plan applied yet\n"
                            : ", plan version " + std::to_string(s.plan_version) + "\n";
  if (s.rotation) {
    out += "rotation: " + s.rotation->phase + ", new key on " + s.rotation->interface + ", since " +
           toRfc3339(Clock::WallTime(std::chrono::seconds(s.rotation->since))) + "\n";
  }
  if (s.peers.empty()) return out + "no peers\n";
  std::vector<std::vector<std::string>> rows = {
      {"NODE", "ENDPOINT", "ALLOWED IPS", "HANDSHAKE", "RX", "TX", "ROUTE"}};
  for (const auto& p : s.peers) {
    std::string ips;
    for (const auto& a : p.allowed_ips) ips += (ips.empty() ? "" : ",") + a;
    const std::string handshake = !p.configured ? "not in wg"
                                  : p.handshake_age_seconds
                                      ? std::to_string(*p.handshake_age_seconds) + "s ago"
                                      : "never";
    rows.push_back({p.node_id.empty() ? "(key " + p.public_key.substr(0, 8) + "...)" : p.node_id,
                    p.endpoint.empty() ? "(none)" : p.endpoint, ips, handshake,
                    std::to_string(p.rx_bytes), std::to_string(p.tx_bytes),
                    p.route ? "yes" : "no"});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line.append(width[i] - r[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace plfm::netdev
