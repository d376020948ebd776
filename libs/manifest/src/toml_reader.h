// Reads `vt.toml` text into a Manifest: TOML syntax, the shape of every table
// (unknown keys, wrong types), units ("1GiB", "10s") and the defaults that
// depend on other sections (the only process). Value rules are left to
// checkManifest. toml++ is confined to toml_reader.cc.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "plfm/manifest/manifest.h"
#include "sink.h"

namespace plfm::manifest {

// nullopt when the text is not TOML (the syntax error is in `sink`).
// Otherwise a Manifest that may hold placeholders for values reported in
// `sink` and marked bad there.
[[nodiscard]] std::optional<Manifest> readToml(std::string_view text, Sink& sink);

// What prescan() found: `ok`, or the first problem, where it is and its byte
// offset in the text.
struct PrescanResult {
  bool ok = true;
  Position where;
  std::string what;
  std::size_t offset = 0;
};

// Checks, before toml++ sees the text, what toml++ cannot handle safely:
// keys and brackets nested too deep for its recursive destructors, and
// non-ASCII characters outside strings (see prescan.cc).
[[nodiscard]] PrescanResult prescan(std::string_view text);

// toml++'s syntax error in `text`, or nullopt when it parses. Only for text
// prescan() accepted, or for the part of rejected text before the rejection
// (to report the syntax error that usually lies before it).
[[nodiscard]] std::optional<std::pair<Position, std::string>> tomlSyntaxError(
    std::string_view text);

}  // namespace plfm::manifest
