// Internal: the deploy state machine, one step per reconcile.
//
//   pending -> in_progress -> succeeded | failed
//   pending | in_progress -> superseded   (a newer deploy of the same env)
//
// A deploy fails when its new instances have failed (exited, or could not
// start) more than max_deploy_failures times in total, or when it makes no
// progress for its progress_deadline. With auto_rollback on, a failure
// creates a new deploy of the stable revision (a Rollback action); its
// groups run that revision from this round on. It succeeds when every group
// that targets it runs exactly its count of healthy instances of its
// release.
#pragma once

#include <cstddef>
#include <string_view>
#include <unordered_map>

#include "plfm/reconcile/reconcile.h"
#include "snapshot.h"

namespace plfm::reconcile::internal {

struct DeploySteps {
  // Every deploy's status after this round's transitions.
  std::unordered_map<std::string_view, DeployStatus> status;
  // The Rollbacks created this round, by the failed deploy's id (an index
  // into Plan::rollbacks).
  std::unordered_map<std::string_view, std::size_t> rollbacks;
  // Deploys by id.
  std::unordered_map<std::string_view, const Deploy*> by_id;
};

// Appends this round's transitions and rollbacks to `plan`.
[[nodiscard]] DeploySteps stepDeploys(const Snapshot& s, const IdSource& deploy_ids, Plan& plan);

}  // namespace plfm::reconcile::internal
