// The scheduler's two translations: the views into the reconciler's Input
// (loadState), and the reconciler's Plan into events (planEvents). The
// Scheduler (scheduler.h) runs them around plfm::reconcile::reconcile();
// the end-to-end benchmark runs the same code.
//
// loadState reads every view it needs in one REPEATABLE READ snapshot,
// together with the projection checkpoint that snapshot reflects, so the
// Input is consistent and the caller knows which events it covers.
// See docs/specs/scheduler/scheduler.md for the mapping, column by column.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "event_store.h"
#include "plfm/core/result.h"
#include "plfm/pg/pg.h"
#include "plfm/reconcile/types.h"

namespace plfm::cp::sched {

struct EnvInfo {
  std::string org_id;
  std::string app_id;
};

// One of a process's [[volumes]] in its target release's manifest.
struct ManifestVolume {
  std::string name;  // "uploads"
  int64_t size_bytes = 0;
};

// A live volume (volumes_view, state not deleted).
struct LiveVolume {
  std::string volume_id;
  std::string node_id;  // empty while pending
};

struct LoadedState {
  int64_t checkpoint = 0;  // the views' checkpoint the snapshot reflects
  reconcile::Input input;
  std::unordered_map<std::string, EnvInfo> envs;              // env_id ->
  std::unordered_map<std::string, std::string> instance_org;  // instance_id -> org_id
  std::unordered_map<std::string, std::string> deploy_org;    // deploy_id -> org_id
  // Groups left out of the Input because their release does not define the
  // process type; their reason is the scheduler's own.
  std::vector<reconcile::Pending> unrunnable;
  // (env_id, process) -> its [[volumes]], in manifest order, for the groups
  // that have any; and (env_id, full_name) -> the live volume of that name.
  std::map<std::pair<std::string, std::string>, std::vector<ManifestVolume>> volumes;
  std::map<std::pair<std::string, std::string>, LiveVolume> live_volumes;
};

// Loads the Input at `now_ms` with `config`. Instances that reported
// `stopped` are left out (they hold nothing).
[[nodiscard]] Result<LoadedState> loadState(pg::Connection& conn, const reconcile::Config& config,
                                            int64_t now_ms);

// One event per action of `plan` (reconcile/types.h gives the mapping), in
// the order lost, stops, drains, restarts, rollbacks, volumes, allocations,
// deploy transitions. A rollback is dropped when its env got a deploy after
// the views `state` reflects (that deploy is newer than the failed one).
// An allocation for slot s of a process with volumes first gets, for each
// of its manifest volumes in order, volume.created (origin manifest; its id
// from `volume_ids`, VolumeId::generate() when empty) when the env has no
// live volume "<name>-s", and volume.placed on the allocation's node when
// that volume has no node (docs/specs/runtime/volume-mounts.md, "Who appends
// what"). Reads the current aggregate versions and the volumes created
// since the views from the log, so call it inside the transaction that
// appends, after EventStore::lockLog().
[[nodiscard]] Result<std::vector<NewEvent>> planEvents(
    pg::Transaction& tx, const reconcile::Plan& plan, const LoadedState& state,
    const std::function<std::string()>& volume_ids = {});

// Milliseconds since the epoch as RFC 3339 (for not_before).
[[nodiscard]] std::string msToRfc3339(int64_t ms);

}  // namespace plfm::cp::sched
