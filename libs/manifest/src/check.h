// The manifest rules that apply to values, whatever they were read from:
// per-field limits and grammars (rules.h) and the cross-field checks
// (services and volumes name defined processes, routes and volume names are
// unique, ...). The TOML reader has already reported wrong types and
// unparsable values and marked them bad in the Sink; these rules skip them.
#pragma once

#include "plfm/manifest/manifest.h"
#include "sink.h"

namespace plfm::manifest {

void checkManifest(const Manifest& m, Sink& sink);

// Lower-cases hostnames (before the checks: DNS is case-insensitive).
void normalizeBeforeCheck(Manifest& m);
// Sorts processes, checks and secrets (after the checks, whose paths for
// secrets use source indexes).
void normalizeAfterCheck(Manifest& m);

}  // namespace plfm::manifest
