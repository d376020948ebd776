// The reconciler: one pure function from what is desired and what is (Input)
// to what to do about it (Plan). No I/O, no clock but Input::now_ms, no
// randomness but the injected IdSource, so the same Input and the same ids
// always give a byte-identical Plan (toJson).
//
// The control plane loads its views into an Input, calls reconcile(), appends
// one event per action (see types.h for the mapping), and runs it again when
// its views change or a timer fires (backoffs, grace periods and rollouts
// advance only on a later call). Applying the Plan and reconciling again with
// nothing reported in between yields no further actions: reconcile is
// idempotent over its own output.
//
//   auto ids = [] { return InstanceId::generate().str(); };
//   PLFM_ASSIGN_OR_RETURN(Plan plan, reconcile(input, ids));
//   for (const Allocate& a : plan.allocations) ... instance.allocated
//
// docs/specs/scheduler/reconciler.md describes the rules.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "plfm/core/result.h"
#include "plfm/reconcile/types.h"

namespace plfm::reconcile {

// Returns a fresh id per call ("inst_01h..." in production, a counter in
// tests).
using IdSource = std::function<std::string()>;

// Fails with invalid_argument on duplicate ids or an invalid Config; every
// other inconsistency (an instance on an unknown node, a group with no
// release) becomes an action or a Pending reason. New instances take their
// ids from `ids`, auto-rollback deploys from `deploy_ids`.
[[nodiscard]] Result<Plan> reconcile(const Input& in, const IdSource& ids,
                                     const IdSource& deploy_ids);
// The same with every id from `ids` (benchmarks, tests without rollbacks).
[[nodiscard]] Result<Plan> reconcile(const Input& in, const IdSource& ids);

// Canonical JSON of a plan: sorted keys, actions in plan order. `indent` < 0
// is compact; otherwise pretty-printed with that many spaces.
[[nodiscard]] std::string toJson(const Plan& plan, int indent = -1);

// Applies a plan to an Input the way the control plane's projections apply
// the plan's events to its views: new instances (kAllocated, desired kRun),
// restarts (new generation, kAllocated), drains and stops (desired), lost
// marks, deploy statuses, rollback deploys (pending, and the env's groups
// target them). Agent reports (phases) are not part of it. Used by
// the tests and the benchmark, and the reference for the projections.
void applyPlan(Input& in, const Plan& plan);

// The delay before restart number `restarts + 1` of a crashed instance:
// backoff_base_ms x 2^restarts, at most backoff_max_ms.
[[nodiscard]] std::int64_t backoffDelayMs(const Config& c, int restarts);

}  // namespace plfm::reconcile
