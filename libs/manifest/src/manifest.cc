#include "plfm/manifest/manifest.h"

#include <fstream>
#include <system_error>
#include <utility>

#include "check.h"
#include "rules.h"
#include "sink.h"
#include "toml_reader.h"

namespace plfm::manifest {

std::string Diagnostic::format() const {
  std::string out = file;
  if (line > 0) {
    out += ":" + std::to_string(line);
    if (column > 0) out += ":" + std::to_string(column);
  }
  if (!out.empty()) out += ": ";
  if (!path.empty()) out += path + ": ";
  out += message;
  if (!hint.empty()) out += " (" + hint + ")";
  return out;
}

const Process* Manifest::findProcess(std::string_view name) const {
  for (const auto& p : processes) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

ParseResult parse(std::string_view text, std::string_view file_name) {
  ParseResult result;
  Sink sink{std::string(file_name)};
  if (text.size() > rules::kMaxFileBytes) {
    sink.reportAt({}, "",
                  "file too large: " + std::to_string(text.size()) + " bytes, the limit is 1 MiB");
    result.diagnostics = sink.take();
    return result;
  }
  if (const PrescanResult scan = prescan(text); !scan.ok) {
    // A syntax error before the rejected spot is the better report: it is
    // usually why the text stopped looking like TOML there.
    auto syntax = tomlSyntaxError(text.substr(0, scan.offset));
    const bool earlier = syntax && std::pair(syntax->first.line, syntax->first.column) <
                                       std::pair(scan.where.line, scan.where.column);
    if (earlier) {
      sink.reportAt(syntax->first, "", syntax->second);
    } else {
      sink.reportAt(scan.where, "", scan.what);
    }
    result.diagnostics = sink.take();
    return result;
  }
  std::optional<Manifest> m = readToml(text, sink);
  if (m) {
    normalizeBeforeCheck(*m);
    checkManifest(*m, sink);
    normalizeAfterCheck(*m);
  }
  result.diagnostics = sink.take();
  if (result.diagnostics.empty() && m) result.manifest = std::move(m);
  return result;
}

ParseResult parseFile(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  const std::string name = path.string();
  auto fail = [&](std::string message) {
    ParseResult r;
    Diagnostic d;
    d.file = name;
    d.message = std::move(message);
    r.diagnostics.push_back(std::move(d));
    return r;
  };
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec) return fail("cannot read: " + ec.message());
  if (fs::is_directory(status)) return fail("cannot read: is a directory");
  if (!fs::is_regular_file(status)) return fail("cannot read: not a regular file");
  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec) return fail("cannot read: " + ec.message());
  if (size > rules::kMaxFileBytes) {
    return fail("file too large: " + std::to_string(size) + " bytes, the limit is 1 MiB");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail("cannot read: open failed");
  // One past the limit, so a file that grew since file_size() is still caught.
  std::string text(rules::kMaxFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return fail("cannot read: read failed");
  text.resize(static_cast<size_t>(in.gcount()));
  return parse(text, name);
}

std::vector<Diagnostic> validate(const Manifest& manifest) {
  Sink sink{""};
  sink.assumeAllPresent();
  checkManifest(manifest, sink);
  return sink.take();
}

}  // namespace plfm::manifest
