#include "image_resolve.h"

#include <curl/curl.h>
#include <dlfcn.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "plfm/core/sha256.h"
#include "plfm/core/strings.h"

namespace plfm::vt {
namespace {

constexpr const char* kAccept =
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

bool validDigest(std::string_view d) {
  if (d.size() != 71 || d.substr(0, 7) != "sha256:") return false;
  for (char c : d.substr(7)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Error badRef(const std::string& ref, const std::string& why) {
  return Error(errc::kInvalidArgument, "image `" + ref + "`: " + why).with("field", "image");
}

Result<PinnedImage> pinOciLayout(const std::string& ref) {
  std::string rest = ref.substr(4);
  std::string dir = rest;
  std::string tag;
  if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    dir = rest.substr(0, colon);
    tag = rest.substr(colon + 1);
  }
  std::ifstream in(dir + "/index.json");
  if (!in) return badRef(ref, "cannot read " + dir + "/index.json (is it an OCI image layout?)");
  nlohmann::json index = nlohmann::json::parse(in, nullptr, false);
  if (index.is_discarded() || !index.contains("manifests") || !index["manifests"].is_array()) {
    return badRef(ref, dir + "/index.json is not an OCI image index");
  }
  std::vector<std::string> tags;
  for (const auto& m : index["manifests"]) {
    std::string name;
    if (m.contains("annotations") && m["annotations"].is_object()) {
      name = m["annotations"].value("org.opencontainers.image.ref.name", "");
    }
    tags.push_back(name);
    if ((tag.empty() && index["manifests"].size() == 1) || (!tag.empty() && name == tag)) {
      std::string digest = m.value("digest", "");
      if (!validDigest(digest)) return badRef(ref, "index.json has a malformed digest");
      return PinnedImage{ref, digest};
    }
  }
  std::string known;
  for (const auto& t : tags) known += (known.empty() ? "" : ", ") + (t.empty() ? "(untagged)" : t);
  return badRef(ref, tag.empty() ? "the layout holds several images; name a tag (" + known + ")"
                                 : "no tag `" + tag + "` in the layout (it has: " + known + ")");
}

size_t collectBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

size_t collectHeader(char* data, size_t size, size_t n, void* user) {
  std::string line(data, size * n);
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string key = line.substr(0, colon);
    for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    (*static_cast<std::map<std::string, std::string>*>(user))[key] =
        std::string(trim(line.substr(colon + 1)));
  }
  return size * n;
}

// libcurl is loaded on first use, not linked: its dependency tree (GnuTLS,
// Kerberos, LDAP, p11-kit...) costs ~9 ms at every process start, and only
// `vt deploy` with a tag needs it. `vt --help` must start in well under 10 ms.
struct Curl {
  CURL* (*easy_init)() = nullptr;
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...) = nullptr;
  CURLcode (*easy_perform)(CURL*) = nullptr;
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...) = nullptr;
  void (*easy_cleanup)(CURL*) = nullptr;
  const char* (*easy_strerror)(CURLcode) = nullptr;
  curl_slist* (*slist_append)(curl_slist*, const char*) = nullptr;
  void (*slist_free_all)(curl_slist*) = nullptr;
};

template <typename Fn>
bool bind(void* lib, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(
      ::dlsym(lib, name));  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
  return fn != nullptr;
}

Result<const Curl*> loadCurl() {
  static const Curl* loaded = []() -> const Curl* {
    void* lib = ::dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) return nullptr;
    static Curl c;
    bool ok = bind(lib, "curl_easy_init", c.easy_init) &&
              bind(lib, "curl_easy_setopt", c.easy_setopt) &&
              bind(lib, "curl_easy_perform", c.easy_perform) &&
              bind(lib, "curl_easy_getinfo", c.easy_getinfo) &&
              bind(lib, "curl_easy_cleanup", c.easy_cleanup) &&
              bind(lib, "curl_easy_strerror", c.easy_strerror) &&
              bind(lib, "curl_slist_append", c.slist_append) &&
              bind(lib, "curl_slist_free_all", c.slist_free_all);
    return ok ? &c : nullptr;
  }();
  if (loaded == nullptr) {
    return Error(errc::kUnavailable,
                 "resolving an image tag needs libcurl (libcurl4), which is not installed")
        .with("hint", "install libcurl4, or pin the image by digest (REF@sha256:...)");
  }
  return loaded;
}

struct HttpResult {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;
};

Result<HttpResult> httpGet(const std::string& url, const std::vector<std::string>& headers) {
  PLFM_ASSIGN_OR_RETURN(const Curl* lib, loadCurl());
  CURL* curl = lib->easy_init();
  if (curl == nullptr) return Error(errc::kInternal, "curl_easy_init failed");
  HttpResult out;
  curl_slist* list = nullptr;
  for (const auto& h : headers) list = lib->slist_append(list, h.c_str());
  lib->easy_setopt(curl, CURLOPT_URL, url.c_str());
  lib->easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  lib->easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  lib->easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
  lib->easy_setopt(curl, CURLOPT_WRITEFUNCTION, collectBody);
  lib->easy_setopt(curl, CURLOPT_WRITEDATA, &out.body);
  lib->easy_setopt(curl, CURLOPT_HEADERFUNCTION, collectHeader);
  lib->easy_setopt(curl, CURLOPT_HEADERDATA, &out.headers);
  CURLcode rc = lib->easy_perform(curl);
  lib->easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out.status);
  lib->slist_free_all(list);
  lib->easy_cleanup(curl);
  if (rc != CURLE_OK) {
    return Error(errc::kUnavailable, "fetching " + url + ": " + lib->easy_strerror(rc));
  }
  return out;
}

// Parses `Bearer realm="...",service="...",scope="..."`.
std::map<std::string, std::string> parseChallenge(const std::string& header) {
  std::map<std::string, std::string> out;
  size_t i = header.find(' ');
  while (i != std::string::npos && i < header.size()) {
    size_t eq = header.find('=', i);
    if (eq == std::string::npos) break;
    std::string key(trim(header.substr(i + 1, eq - i - 1)));
    size_t start = eq + 1;
    std::string value;
    if (start < header.size() && header[start] == '"') {
      size_t end = header.find('"', start + 1);
      if (end == std::string::npos) break;
      value = header.substr(start + 1, end - start - 1);
      i = header.find(',', end);
    } else {
      size_t end = header.find(',', start);
      value = header.substr(start, end == std::string::npos ? std::string::npos : end - start);
      i = end;
    }
    out[key] = value;
  }
  return out;
}

}  // namespace

Result<PinnedImage> pinImage(const std::string& ref) {
  if (ref.empty()) return badRef(ref, "empty reference");
  if (auto at = ref.find('@'); at != std::string::npos) {
    std::string digest = ref.substr(at + 1);
    if (!validDigest(digest)) {
      return badRef(ref, "the digest after @ must be sha256: plus 64 lowercase hex digits");
    }
    return PinnedImage{ref, digest};
  }
  if (ref.rfind("oci:", 0) == 0) return pinOciLayout(ref);

  // [host[:port]/]repo[:tag]; the first component is a host when it has a
  // dot or a colon or is "localhost" (the docker convention).
  std::string host = "registry-1.docker.io";
  std::string rest = ref;
  if (auto slash = ref.find('/'); slash != std::string::npos) {
    std::string first = ref.substr(0, slash);
    if (first.find('.') != std::string::npos || first.find(':') != std::string::npos ||
        first == "localhost") {
      host = first;
      rest = ref.substr(slash + 1);
    }
  }
  std::string repo = rest;
  std::string tag = "latest";
  if (auto colon = rest.rfind(':');
      colon != std::string::npos && rest.find('/', colon) == std::string::npos) {
    repo = rest.substr(0, colon);
    tag = rest.substr(colon + 1);
  }
  if (host == "registry-1.docker.io" && repo.find('/') == std::string::npos) {
    repo = "library/" + repo;
  }
  if (repo.empty() || tag.empty()) return badRef(ref, "expected [host/]repo[:tag]");
  bool loopback =
      host.rfind("localhost", 0) == 0 || host.rfind("127.", 0) == 0 || host.rfind("[::1]", 0) == 0;
  std::string url =
      std::string(loopback ? "http://" : "https://") + host + "/v2/" + repo + "/manifests/" + tag;
  std::vector<std::string> headers = {std::string("Accept: ") + kAccept};
  PLFM_ASSIGN_OR_RETURN(auto res, httpGet(url, headers));
  if (res.status == 401 && res.headers.count("www-authenticate") != 0) {
    auto ch = parseChallenge(res.headers["www-authenticate"]);
    if (ch.count("realm") == 0) return badRef(ref, "the registry's auth challenge has no realm");
    std::string token_url = ch["realm"] + "?service=" + ch["service"] + "&scope=" +
                            (ch.count("scope") != 0 ? ch["scope"] : "repository:" + repo + ":pull");
    PLFM_ASSIGN_OR_RETURN(auto tok, httpGet(token_url, {}));
    auto j = nlohmann::json::parse(tok.body, nullptr, false);
    std::string bearer = j.is_object() ? j.value("token", j.value("access_token", "")) : "";
    if (tok.status != 200 || bearer.empty()) {
      return badRef(ref, "the registry refused an anonymous pull token (HTTP " +
                             std::to_string(tok.status) + ")");
    }
    headers.push_back("Authorization: Bearer " + bearer);
    PLFM_ASSIGN_OR_RETURN(res, httpGet(url, headers));
  }
  if (res.status == 404) return badRef(ref, "no such image or tag in " + host);
  if (res.status != 200) {
    return badRef(ref, "the registry " + host + " answered HTTP " + std::to_string(res.status));
  }
  std::string digest = res.headers["docker-content-digest"];
  if (!validDigest(digest)) digest = "sha256:" + Sha256::hex(res.body);
  return PinnedImage{ref, digest};
}

}  // namespace plfm::vt
