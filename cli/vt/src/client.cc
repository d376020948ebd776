#include "client.h"

#include <thread>

#include "plfm/core/id.h"
#include "plfm/core/json.h"
#include "plfm/http/http.h"

namespace plfm::vt {
namespace {

constexpr std::chrono::milliseconds kBackoff[] = {
    std::chrono::milliseconds(200), std::chrono::milliseconds(500), std::chrono::milliseconds(1000),
    std::chrono::milliseconds(2000)};

std::string retryNotice(const std::string& method, const std::string& target,
                        const std::string& why, int more) {
  return "retrying " + method + " " + target + " (" + why + "), up to " + std::to_string(more) +
         " more times";
}

// "cannot reach WHERE: WHY".
Error unreachable(const std::string& where, const std::string& why) {
  std::string message = "cannot reach ";
  message += where;
  message += ": ";
  message += why;
  return Error(errc::kUnavailable, std::move(message));
}

std::chrono::milliseconds backoff(int attempt) {
  constexpr int kSteps = sizeof(kBackoff) / sizeof(kBackoff[0]);
  return kBackoff[std::min(attempt, kSteps - 1)];
}

}  // namespace

std::string urlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u == '-' ||
        u == '_' || u == '.' || u == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xF];
    }
  }
  return out;
}

namespace {

// A context's URLs as ApiClient keeps them: without a trailing slash.
std::vector<std::string> trimmed(std::vector<std::string> urls) {
  for (std::string& url : urls) {
    while (!url.empty() && url.back() == '/') url.pop_back();
  }
  if (urls.empty()) urls.emplace_back();  // fails at the first request with a clear error
  return urls;
}

}  // namespace

ApiClient::ApiClient(std::vector<std::string> base_urls, std::string token, ApiOptions options)
    : urls_(trimmed(std::move(base_urls))),
      token_(std::move(token)),
      options_(std::move(options)) {}

ApiClient::ApiClient(std::string base_url, std::string token, ApiOptions options)
    : ApiClient(std::vector<std::string>{std::move(base_url)}, std::move(token),
                std::move(options)) {}

ApiClient::~ApiClient() = default;

std::string ApiClient::newKey() { return "vt-" + RequestId::generate().str().substr(4); }

Result<ApiResponse> ApiClient::send(const std::string& method, const std::string& target,
                                    const std::string& body, const std::string& key,
                                    std::chrono::milliseconds timeout) {
  http::ClientRequest req;
  req.method = method;
  req.timeout = timeout.count() > 0 ? timeout : options_.timeout;
  req.tls.ca_file = options_.ca_file;
  req.headers.set("Authorization", "Bearer " + token_);
  req.headers.set("Accept", "application/json");
  req.headers.set("User-Agent", "vt/0.1");
  if (!key.empty()) req.headers.set("Idempotency-Key", key);
  if (method != "GET") {
    req.headers.set("Content-Type", "application/json");
    req.body = body;
  }
  for (int attempt = 0;; ++attempt) {
    // One round: the URL that answered last, then each other one while they
    // fail in a way another replica may not share. The Idempotency-Key is
    // the same on every URL and every attempt.
    Result<http::Response> r = Error(errc::kInternal, "no control-plane URL tried");
    std::string url;
    for (size_t tried = 0; tried < urls_.size(); ++tried) {
      const size_t i = urls_.current();
      url = urls_.url(i);
      req.url = url + target;
      req.headers.set("X-Request-Id", RequestId::generate().str());
      r = http::request(req);
      if (!http::shouldTryNext(r)) {
        urls_.succeeded(i);
        break;
      }
      (void)urls_.failed(i);
    }
    std::string where = "the control plane at " + url;
    if (urls_.size() > 1) {
      where = "any of the control plane's " + std::to_string(urls_.size()) + " URLs (the last, ";
      where += url;
      where += ")";
    }
    std::string why;
    if (!r && r.error().is(errc::kFailedPrecondition)) {
      // An untrusted certificate or a refused plain http:// will not change.
      return Error(errc::kFailedPrecondition,
                   "cannot talk to " + where + ": " + r.error().message())
          .with("url", url)
          .with("hint",
                "give the CA that signed its certificate: `vt login --url URL --ca FILE` or "
                "VT_CA_FILE");
    }
    if (!r) {
      why = r.error().message();
    } else if (r->status == 503 ||
               (r->status == 409 && r->body.find("idempotency_in_progress") != std::string::npos)) {
      why = "the control plane answered " + std::to_string(r->status);
    } else {
      ApiResponse out;
      out.status = r->status;
      out.request_id = std::string(r->headers.get("X-Request-Id").value_or(""));
      out.replayed = r->headers.get("Idempotent-Replayed").value_or("") == "true";
      out.body = std::move(r->body);
      return out;
    }
    // GETs are always safe to repeat; mutations are safe because the key is
    // the same on every attempt.
    if (attempt + 1 >= options_.attempts) {
      if (!r) {
        return unreachable(where, why).with("url", url);
      }
      ApiResponse out;
      out.status = r->status;
      out.request_id = std::string(r->headers.get("X-Request-Id").value_or(""));
      out.body = std::move(r->body);
      return out;
    }
    // One notice per request, not one per attempt.
    if (options_.on_retry && attempt == 0) {
      options_.on_retry(retryNotice(method, target, why, options_.attempts - 1));
    }
    // A refused connection means the server is not there at all: give up
    // sooner than for a dropped response.
    if (!r && why.find("refused") != std::string::npos && attempt >= 1) {
      return unreachable(where, why).with("url", url);
    }
    std::this_thread::sleep_for(backoff(attempt));
  }
}

Result<nlohmann::json> ApiClient::decode(const ApiResponse& r) const {
  auto parsed = json::parse(r.body);
  if (r.status >= 200 && r.status < 300) {
    if (!parsed) {
      return Error(errc::kInternal, "the control plane sent a response that is not JSON")
          .with("status", std::to_string(r.status))
          .with("request_id", r.request_id);
    }
    return std::move(*parsed);
  }
  std::string code = "http_" + std::to_string(r.status);
  std::string message = "the control plane answered HTTP " + std::to_string(r.status);
  Error e(code, message);
  if (parsed && parsed->is_object() && parsed->contains("error") &&
      (*parsed)["error"].is_object()) {
    const auto& err = (*parsed)["error"];
    e = Error(err.value("code", code), err.value("message", message));
    if (err.contains("details") && err["details"].is_object()) {
      for (const auto& [k, v] : err["details"].items()) {
        e.with(k, v.is_string() ? v.get<std::string>() : v.dump());
      }
    }
  }
  e.with("status", std::to_string(r.status));
  if (!r.request_id.empty()) e.with("request_id", r.request_id);
  return e;
}

Result<nlohmann::json> ApiClient::get(const std::string& target,
                                      std::chrono::milliseconds timeout) {
  PLFM_ASSIGN_OR_RETURN(last_, send("GET", target, "", "", timeout));
  return decode(last_);
}

Result<std::vector<nlohmann::json>> ApiClient::listAll(const std::string& target) {
  std::vector<nlohmann::json> items;
  std::string cursor;
  const char* sep = target.find('?') == std::string::npos ? "?" : "&";
  for (int page = 0; page < 10000; ++page) {
    std::string t = target + sep + "limit=200";
    if (!cursor.empty()) t += "&cursor=" + urlEncode(cursor);
    PLFM_ASSIGN_OR_RETURN(auto body, get(t));
    if (!body.contains("items") || !body["items"].is_array()) {
      return Error(errc::kInternal, "the control plane sent a list without items");
    }
    for (auto& item : body["items"]) items.push_back(std::move(item));
    if (!body.contains("next_cursor") || !body["next_cursor"].is_string()) break;
    cursor = body["next_cursor"].get<std::string>();
  }
  return items;
}

Result<nlohmann::json> ApiClient::mutate(const std::string& method, const std::string& target,
                                         const nlohmann::json& body, std::string key) {
  if (key.empty()) key = newKey();
  PLFM_ASSIGN_OR_RETURN(last_, send(method, target, body.dump(), key, {}));
  return decode(last_);
}

}  // namespace plfm::vt
