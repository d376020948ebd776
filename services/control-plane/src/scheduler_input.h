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
#include <string>
#include <unordered_map>
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

struct LoadedState {
  int64_t checkpoint = 0;  // the views' checkpoint the snapshot reflects
  reconcile::Input input;
  std::unordered_map<std::string, EnvInfo> envs;              // env_id ->
  std::unordered_map<std::string, std::string> instance_org;  // instance_id -> org_id
  std::unordered_map<std::string, std::string> deploy_org;    // deploy_id -> org_id
  // Groups left out of the Input because their release does not define the
  // process type; their reason is the scheduler's own.
  std::vector<reconcile::Pending> unrunnable;
};

// Loads the Input at `now_ms` with `config`. Instances that reported
// `stopped` are left out (they hold nothing).
[[nodiscard]] Result<LoadedState> loadState(pg::Connection& conn, const reconcile::Config& config,
                                            int64_t now_ms);

// One event per action of `plan` (reconcile/types.h gives the mapping), in
// the order lost, stops, drains, restarts, rollbacks, allocations, deploy
// transitions. A rollback is dropped when its env got a deploy after the
// views `state` reflects (that deploy is newer than the failed one).
// Reads the current aggregate versions from the log, so call it inside the
// transaction that appends, after EventStore::lockLog().
[[nodiscard]] Result<std::vector<NewEvent>> planEvents(pg::Transaction& tx,
                                                       const reconcile::Plan& plan,
                                                       const LoadedState& state);

// Milliseconds since the epoch as RFC 3339 (for not_before).
[[nodiscard]] std::string msToRfc3339(int64_t ms);

}  // namespace plfm::cp::sched
