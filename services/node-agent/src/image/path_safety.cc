#include "image/path_safety.h"

#include "image/errors.h"
#include "plfm/core/strings.h"

namespace plfm::image {

Result<std::string> cleanEntryPath(std::string_view name, size_t max_len) {
  if (name.size() > max_len) {
    const std::string shown(name.substr(0, 64));
    return Error(errc::kLimitExceeded, "entry name '" + shown + "...' is " +
                                           std::to_string(name.size()) + " bytes (limit " +
                                           "max_path_bytes = " + std::to_string(max_len) + ")")
        .with("limit", "max_path_bytes")
        .with("entry", shown);
  }
  if (name.find('\0') != std::string_view::npos) {
    return Error(errc::kBadLayer, "entry name contains a NUL byte");
  }
  std::string out;
  out.reserve(name.size());
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    const std::string_view comp = name.substr(start, end - start);
    if (comp == "..") {
      return Error(errc::kPathEscape, "entry '" + std::string(name.substr(0, 200)) +
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

XattrNameVerdict checkXattrName(std::string_view name) {
  if (name.size() > kMaxXattrNameBytes) return XattrNameVerdict::kTooLong;
  for (const char c : name) {
    if (c <= 0x20 || c >= 0x7f) return XattrNameVerdict::kBadBytes;
  }
  if (name == "system.posix_acl_access" || name == "system.posix_acl_default") {
    return XattrNameVerdict::kAllowed;
  }
  for (const std::string_view ns : {std::string_view("user."), std::string_view("security.")}) {
    if (name.size() > ns.size() && name.substr(0, ns.size()) == ns) {
      return XattrNameVerdict::kAllowed;
    }
  }
  return XattrNameVerdict::kBadNamespace;
}

std::string_view describe(XattrNameVerdict v) {
  switch (v) {
    case XattrNameVerdict::kAllowed:
      return "allowed";
    case XattrNameVerdict::kBadNamespace:
      return "namespace not allowed (user.*, security.*, system.posix_acl_access|default only)";
    case XattrNameVerdict::kBadBytes:
      return "name has a byte outside printable ASCII";
    case XattrNameVerdict::kTooLong:
      return "name longer than 255 bytes";
  }
  return "unknown";
}

std::string printable(std::string_view bytes, size_t max) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  const std::string_view shown = bytes.substr(0, max);
  out.reserve(shown.size() + 8);
  for (const char c : shown) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f && c != '\\') {
      out += c;
    } else {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    }
  }
  if (bytes.size() > max) out += "...";
  return out;
}

}  // namespace plfm::image
