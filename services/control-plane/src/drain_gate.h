// The drain gate (docs/specs/scheduler/drain.md). An instance the reconciler
// drains (instance.drain_requested) keeps running, and its node plan keeps
// saying "run", until the gate releases it (instance.drain_released):
//
//   1. every live ingress has applied an edge config without the instance
//      as a backend (its reported cursor reached the drain; PUT
//      /v1/edge/status), or the acknowledgement timeout ran out: the stop
//      goes on and the event names the ingresses that did not answer;
//   2. the connections those ingresses still splice to it have closed, or
//      the release's [deploy] drain_timeout ran out;
//   3. at least the drain grace has passed since the drain was asked for.
//
// An instance that does not serve (not running, no address) goes at once.
// decide() is pure (tests drive it with made-up reports and times); the
// Scheduler loads its input with loadGate() and appends what it decides.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "plfm/core/result.h"
#include "plfm/events/events.h"
#include "plfm/pg/pg.h"

namespace plfm::cp::drain {

// One ingress's last report.
struct EdgeReport {
  std::string name;  // its edge token's name
  int64_t cursor = 0;
  int64_t reported_ms = 0;
  // Open connections per draining backend address (all ports summed).
  std::map<std::string, int64_t> active;
};

// An instance waiting at the gate.
struct Gated {
  std::string instance_id;
  std::string org_id;
  std::string address;          // its /128, "" when it has none
  bool serving = true;          // running, healthy, unhealthy or draining on its node
  int64_t drain_seq = 0;        // the seq of its instance.drain_requested
  int64_t requested_ms = 0;     // when that was
  int64_t timeout_ms = 30'000;  // its release's [deploy] drain_timeout
};

struct Options {
  int64_t ack_timeout_ms = 10'000;  // wait this long for every ingress to apply
  int64_t live_window_ms = 30'000;  // an ingress that reported within this is live
  int64_t grace_ms = 1'000;         // never release sooner than this after the request
};

struct Release {
  std::string instance_id;
  std::string reason;
  int64_t waited_ms = 0;
  int64_t open_connections = 0;
  std::vector<std::string> unacknowledged;  // sorted
};

struct Decision {
  std::vector<Release> releases;  // in the order of the input
  size_t waiting = 0;             // gated instances left at the gate
};

// `edge_cursor` is the edge feed's cursor now. An ingress has applied a
// config without the instance once its cursor is at least the smaller of the
// drain's seq and `edge_cursor` (a drain of an instance no route targets does
// not move the cursor, and every config since is without it).
[[nodiscard]] Decision decide(int64_t now_ms, int64_t edge_cursor, const std::vector<Gated>& gated,
                              const std::vector<EdgeReport>& reports, const Options& options);

struct GateInput {
  int64_t edge_cursor = 0;
  std::vector<Gated> gated;
  std::vector<EdgeReport> reports;
};

// Reads the gated instances (with their releases' drain timeouts), the edge
// reports and the edge cursor in one snapshot.
[[nodiscard]] Result<GateInput> loadGate(pg::Connection& conn);

// The instance.drain_released event of a release.
[[nodiscard]] events::InstanceDrainReleased releasedEvent(const Release& r);

}  // namespace plfm::cp::drain
