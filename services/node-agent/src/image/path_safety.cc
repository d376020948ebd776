#include "image/path_safety.h"

#include "plfm/core/strings.h"

namespace plfm::image {

Result<std::string> cleanEntryPath(std::string_view name, size_t max_len) {
  if (name.size() > max_len) {
    const std::string shown(name.substr(0, 64));
    return Error("image.limit_exceeded", "entry name '" + shown + "...' is " +
                                             std::to_string(name.size()) + " bytes (limit " +
                                             "max_path_bytes = " + std::to_string(max_len) + ")")
        .with("limit", "max_path_bytes")
        .with("entry", shown);
  }
  if (name.find('\0') != std::string_view::npos) {
    return Error("image.bad_layer", "entry name contains a NUL byte");
  }
  std::string out;
  out.reserve(name.size());
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    const std::string_view comp = name.substr(start, end - start);
    if (comp == "..") {
      return Error("image.path_escape", "entry '" + std::string(name.substr(0, 200)) +
                                            "' contains '..' (path traversal out of the rootfs)")
          .with("entry", std::string(name.substr(0, 200)));
    }
    if (!comp.empty() && comp != ".") {
      if (!out.empty()) out += '/';
      out.append(comp);
    }
    start = end + 1;
  }
  return out;
}

Whiteout classifyWhiteout(std::string_view clean_path) {
  const std::string_view base = baseOf(clean_path);
  if (!startsWith(base, kWhiteoutPrefix)) return {};
  const std::string_view parent = parentOf(clean_path);
  if (base == kOpaqueWhiteout) return {Whiteout::Kind::kOpaque, std::string(parent)};
  if (startsWith(base, ".wh..wh.")) return {Whiteout::Kind::kOtherMeta, ""};
  const std::string_view name = base.substr(kWhiteoutPrefix.size());
  if (name.empty() || name == "." || name == "..") return {Whiteout::Kind::kOtherMeta, ""};
  std::string target =
      parent.empty() ? std::string(name) : std::string(parent) + "/" + std::string(name);
  return {Whiteout::Kind::kFile, std::move(target)};
}

std::vector<std::string> splitPath(std::string_view path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end > start) parts.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

std::string joinPath(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += '/';
    out += p;
  }
  return out;
}

std::string_view parentOf(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view() : path.substr(0, slash);
}

std::string_view baseOf(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace plfm::image
