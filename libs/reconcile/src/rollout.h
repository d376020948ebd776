// Internal: the diff for one group (env, process type) against the revision
// it should run: how many instances to allocate, which to drain, which to
// restart, and the numbers the reasons quote. Placement happens afterwards,
// across all groups (reconcile.cc).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "snapshot.h"

namespace plfm::reconcile::internal {

// What a group runs this round, as its deploys decide (reconcile.cc).
struct Course {
  const Revision* revision = nullptr;  // nullptr: nothing
  std::string no_revision_reason;      // when revision is nullptr
  // Non-empty: `revision` rolls back this failed deploy.
  std::string rolls_back;
  // The target's deploy failed with auto_rollback off: every instance stays
  // where it is (crashed ones restart in place), nothing is allocated or
  // drained. `revision` is the target.
  bool hold = false;
};

struct GroupDecision {
  const GroupState* state = nullptr;
  const Revision* revision = nullptr;  // what to run; nullptr: nothing
  std::string no_revision_reason;      // set when revision is nullptr and count > 0
  std::string cause;                   // "rolling deploy dep_x of rel_y", "release rel_y"
  bool rollback = false;               // running a revision that replaces a failed deploy
  bool hold = false;                   // see Course::hold
  int desired = 0;
  int surge_limit = 0;      // normalized max_surge (rolling); 0 with volumes
  int max_unavailable = 0;  // normalized (at least 1 with volumes)
  // A process with volumes (Group::hasVolumes) rolls stop-then-start per
  // slot: `slots` are the slots below the count that no instance holds
  // (none of the revision, and no other still running on the slot's node),
  // in order; `restore` is their number and `surge` is 0.
  bool volumes = false;
  std::vector<int> slots;
  int lost_holding = 0;  // lost instances back on their slot's node, not stopped yet
  // Allocations: `restore` brings the group back to `desired` live
  // instances and goes first; `surge` is rollout headroom above it.
  int restore = 0;
  int surge = 0;
  std::vector<std::pair<std::uint32_t, std::string>> drains;  // instance, reason
  std::vector<std::uint32_t> restarts;                        // crashed, kept
  std::vector<std::uint32_t> newly_lost;  // replaced by this round's first allocations
  // Live instances of the revision, in place: new ones spread among them
  // (old ones are leaving, so they do not count).
  std::vector<std::uint32_t> fresh;
  // Counts before this round's actions.
  int live_new = 0;
  int healthy_new = 0;
  int live_old = 0;
  int draining = 0;
  int excess_drained = 0;  // of live_new, scale-down
  int unready_kept = 0;    // new instances that stay and are not healthy
  int old_drained = 0;
  int healthy_old = 0;          // counted only when holding
  int waiting_unreachable = 0;  // live, on a node unreachable within its grace
};

// The diff of the group against the revision its course names.
[[nodiscard]] GroupDecision decideGroup(const Snapshot& s, const GroupState& g,
                                        const Course& course);

// True when the group runs exactly `count` healthy instances of `r` and
// nothing else live (drains may still be finishing).
[[nodiscard]] bool converged(const Snapshot& s, const GroupState& g, const Revision& r);

}  // namespace plfm::reconcile::internal
