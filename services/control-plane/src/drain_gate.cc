#include "drain_gate.h"

#include <algorithm>
#include <unordered_map>

#include "plfm/core/json.h"
#include "plfm/core/log.h"
#include "plfm/net/proxy_protocol.h"
#include "stored_release.h"

namespace plfm::cp::drain {
namespace {

std::string seconds(int64_t ms) {
  const int64_t tenths = (ms + 50) / 100;
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + " s";
}

std::string plural(int64_t n, const std::string& one, const std::string& many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

constexpr std::string_view kEpochMs = "(extract(epoch FROM {}) * 1000)::bigint";

std::string epochMs(std::string_view col) {
  std::string s(kEpochMs);
  s.replace(s.find("{}"), 2, col);
  return s;
}

// The address as inet_ntop writes it, which is how ingresses report it.
std::string canonicalAddress(std::string_view a) {
  if (a.empty()) return "";
  const bool v6 = a.find(':') != std::string_view::npos;
  auto ep = net::IpEndpoint::parse((v6 ? "[" + std::string(a) + "]" : std::string(a)) + ":1");
  return ep ? ep->ip() : std::string(a);
}

}  // namespace

Decision decide(int64_t now_ms, int64_t edge_cursor, const std::vector<Gated>& gated,
                const std::vector<EdgeReport>& reports, const Options& options) {
  std::vector<const EdgeReport*> live;
  for (const auto& r : reports) {
    if (now_ms - r.reported_ms <= options.live_window_ms) live.push_back(&r);
  }
  std::sort(live.begin(), live.end(),
            [](const EdgeReport* a, const EdgeReport* b) { return a->name < b->name; });
  Decision d;
  for (const auto& g : gated) {
    const int64_t waited = std::max<int64_t>(0, now_ms - g.requested_ms);
    Release rel{g.instance_id, "", waited, 0, {}};
    if (!g.serving || g.address.empty()) {
      rel.reason = "it was not serving; stopped at once";
      d.releases.push_back(std::move(rel));
      continue;
    }
    if (waited < options.grace_ms) {
      ++d.waiting;
      continue;
    }
    const int64_t need = std::min(g.drain_seq, edge_cursor);
    size_t acked = 0;
    for (const EdgeReport* r : live) {
      if (r->cursor >= need) {
        ++acked;
        if (auto it = r->active.find(g.address); it != r->active.end()) {
          rel.open_connections += it->second;
        }
      } else {
        rel.unacknowledged.push_back(r->name);
      }
    }
    const bool ack_late = !rel.unacknowledged.empty();
    if (ack_late && waited < options.ack_timeout_ms) {
      ++d.waiting;
      continue;
    }
    const bool timed_out = waited >= g.timeout_ms;
    if (rel.open_connections > 0 && !timed_out) {
      ++d.waiting;
      continue;
    }
    if (live.empty()) {
      rel.reason = "drained after " + seconds(waited) + ": no ingress is connected";
    } else if (rel.open_connections > 0) {
      rel.reason = "drain_timeout of " + seconds(g.timeout_ms) + " reached with " +
                   plural(rel.open_connections, "connection", "connections") + " still open";
    } else {
      rel.reason = "drained after " + seconds(waited) + ": " +
                   plural(static_cast<int64_t>(acked), "ingress", "ingresses") +
                   " stopped sending it connections and none are open";
    }
    if (ack_late) {
      rel.reason += "; " + std::string(rel.unacknowledged.size() == 1 ? "ingress " : "ingresses ") +
                    joined(rel.unacknowledged) + " did not apply the edge config within " +
                    seconds(options.ack_timeout_ms) + ", stopping anyway";
    }
    d.releases.push_back(std::move(rel));
  }
  return d;
}

Result<GateInput> loadGate(pg::Connection& conn) {
  GateInput in;
  PLFM_ASSIGN_OR_RETURN(auto tx, pg::Transaction::begin(conn, pg::Isolation::kRepeatableRead));
  PLFM_TRY(tx.exec("SET TRANSACTION READ ONLY"));
  PLFM_ASSIGN_OR_RETURN(
      auto rs,
      tx.exec(
          "SELECT i.instance_id, coalesce(i.address, ''), i.node_id IS NOT NULL AND NOT "
          "i.lost AND i.current_state IN ('running', 'healthy', 'unhealthy', 'draining'), "
          "i.drain_seq, coalesce(" +
          epochMs("i.drain_requested_at") +
          ", 0), i.release_id, r.manifest, i.org_id FROM instances_view i JOIN releases_view r ON "
          "r.release_id = i.release_id WHERE i.desired_state = 'drain' AND NOT "
          "i.drain_released AND i.current_state <> 'stopped' ORDER BY i.instance_id"));
  if (rs.rows() == 0) {
    PLFM_TRY(tx.commit());
    return in;
  }
  PLFM_ASSIGN_OR_RETURN(auto head, tx.exec("SELECT coalesce((SELECT cursor FROM edge_feed_view "
                                           "WHERE id = 1), 0)"));
  PLFM_ASSIGN_OR_RETURN(auto reports,
                        tx.exec("SELECT name, cursor, draining::text, " + epochMs("reported_at") +
                                " FROM edge_reports ORDER BY name"));
  PLFM_TRY(tx.commit());
  PLFM_ASSIGN_OR_RETURN(in.edge_cursor, head.int64(0, 0));
  // Each release's drain timeout, read once per release.
  std::unordered_map<std::string, int64_t> timeouts;
  for (int i = 0; i < rs.rows(); ++i) {
    Gated g;
    g.instance_id = std::string(rs.text(i, 0));
    g.address = canonicalAddress(rs.text(i, 1));
    g.org_id = std::string(rs.text(i, 7));
    g.serving = rs.boolean(i, 2).value_or(false);
    g.drain_seq = rs.int64(i, 3).value_or(0);
    g.requested_ms = rs.int64(i, 4).value_or(0);
    const std::string release(rs.text(i, 5));
    auto t = timeouts.find(release);
    if (t == timeouts.end()) {
      auto m = readStoredManifest(rs.text(i, 6));
      // A release that cannot be read drains with the default timeout.
      t = timeouts.emplace(release, m ? m->deploy.drain_timeout_ms : Gated{}.timeout_ms).first;
    }
    g.timeout_ms = t->second;
    in.gated.push_back(std::move(g));
  }
  for (int i = 0; i < reports.rows(); ++i) {
    EdgeReport r;
    r.name = std::string(reports.text(i, 0));
    r.cursor = reports.int64(i, 1).value_or(0);
    r.reported_ms = reports.int64(i, 3).value_or(0);
    // Written by PUT /v1/edge/status after validation; read defensively.
    auto draining = json::parse(reports.text(i, 2));
    if (draining && draining->is_array()) {
      for (const auto& b : *draining) {
        auto address = json::getString(b, "address", "draining");
        auto active = json::getInt(b, "active", "draining");
        if (address && active) r.active[*address] += std::max<int64_t>(0, *active);
      }
    }
    in.reports.push_back(std::move(r));
  }
  return in;
}

events::InstanceDrainReleased releasedEvent(const Release& r) {
  return events::InstanceDrainReleased{.instance_id = r.instance_id,
                                       .reason = r.reason,
                                       .waited_ms = r.waited_ms,
                                       .open_connections = r.open_connections,
                                       .unacknowledged = r.unacknowledged};
}

}  // namespace plfm::cp::drain
