// Appliers of the volume events (docs/specs/state/event-types.md) into
// volumes_view, the state machine of docs/specs/runtime/volume-mounts.md
// ("Storage"): pending -> placed -> ready | failed; deleting -> deleted.
// Each applier ignores an event whose aggregate_seq is not above the row's
// version, so a replay changes nothing. The events that change a node's
// plan (placed, extend_requested, delete_requested, and deleted of a placed
// volume: it leaves NodePlan.volumes) set plan_seq, which the node's plan
// version includes (node_plan.cc).
#include "plfm/core/log.h"
#include "projection_appliers.h"

namespace plfm::cp::projection {

namespace {

// The columns every update sets: the row's version and time.
constexpr std::string_view kTouch = "version = $2, updated_at = $3";

// UPDATE volumes_view SET <set>, version, updated_at for the event's volume,
// unless the row already holds this event or a later one. `set` numbers
// its own parameters from $4; `extra` are their values.
Result<void> updateVolume(pg::Transaction& tx, const Payload& p, const std::string& volume_id,
                          std::string_view set, pg::Params extra = {}) {
  pg::Params params{volume_id, p.e.aggregate_seq, p.e.occurred_at};
  for (auto& v : extra) params.push_back(std::move(v));
  return exec(tx,
              "UPDATE volumes_view SET " + std::string(set) + ", " + std::string(kTouch) +
                  " WHERE volume_id = $1 AND version < $2",
              params);
}

}  // namespace

Result<void> volumeCreated(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::VolumeCreated>());
  // The writers (scheduler, API) check in their transaction that no live
  // volume of the env has this full name; a conflict here (the partial
  // unique index) would be their bug, logged rather than stopping the views.
  PLFM_ASSIGN_OR_RETURN(
      auto rs, tx.exec("INSERT INTO volumes_view (volume_id, org_id, app_id, env_id, "
                       "process_type, name, slot, full_name, size_bytes, state, version, "
                       "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
                       "'pending', $10, $11, $11) ON CONFLICT DO NOTHING RETURNING 1",
                       {ev.volume_id, ev.org_id, ev.app_id, ev.env_id, ev.process_type, ev.name,
                        ev.slot, ev.full_name, ev.size_bytes, p.e.aggregate_seq, p.e.occurred_at}));
  if (rs.rows() == 0) {
    PLFM_ASSIGN_OR_RETURN(
        auto existing, tx.exec("SELECT 1 FROM volumes_view WHERE volume_id = $1", {ev.volume_id}));
    if (existing.rows() == 0) {
      log::error("volume.created names a live volume that already exists; no row for it",
                 {{"seq", p.e.seq},
                  {"volume_id", ev.volume_id},
                  {"env_id", ev.env_id},
                  {"full_name", ev.full_name}});
    }
  }
  return ok();
}

// Only a pending volume takes a node: placement is once (restore and fork
// make new volumes).
Result<void> volumePlaced(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::VolumePlaced>());
  return updateVolume(tx, p, ev.volume_id,
                      "node_id = CASE WHEN state = 'pending' THEN $4 ELSE node_id END, "
                      "state = CASE WHEN state = 'pending' THEN 'placed' ELSE state END, "
                      "plan_seq = $5",
                      {ev.node_id, p.e.seq});
}

// Never shrinks, whatever the event says.
Result<void> volumeExtendRequested(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::VolumeExtendRequested>());
  return updateVolume(tx, p, ev.volume_id, "size_bytes = GREATEST(size_bytes, $4), plan_seq = $5",
                      {ev.size_bytes, p.e.seq});
}

Result<void> volumeDeleteRequested(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::VolumeDeleteRequested>());
  return updateVolume(tx, p, ev.volume_id,
                      "state = CASE WHEN state = 'deleted' THEN state ELSE 'deleting' END, "
                      "plan_seq = $4",
                      {p.e.seq});
}

// A report never takes a volume out of deleting or deleted.
Result<void> volumeStatusReported(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::VolumeStatusReported>());
  return updateVolume(tx, p, ev.volume_id,
                      "state = CASE WHEN state IN ('placed', 'ready', 'failed') THEN $4 ELSE "
                      "state END, reported_size_bytes = $5, reason = $6",
                      {ev.state, ev.size_bytes, ev.reason});
}

Result<void> volumeDeleted(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::VolumeDeleted>());
  return updateVolume(tx, p, ev.volume_id,
                      "state = 'deleted', plan_seq = CASE WHEN node_id IS NULL THEN plan_seq "
                      "ELSE $4 END",
                      {p.e.seq});
}

}  // namespace plfm::cp::projection
