// `vt deploy` and the manifest's [[services]]: makes the env's routes
// include every route the manifest declares (docs/specs/cli/output.md,
// "vt routes"). Idempotent: a route that already matches is left alone, one
// whose target differs is updated, a missing one is created. Routes the
// manifest does not declare are kept (`vt routes rm` removes them) and named
// in a note, so a hand-made route is never dropped by a deploy. A manifest
// without [[services]] leaves the routes alone without asking the server.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "invocation.h"
#include "plfm/manifest/manifest.h"

namespace plfm::vt {

[[nodiscard]] Result<void> syncManifestRoutes(Invocation& inv, const nlohmann::json& env,
                                              const manifest::Manifest& m,
                                              std::vector<std::string>& notes);

}  // namespace plfm::vt
