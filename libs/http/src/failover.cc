#include "plfm/http/failover.h"

#include <algorithm>

#include "plfm/core/assert.h"
#include "plfm/core/strings.h"

namespace plfm::http {

Result<std::vector<std::string>> parseBaseUrls(std::string_view setting,
                                               const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const std::string& value : values) {
    size_t start = 0;
    while (start <= value.size()) {
      const size_t comma = std::min(value.find(',', start), value.size());
      std::string url(trim(std::string_view(value).substr(start, comma - start)));
      start = comma + 1;
      while (url.size() > 1 && url.back() == '/' && !url.starts_with("unix:")) url.pop_back();
      if (url.empty() || std::find(out.begin(), out.end(), url) != out.end()) continue;
      if (auto r = checkBaseUrl(url); !r) {
        return Error(errc::kInvalidArgument, std::string(setting) + ": " + r.error().message())
            .with("field", std::string(setting));
      }
      out.push_back(std::move(url));
    }
  }
  if (out.empty()) {
    return Error(errc::kInvalidArgument,
                 std::string(setting) + ": needs at least one URL (https://HOST:PORT)")
        .with("field", std::string(setting));
  }
  return out;
}

bool shouldTryNext(const Result<Response>& r) {
  if (!r) {
    return r.error().is(errc::kUnavailable) || r.error().is(errc::kDeadlineExceeded) ||
           r.error().is(errc::kFailedPrecondition);
  }
  return r->status == 502 || r->status == 503 || r->status == 504;
}

bool shouldTryNextUnkeyed(const Result<Response>& r) {
  return !r && shouldTryNext(r) && r.error().detail("request_sent").empty();
}

EndpointList::EndpointList(std::vector<std::string> urls, BackoffPolicy backoff)
    : urls_(std::move(urls)), policy_(backoff), next_backoff_(policy_.initial) {
  PLFM_ASSERT(!urls_.empty(), "an EndpointList needs at least one URL");
}

void EndpointList::succeeded(size_t i) {
  PLFM_ASSERT(i < urls_.size(), "endpoint index out of range");
  current_ = i;
  failed_in_row_ = 0;
  next_backoff_ = policy_.initial;
}

bool EndpointList::failed(size_t i) {
  PLFM_ASSERT(i < urls_.size(), "endpoint index out of range");
  if (i == current_) {
    current_ = (current_ + 1) % urls_.size();
    ++failed_in_row_;
  }
  return failed_in_row_ >= urls_.size();
}

std::chrono::milliseconds EndpointList::nextBackoff() {
  const std::chrono::milliseconds wait = next_backoff_;
  next_backoff_ = std::min(next_backoff_ * 2, policy_.max);
  return wait;
}

namespace {

// No URL at all acts as one empty URL: each send fails as an invalid URL
// would, instead of the client being impossible to make.
std::vector<std::string> atLeastOne(std::vector<std::string> urls) {
  if (urls.empty()) urls.emplace_back();
  return urls;
}

}  // namespace

FailoverClient::FailoverClient(std::vector<std::string> base_urls, const FailoverOptions& options)
    : list_(atLeastOne(std::move(base_urls)), options.backoff) {
  clients_.reserve(list_.size());
  for (const std::string& url : list_.urls()) clients_.emplace_back(url, options.tls);
}

FailoverClient::~FailoverClient() = default;
FailoverClient::FailoverClient(FailoverClient&&) noexcept = default;
FailoverClient& FailoverClient::operator=(FailoverClient&&) noexcept = default;

const std::string& FailoverClient::currentUrl() const { return list_.url(list_.current()); }

const std::vector<std::string>& FailoverClient::urls() const { return list_.urls(); }

std::chrono::milliseconds FailoverClient::backoff() { return list_.nextBackoff(); }

Result<Response> FailoverClient::send(const std::string& method, const std::string& target,
                                      const Headers& headers, const std::string& body,
                                      std::chrono::milliseconds timeout) {
  Result<Response> last = Error(errc::kInternal, "no URL tried");
  const bool repeatable =
      method == "GET" || method == "HEAD" || headers.get("Idempotency-Key").has_value();
  for (size_t tried = 0; tried < list_.size(); ++tried) {
    const size_t i = list_.current();
    // The same method, target, headers (an Idempotency-Key among them) and
    // body on every URL.
    last = clients_[i].send(method, target, headers, body, timeout);
    if (!(repeatable ? shouldTryNext(last) : shouldTryNextUnkeyed(last))) {
      list_.succeeded(i);
      return last;
    }
    (void)list_.failed(i);
  }
  if (!last && list_.size() > 1) {
    last.error().context("all " + std::to_string(list_.size()) + " URLs failed; the last");
  }
  return last;
}

}  // namespace plfm::http
