#include "image/registry_source.h"

#include <curl/curl.h>
#include <sys/socket.h>

#include <algorithm>
#include <map>
#include <mutex>

#include "image/errors.h"
#include "image/json_util.h"
#include "image/media_types.h"
#include "image/path_safety.h"
#include "plfm/core/json.h"
#include "plfm/core/log.h"
#include "plfm/core/redact.h"
#include "plfm/core/strings.h"

namespace plfm::image {

namespace {

constexpr long kMaxRedirects = 5;
constexpr size_t kMaxErrorBody = 4096;
constexpr size_t kMaxTokenBody = 64 << 10;

std::once_flag g_curl_once;

bool isLoopback(std::string_view registry) {
  std::string_view host = registry;
  if (!host.empty() && host.front() == '[') {
    host = host.substr(1, host.find(']') - 1);
    return host == "::1";
  }
  host = host.substr(0, host.find(':'));
  return host == "localhost" || startsWith(host, "127.");
}

std::string urlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// What one HTTP exchange produced. Headers are those of the final response
// (after redirects), names lowercased.
struct Exchange {
  long status = 0;
  std::map<std::string, std::string> headers;
  std::string body;
  size_t body_limit = kMaxErrorBody;
  bool body_overflow = false;
  BlobWriter* writer = nullptr;
  uint64_t start_offset = 0;
  bool started = false;
  Result<void> write_error = ok();
};

size_t onHeader(char* data, size_t size, size_t nitems, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  const size_t len = size * nitems;
  std::string_view line(data, len);
  line = trim(line);
  if (startsWith(line, "HTTP/")) {
    ex->headers.clear();
    const size_t sp = line.find(' ');
    if (sp != std::string_view::npos)
      ex->status = std::atol(std::string(line.substr(sp + 1, 3)).c_str());
    return len;
  }
  const size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    ex->headers[asciiLower(trim(line.substr(0, colon)))] =
        std::string(trim(line.substr(colon + 1)));
  }
  return len;
}

// Content-Range: bytes START-END/TOTAL; returns START.
std::optional<uint64_t> rangeStart(const std::string& header) {
  std::string_view v = header;
  if (!startsWith(v, "bytes ")) return std::nullopt;
  v = v.substr(6);
  const size_t dash = v.find('-');
  if (dash == std::string_view::npos || dash == 0) return std::nullopt;
  uint64_t n = 0;
  for (char c : v.substr(0, dash)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  return n;
}

size_t onBody(char* data, size_t size, size_t nmemb, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  const size_t len = size * nmemb;
  if (ex->writer != nullptr && (ex->status == 200 || ex->status == 206)) {
    if (!ex->started) {
      ex->started = true;
      if (ex->status == 200 && ex->writer->offset() > 0) {
        // The server ignored our Range header: start the blob over.
        ex->write_error = ex->writer->restart();
      } else if (ex->status == 206) {
        auto start = rangeStart(ex->headers["content-range"]);
        if (!start || *start != ex->writer->offset()) {
          ex->write_error = Error(errc::kUnavailable, "registry answered a Range request for " +
                                                          std::to_string(ex->writer->offset()) +
                                                          "- with Content-Range '" +
                                                          ex->headers["content-range"] + "'");
        }
      }
      if (!ex->write_error) return 0;
    }
    ex->write_error = ex->writer->write(data, len);
    return ex->write_error ? len : 0;
  }
  if (ex->body.size() + len > ex->body_limit) {
    ex->body_overflow = true;
    return 0;
  }
  ex->body.append(data, len);
  return len;
}

// Refuses, before connecting, any address the policy does not allow; the
// first one refused is kept for the error.
struct SocketGuard {
  const std::vector<IpPrefix>* allow = nullptr;
  std::string refused;
};

curl_socket_t openSocket(void* clientp, curlsocktype purpose, curl_sockaddr* address) {
  auto* g = static_cast<SocketGuard*>(clientp);
  IpAddress a;
  const bool ip = fromSockaddr(&address->addr, a);
  if (purpose != CURLSOCKTYPE_IPCXN || !ip || !registryAddressAllowed(a, *g->allow)) {
    if (g->refused.empty()) g->refused = ip ? a.str() : "a non-IP address";
    return CURL_SOCKET_BAD;
  }
  return ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

Error httpError(const Exchange& ex, const std::string& what) {
  // A registry's error body is the registry's (or a tenant's) text: a short,
  // escaped excerpt only.
  std::string detail = printable(trim(ex.body.substr(0, 200)), 200);
  std::string msg = what + ": registry answered HTTP " + std::to_string(ex.status) +
                    (detail.empty() ? "" : " (" + detail + ")");
  std::string_view code = errc::kInternal;
  if (ex.status == 404) {
    code = errc::kNotFound;
  } else if (ex.status == 401) {
    code = errc::kUnauthenticated;
  } else if (ex.status == 403) {
    code = errc::kPermissionDenied;
  } else if (ex.status == 429 || ex.status == 416 || ex.status >= 500) {
    code = errc::kUnavailable;  // worth a retry (416: a resume the server no longer accepts)
  }
  return Error(code, msg).with("http_status", std::to_string(ex.status));
}

}  // namespace

struct RegistrySource::Impl {
  ImageRef ref;
  RegistryOptions options;
  std::string base;
  std::mutex auth_mu;  // one challenge answered at a time
  std::mutex mu;       // guards the fields below
  std::string bearer;  // current token, empty when none
  bool use_basic = false;
  int auth_generation = 0;
  std::vector<Redactor::Handle> secrets;

  struct Call {
    std::string url;
    std::vector<std::string> headers;
    std::chrono::seconds timeout{0};  // 0: none (stall timeout still applies)
    BlobWriter* writer = nullptr;
    size_t body_limit = kMaxErrorBody;
    bool head = false;  // HEAD: headers only
  };

  struct Auth {
    std::string bearer;
    bool basic = false;
  };

  Auth currentAuth(int* generation) {
    std::lock_guard lock(mu);
    if (generation != nullptr) *generation = auth_generation;
    return Auth{bearer, use_basic && options.credentials.has_value()};
  }

  Result<Exchange> perform(const Call& call, const Auth& auth) {
    CURL* curl = curl_easy_init();
    if (curl == nullptr) return Error(errc::kInternal, "curl_easy_init failed");
    Exchange ex;
    ex.writer = call.writer;
    ex.body_limit = call.body_limit;
    curl_slist* hdrs = nullptr;
    for (const auto& h : call.headers) hdrs = curl_slist_append(hdrs, h.c_str());
    const bool basic = auth.basic;
    std::string bearer_header;
    if (!auth.bearer.empty()) bearer_header = "Authorization: Bearer " + auth.bearer;
    if (!bearer_header.empty()) hdrs = curl_slist_append(hdrs, bearer_header.c_str());
    curl_easy_setopt(curl, CURLOPT_URL, call.url.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, kMaxRedirects);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT,
                     static_cast<long>(options.connect_timeout.count()));
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME,
                     static_cast<long>(options.stall_timeout.count()));
    if (call.timeout.count() > 0) {
      curl_easy_setopt(curl, CURLOPT_TIMEOUT, static_cast<long>(call.timeout.count()));
    }
    curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, onHeader);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &ex);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, onBody);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &ex);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "plfm-node-agent");
    if (call.head) curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    if (basic) {
      // libcurl sends these only to the original host, never across a redirect.
      curl_easy_setopt(curl, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
      curl_easy_setopt(curl, CURLOPT_USERNAME, options.credentials->username.c_str());
      curl_easy_setopt(curl, CURLOPT_PASSWORD, options.credentials->password.c_str());
    }
    SocketGuard guard;
    if (options.address_allow) {
      guard.allow = &*options.address_allow;
      curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, openSocket);
      curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, &guard);
    }
    if (call.writer != nullptr && call.writer->offset() > 0) {
      curl_easy_setopt(curl, CURLOPT_RESUME_FROM_LARGE,
                       static_cast<curl_off_t>(call.writer->offset()));
    }
    const CURLcode rc = curl_easy_perform(curl);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(curl);
    if (!ex.write_error) return ex.write_error.error();
    if (rc == CURLE_WRITE_ERROR && ex.body_overflow) {
      return Error(errc::kLimitExceeded, "response from " + describeUrl(call.url) + " exceeds " +
                                             std::to_string(call.body_limit) + " bytes");
    }
    if (rc != CURLE_OK && !guard.refused.empty()) {
      return Error(errc::kRegistryRefused,
                   "refused to connect to " + guard.refused + " for " + describeUrl(call.url) +
                       ": not a public address; the operator may allow it with "
                       "--registry-allow-cidr")
          .with("address", guard.refused);
    }
    if (rc != CURLE_OK) {
      const std::string_view code =
          rc == CURLE_OPERATION_TIMEDOUT ? errc::kDeadlineExceeded : errc::kUnavailable;
      return Error(code,
                   "request to " + describeUrl(call.url) + " failed: " + curl_easy_strerror(rc))
          .with("curl_code", std::to_string(static_cast<int>(rc)));
    }
    return ex;
  }

  // The URL without its query (token endpoints carry no secrets in it, but
  // signed blob redirect URLs might).
  static std::string describeUrl(const std::string& url) { return url.substr(0, url.find('?')); }

  // Sends `call`; on a 401 answers the challenge once and sends it again.
  Result<Exchange> send(const Call& call) {
    int generation = 0;
    PLFM_ASSIGN_OR_RETURN(Exchange ex, perform(call, currentAuth(&generation)));
    if (ex.status != 401) return ex;
    // Nothing of the 401 body reached a blob writer, so the retry resumes
    // exactly where this attempt started.
    PLFM_TRY(authenticate(ex, generation));
    return perform(call, currentAuth(nullptr));
  }

  // Serialized by auth_mu, so that parallel layer downloads hitting 401 at
  // once fetch one token between them.
  Result<void> authenticate(const Exchange& challenge_ex, int generation) {
    std::lock_guard auth_lock(auth_mu);
    {
      std::lock_guard lock(mu);
      if (auth_generation != generation) return ok();  // another thread re-authenticated
    }
    auto header = challenge_ex.headers.find("www-authenticate");
    if (header == challenge_ex.headers.end()) {
      return Error(
          errc::kUnauthenticated,
          "registry " + ref.registry + " answered 401 without a WWW-Authenticate challenge");
    }
    PLFM_ASSIGN_OR_RETURN(auto challenge, parseAuthChallenge(header->second));
    if (challenge.scheme == "basic") {
      if (!options.credentials) {
        return Error(errc::kUnauthenticated,
                     "registry " + ref.registry +
                         " requires credentials (basic auth): `vt registries login " +
                         ref.registry +
                         "` for the org (or, for the operator's `image pull`, "
                         "its credentials file)")
            .with("registry", ref.registry);
      }
      std::lock_guard lock(mu);
      if (use_basic) {
        return Error(errc::kUnauthenticated, "registry " + ref.registry +
                                                 " rejected the credentials for user '" +
                                                 options.credentials->username + "'")
            .with("registry", ref.registry);
      }
      use_basic = true;
      ++auth_generation;
      return ok();
    }
    if (challenge.scheme != "bearer") {
      return Error(errc::kUnauthenticated, "registry " + ref.registry +
                                               " asks for unsupported auth scheme '" +
                                               challenge.scheme + "'");
    }
    const std::string realm = challenge.params["realm"];
    if (realm.empty()) {
      return Error(errc::kUnauthenticated,
                   "registry " + ref.registry + " sent a Bearer challenge without a realm");
    }
    std::string scope = challenge.params["scope"];
    if (scope.empty()) scope = "repository:" + ref.repository + ":pull";
    std::string url =
        realm + (realm.find('?') == std::string::npos ? "?" : "&") + "scope=" + urlEncode(scope);
    if (auto s = challenge.params.find("service"); s != challenge.params.end()) {
      url += "&service=" + urlEncode(s->second);
    }
    Call token_call;
    token_call.url = url;
    token_call.timeout = options.manifest_timeout;
    token_call.body_limit = kMaxTokenBody;
    // The token endpoint gets the basic credentials, if any (token spec).
    auto token_ex = perform(token_call, Auth{"", options.credentials.has_value()});
    if (!token_ex) return token_ex.error().context("getting a registry token");
    if (token_ex->status != 200) {
      return httpError(*token_ex, "getting a token from " + describeUrl(realm));
    }
    auto body = json::parse(token_ex->body);
    if (!body || !body->is_object()) {
      return Error(errc::kUnauthenticated,
                   "token endpoint " + describeUrl(realm) + " did not return JSON");
    }
    std::string token;
    for (const char* field : {"token", "access_token"}) {
      const json::Json* it = findField(*body, field);
      if (it != nullptr && it->is_string() && !it->get_ref<const std::string&>().empty()) {
        token = it->get<std::string>();
        break;
      }
    }
    if (token.empty()) {
      return Error(errc::kUnauthenticated,
                   "token endpoint " + describeUrl(realm) + " returned no token");
    }
    std::lock_guard lock(mu);
    if (token == bearer) {
      return Error(errc::kUnauthenticated,
                   "registry " + ref.registry + " rejected a fresh token for scope " + scope)
          .with("scope", scope);
    }
    secrets.push_back(Redactor::global().add(token));
    bearer = std::move(token);
    ++auth_generation;
    return ok();
  }
};

RegistrySource::RegistrySource(ImageRef ref, RegistryOptions options)
    : impl_(std::make_unique<Impl>()) {
  std::call_once(g_curl_once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  impl_->ref = std::move(ref);
  impl_->options = std::move(options);
  std::string scheme = impl_->options.scheme;
  if (scheme.empty()) {
    const auto& insecure = impl_->options.insecure;
    const bool plain =
        isLoopback(impl_->ref.registry) ||
        std::find(insecure.begin(), insecure.end(), impl_->ref.registry) != insecure.end();
    scheme = plain ? "http" : "https";
  }
  impl_->base = scheme + "://" + impl_->ref.apiHost();
  if (impl_->options.credentials) {
    impl_->secrets.push_back(Redactor::global().add(impl_->options.credentials->password));
  }
}

RegistrySource::~RegistrySource() = default;

std::string RegistrySource::baseUrl() const { return impl_->base; }

std::string RegistrySource::describe() const {
  return impl_->ref.registry + "/" + impl_->ref.repository;
}

Result<FetchedManifest> RegistrySource::fetchManifest(std::string_view reference) {
  Impl::Call call;
  call.url = impl_->base + "/v2/" + impl_->ref.repository + "/manifests/" + std::string(reference);
  call.headers = {"Accept: " + std::string(media::kManifestAccept)};
  call.timeout = impl_->options.manifest_timeout;
  call.body_limit = kMaxManifestBytes;
  PLFM_ASSIGN_OR_RETURN(Exchange ex, impl_->send(call));
  if (ex.status != 200) {
    return httpError(ex, "manifest " + describe() + ":" + std::string(reference));
  }
  FetchedManifest m;
  m.bytes = std::move(ex.body);
  m.content_type = ex.headers["content-type"];
  return m;
}

Result<void> RegistrySource::fetchBlob(const Descriptor& blob, BlobWriter& writer) {
  Impl::Call call;
  call.url = impl_->base + "/v2/" + impl_->ref.repository + "/blobs/" + blob.digest.str();
  call.writer = &writer;
  PLFM_ASSIGN_OR_RETURN(Exchange ex, impl_->send(call));
  if (ex.status != 200 && ex.status != 206) {
    return httpError(ex, "blob " + blob.digest.str());
  }
  return ok();
}

Result<void> RegistrySource::checkBlob(const Descriptor& blob) {
  Impl::Call call;
  call.url = impl_->base + "/v2/" + impl_->ref.repository + "/blobs/" + blob.digest.str();
  call.head = true;
  call.timeout = impl_->options.manifest_timeout;
  PLFM_ASSIGN_OR_RETURN(Exchange ex, impl_->send(call));
  if (ex.status != 200) return httpError(ex, "blob " + blob.digest.str());
  // A registry that answers with another size does not hold this blob.
  if (auto len = ex.headers.find("content-length");
      len != ex.headers.end() && len->second != std::to_string(blob.size)) {
    return Error(errc::kNotFound, "blob " + blob.digest.str() + " in " + describe() +
                                      " has another size than its descriptor")
        .with("digest", blob.digest.str());
  }
  return ok();
}

}  // namespace plfm::image
