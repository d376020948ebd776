// libFuzzer target for the manifest parser (and, for inputs that are JSON,
// the JSON reader). Beyond "no crash, no leak, no UB" it checks the
// library's promises: a manifest that parses has no diagnostics, passes
// validate(), and survives toJson -> fromJson unchanged; every diagnostic
// has a message. A broken promise aborts, so the fuzzer reports it.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "plfm/manifest/manifest.h"

namespace {

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "manifest_fuzz: broken promise: %s\n", what);
    std::abort();
  }
}

void checkParsed(const plfm::manifest::ParseResult& r) {
  require(r.ok() == r.diagnostics.empty(), "ok() iff no diagnostics");
  for (const auto& d : r.diagnostics) {
    require(!d.message.empty(), "every diagnostic has a message");
    require(!d.format().empty(), "format() is not empty");
  }
  if (!r.ok()) return;
  const auto& m = *r.manifest;
  require(plfm::manifest::validate(m).empty(), "a parsed manifest validates");
  const nlohmann::json j = m.toJson();
  auto back = plfm::manifest::fromJson(j);
  require(back.has_value(), "fromJson accepts toJson");
  require(back->toJson() == j, "fromJson inverts toJson");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  checkParsed(plfm::manifest::parse(text));
  if (!text.empty() && text.front() == '{') {
    const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded()) {
      auto m = plfm::manifest::fromJson(j);
      if (m) require(plfm::manifest::fromJson(m->toJson()).has_value(), "JSON round trip");
    }
  }
  return 0;
}
