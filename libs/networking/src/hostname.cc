#include "plfm/net/hostname.h"

namespace plfm::net {
namespace {

bool validLabel(std::string_view label) {
  if (label.empty() || label.size() > 63) return false;
  for (char c : label) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

bool startsWithWildcard(std::string_view name) {
  return name.size() > 2 && name.substr(0, 2) == "*.";
}

}  // namespace

bool validDnsName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  size_t start = 0;
  while (true) {
    const size_t dot = name.find('.', start);
    const std::string_view label =
        name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!validLabel(label)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

Result<std::string> normalizeHostname(std::string_view hostname) {
  std::string name(hostname);
  for (char& c : name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (!name.empty() && name.back() == '.') name.pop_back();
  const bool ok =
      name == "*" || (startsWithWildcard(name) ? validDnsName(name.substr(2)) : validDnsName(name));
  if (!ok) {
    return Error(errc::kInvalidArgument,
                 "hostname '" + std::string(hostname) +
                     "' must be a DNS name, '*.<name>' (one label) or '*' (default route)");
  }
  return name;
}

}  // namespace plfm::net
