#include "image/image_ref.h"

#include "plfm/core/strings.h"

namespace plfm::image {

namespace {

constexpr size_t kMaxRefLength = 4096;
constexpr size_t kMaxTagLength = 128;

Error badRef(std::string_view text, std::string_view why) {
  return Error(errc::kInvalidArgument, "invalid image reference '" +
                                           std::string(text.substr(0, 200)) +
                                           "': " + std::string(why))
      .with("field", "image");
}

bool isLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// One path component: [a-z0-9]+ ((. | _ | __ | -+) [a-z0-9]+)*
bool validComponent(std::string_view c) {
  if (c.empty() || !isLowerAlnum(c.front()) || !isLowerAlnum(c.back())) return false;
  for (size_t i = 0; i < c.size(); ++i) {
    const char ch = c[i];
    if (isLowerAlnum(ch)) continue;
    if (ch == '.' || ch == '-') {
      if (ch == '.' && !isLowerAlnum(c[i + 1])) return false;
      continue;
    }
    if (ch == '_') {
      if (c[i + 1] == '_') {
        ++i;
        if (!isLowerAlnum(c[i + 1])) return false;
      } else if (!isLowerAlnum(c[i + 1])) {
        return false;
      }
      continue;
    }
    return false;
  }
  return true;
}

bool validTag(std::string_view t) {
  if (t.empty() || t.size() > kMaxTagLength) return false;
  for (size_t i = 0; i < t.size(); ++i) {
    const char c = t[i];
    const bool word =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!word && (i == 0 || (c != '.' && c != '-'))) return false;
  }
  return true;
}

// host[:port], where host is a DNS name, an IPv4 address or [IPv6].
bool validRegistry(std::string_view r) {
  if (r.empty()) return false;
  std::string_view host = r;
  if (r.front() == '[') {
    const size_t close = r.find(']');
    if (close == std::string_view::npos) return false;
    host = r.substr(1, close - 1);
    std::string_view rest = r.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return false;
    for (char c : host) {
      if (!(isLowerAlnum(c) || (c >= 'A' && c <= 'F') || c == ':' || c == '.')) return false;
    }
    r = rest;
    host = {};
  } else if (const size_t colon = r.find(':'); colon != std::string_view::npos) {
    host = r.substr(0, colon);
    r = r.substr(colon);
  } else {
    r = {};
  }
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-';
    if (!ok) return false;
  }
  if (!r.empty()) {  // ":port"
    const std::string_view port = r.substr(1);
    if (port.empty() || port.size() > 5) return false;
    for (char c : port) {
      if (c < '0' || c > '9') return false;
    }
  }
  return true;
}

Result<ImageRef> parseOciLayout(std::string_view text, std::string_view rest) {
  ImageRef ref;
  ref.transport = ImageRef::Transport::kOciLayout;
  // oci:DIR[:TAG]. DIR may itself contain ':' only if a tag follows, as in skopeo.
  const size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos) {
    ref.layout_dir = std::string(rest);
  } else {
    ref.layout_dir = std::string(rest.substr(0, colon));
    ref.tag = std::string(rest.substr(colon + 1));
    if (ref.tag.empty()) return badRef(text, "empty tag after 'oci:DIR:'");
  }
  if (ref.layout_dir.empty()) return badRef(text, "oci: needs a directory (oci:DIR[:TAG])");
  return ref;
}

}  // namespace

Result<ImageRef> parseImageRef(std::string_view text) {
  if (text.empty()) return badRef(text, "empty");
  if (text.size() > kMaxRefLength) return badRef(text, "longer than 4096 characters");
  if (startsWith(text, "oci:")) return parseOciLayout(text, text.substr(4));
  for (char c : text) {
    if (static_cast<unsigned char>(c) <= ' ' || static_cast<unsigned char>(c) >= 0x7f) {
      return badRef(text, "contains whitespace or non-ASCII characters");
    }
  }

  ImageRef ref;
  std::string_view name = text;
  if (const size_t at = name.find('@'); at != std::string_view::npos) {
    auto d = Digest::parse(name.substr(at + 1));
    if (!d) return badRef(text, d.error().message());
    ref.digest = *d;
    name = name.substr(0, at);
  }
  // A tag is after the last ':' that follows the last '/'.
  const size_t slash = name.rfind('/');
  const size_t colon = name.rfind(':');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    ref.tag = std::string(name.substr(colon + 1));
    name = name.substr(0, colon);
    if (!validTag(ref.tag)) {
      return badRef(text, "tag '" + ref.tag + "' must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
    }
  }
  if (name.empty()) return badRef(text, "empty repository name");

  std::string_view repo = name;
  const size_t first_slash = name.find('/');
  if (first_slash != std::string_view::npos) {
    const std::string_view first = name.substr(0, first_slash);
    if (first.find('.') != std::string_view::npos || first.find(':') != std::string_view::npos ||
        first == "localhost" || first.front() == '[') {
      if (!validRegistry(first))
        return badRef(text, "invalid registry host '" + std::string(first) + "'");
      ref.registry = std::string(first);
      repo = name.substr(first_slash + 1);
    }
  }
  if (ref.registry.empty()) ref.registry = std::string(kDockerHub);
  if (ref.registry == "index.docker.io") ref.registry = std::string(kDockerHub);

  size_t start = 0;
  while (start <= repo.size()) {
    const size_t end = repo.find('/', start);
    const std::string_view comp =
        repo.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (!validComponent(comp)) {
      return badRef(text, "repository component '" + std::string(comp) +
                              "' must be lowercase letters and digits separated by '.', '_', "
                              "'__' or '-'");
    }
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  ref.repository = std::string(repo);
  if (ref.registry == kDockerHub && ref.repository.find('/') == std::string::npos) {
    ref.repository = "library/" + ref.repository;
  }
  if (ref.tag.empty() && !ref.digest) ref.tag = "latest";
  return ref;
}

std::string ImageRef::reference() const {
  if (digest) return digest->str();
  return tag;
}

std::string ImageRef::str() const {
  if (transport == Transport::kOciLayout) {
    return "oci:" + layout_dir + (tag.empty() ? "" : ":" + tag);
  }
  std::string s = registry + "/" + repository;
  if (!tag.empty()) s += ":" + tag;
  if (digest) s += "@" + digest->str();
  return s;
}

std::string ImageRef::apiHost() const {
  if (registry == kDockerHub) return std::string(kDockerHubApiHost);
  return registry;
}

}  // namespace plfm::image
