// Internal to the projections (projections.cc, projections_*.cc): the
// payload reader every applier uses, and the appliers of the node and
// instance events, which live in their own file. projections.cc keeps the
// one table from event type to applier. See docs/specs/state/event-types.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "event_store.h"
#include "plfm/core/json.h"
#include "plfm/events/events.h"
#include "plfm/pg/pg.h"

namespace plfm::cp::projection {

// Reads an event's payload; a missing or mistyped field is a bug in whoever
// wrote the event, reported with the event's seq.
struct Payload {
  const StoredEvent& e;
  json::Json j;

  // The payload as its typed event (libs/events): every field checked.
  template <class T>
  [[nodiscard]] Result<T> as() const {
    auto r = events::fromPayload<T>(j);
    if (!r) return std::move(r.error()).context("event " + std::to_string(e.seq));
    return r;
  }

  // Field by field, for the instance.allocated applier, which reads the
  // payloads of events written before its `slot` existed.
  [[nodiscard]] Result<std::string> str(std::string_view field) const;
  [[nodiscard]] Result<int64_t> integer(std::string_view field) const;
  // A string or null field: nullopt for null.
  [[nodiscard]] Result<std::optional<std::string>> optStr(std::string_view field) const;
  // The same, and nullopt also when the field is absent (added in a later
  // version of the event).
  [[nodiscard]] Result<std::optional<std::string>> optStrOrMissing(std::string_view field) const;
};

using ApplyFn = Result<void> (*)(pg::Transaction&, const Payload&);

// A view write whose result nobody reads. Under catchUp() it is deferred to
// the next statement's round trip (pg::BatchedWrites): a read of the views
// after it still sees it, and its error comes back from that next statement
// or the commit. It is prepared once per connection: a write by a key.
[[nodiscard]] Result<void> exec(pg::Transaction& tx, std::string_view sql,
                                const pg::Params& params);

// Nodes (projections_sched.cc).
[[nodiscard]] Result<void> nodeEnrolled(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> nodeStateChanged(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> nodeRemoved(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> nodeSchedulingChanged(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> nodeMeshKeyRotationRequested(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> nodeMeshKeyStaged(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> nodeMeshKeyRotated(pg::Transaction& tx, const Payload& p);

// Instances (projections_sched.cc).
[[nodiscard]] Result<void> instanceAllocated(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> instanceRestartScheduled(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> instanceDrainRequested(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> instanceDrainReleased(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> instanceStopRequested(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> instanceLost(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> instanceStatusReported(pg::Transaction& tx, const Payload& p);

// Routes and the edge feed's cursor (projections_routes.cc).
[[nodiscard]] Result<void> routeCreated(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> routeUpdated(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> routeDeleted(pg::Transaction& tx, const Payload& p);
// After any instance event: advances the edge cursor when a route targets
// the instance's env and process type (its backend may have changed).
[[nodiscard]] Result<void> touchEdgeForInstance(pg::Transaction& tx, const StoredEvent& e);
// The services feed's version (projections_services.cc). An instance serves
// (kServesSql, on instances_view i) when it is placed, meant to run, not
// lost, healthy and has an address.
inline constexpr std::string_view kServesSql =
    "i.node_id IS NOT NULL AND coalesce(i.address, '') <> '' AND i.desired_state = 'run' AND "
    "NOT i.lost AND i.current_state = 'healthy'";
[[nodiscard]] Result<bool> instanceServes(pg::Transaction& tx, const StoredEvent& e);
[[nodiscard]] Result<void> bumpServicesVersion(pg::Transaction& tx, int64_t seq);
// Secrets (projections_secrets.cc).
[[nodiscard]] Result<void> secretsVersionCreated(pg::Transaction& tx, const Payload& p);

// Volumes (projections_volumes.cc).
[[nodiscard]] Result<void> volumeCreated(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> volumePlaced(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> volumeExtendRequested(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> volumeDeleteRequested(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> volumeStatusReported(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> volumeDeleted(pg::Transaction& tx, const Payload& p);

// Volume snapshots and ops (projections_volume_ops.cc).
[[nodiscard]] Result<void> volumeSnapshotRequested(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> volumeSnapshotTaken(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> volumeSnapshotFailed(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> volumeBackedUp(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> volumeSnapshotExpired(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> volumeRestoreRequested(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> volumeRestored(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> volumeVerifyRequested(pg::Transaction& tx, const Payload& p);
[[nodiscard]] Result<void> volumeVerified(pg::Transaction& tx, const Payload& p);

// A run of consecutive instance.allocated events [begin, end) in one
// statement, exactly as instanceAllocated would apply them one by one: the
// scheduler appends placements by the thousand.
[[nodiscard]] Result<void> instancesAllocated(pg::Transaction& tx,
                                              const std::vector<StoredEvent>& events, size_t begin,
                                              size_t end);

}  // namespace plfm::cp::projection
