// Internal: the deploy state machine, one step per reconcile.
//
//   pending -> in_progress -> succeeded | failed
//   pending | in_progress -> superseded   (a newer deploy of the same env)
//
// A deploy fails when its new instances have failed (exited, or could not
// start) more than max_deploy_failures times in total; its groups then run
// their stable revision again. It succeeds when every group that targets it
// runs exactly its count of healthy instances of its release.
#pragma once

#include <string_view>
#include <unordered_map>

#include "snapshot.h"

namespace plfm::reconcile::internal {

// Appends this round's transitions to `plan` and returns every deploy's
// status after them.
[[nodiscard]] std::unordered_map<std::string_view, DeployStatus> stepDeploys(const Snapshot& s,
                                                                             Plan& plan);

}  // namespace plfm::reconcile::internal
