#include "stored_release.h"

#include "plfm/core/json.h"

namespace plfm::cp {

Result<manifest::Manifest> readStoredManifest(std::string_view text) {
  auto j = json::parse(text);
  if (!j) {
    return Error(plfm::errc::kInvalidArgument,
                 "stored manifest is not valid JSON: " + j.error().message());
  }
  auto m = manifest::fromJson(*j);
  if (!m) {
    return Error(plfm::errc::kInvalidArgument, "stored manifest is invalid: " + m.error().message())
        .with("field", std::string(m.error().detail("field")));
  }
  return m;
}

}  // namespace plfm::cp
