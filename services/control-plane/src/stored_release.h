// Typed reads of what releases_view stores as JSON. The API writes only the
// canonical manifest (api/schemas/manifest.json), but the views also hold
// releases written before that rule, or by hand: every reader (scheduler,
// node plans) goes through this one parse, so a bad stored manifest is an
// error value for that release alone, never an exception on a shared thread.
#pragma once

#include <string_view>

#include "plfm/core/result.h"
#include "plfm/manifest/manifest.h"

namespace plfm::cp {

// The manifest of a release, from the text of releases_view.manifest: parsed
// within the JSON limits and checked by every manifest rule (resources in
// range, names valid). The error names the offending field.
[[nodiscard]] Result<manifest::Manifest> readStoredManifest(std::string_view text);

}  // namespace plfm::cp
