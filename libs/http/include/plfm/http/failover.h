// Several base URLs for one service, tried in order: how the node agent, the
// ingress and `vt` talk to a control plane that runs as several replicas
// (docs/specs/control-plane/ha.md, "Clients").
//
// A client talks to one replica at a time (the current one) and stays with it
// while it answers. When it fails in a way another replica may not share
// (connect refused or reset, a timeout, a certificate the client does not
// trust, or a 502/503/504), the same request goes to the next URL, with the
// same headers: an Idempotency-Key the caller set travels with it, so a
// mutation retried on another replica replays instead of running twice. A
// request that is neither GET/HEAD nor carries an Idempotency-Key goes to the
// next URL only when it never reached the first (connect, TLS or send
// failed): once sent, a lost answer or a 502/503/504 is the caller's to
// judge. When every URL failed, the caller waits (backoff()) and tries again.
//
//   auto urls = http::parseBaseUrls("--control-plane", flag_values);
//   http::FailoverClient cp(*urls, {.ca_file = ca});
//   auto resp = cp.send("GET", "/v1/nodes/n1/plan?after=7&wait=30", headers);
//   if (!resp) sleep(cp.backoff());
//
// Each URL has its own keep-alive connection and its own TLS check: the
// certificate of whichever replica answers must name that URL's host.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/result.h"
#include "plfm/http/http.h"

namespace plfm::http {

// Checks one base URL as Client takes it: "https://host[:port][/prefix]",
// "http://..." or "unix:/path". The error says what is wrong with it.
[[nodiscard]] Result<void> checkBaseUrl(std::string_view url);

// The URLs of a list setting: each value may hold several, comma-separated
// ("--control-plane a --control-plane b" and "--control-plane a,b" alike);
// spaces around them and empty parts are dropped, and so are repeats. Every
// URL is checked; an error names `setting` and the bad value. An empty result
// is an error too.
[[nodiscard]] Result<std::vector<std::string>> parseBaseUrls(
    std::string_view setting, const std::vector<std::string>& values);

// True when `r` failed in a way the next replica may not share: a transport
// error (unavailable, deadline exceeded), a server the client does not trust
// (failed precondition: nothing was sent to it), or a 502, 503 or 504.
[[nodiscard]] bool shouldTryNext(const Result<Response>& r);
// shouldTryNext() for a request that is not safe to send twice (not GET or
// HEAD, no Idempotency-Key): only when it cannot have reached the server.
[[nodiscard]] bool shouldTryNextUnkeyed(const Result<Response>& r);

// Exponential backoff for when every URL failed: `initial`, doubled after
// each further failed round, at most `max`.
struct BackoffPolicy {
  std::chrono::milliseconds initial{500};
  std::chrono::milliseconds max{10'000};
};

// The order and the stickiness of a URL list, without I/O (the logic that
// FailoverClient runs, apart so it is tested alone). Not thread-safe.
class EndpointList {
 public:
  explicit EndpointList(std::vector<std::string> urls, BackoffPolicy backoff = {});

  [[nodiscard]] size_t size() const { return urls_.size(); }
  [[nodiscard]] const std::string& url(size_t i) const { return urls_[i]; }
  [[nodiscard]] const std::vector<std::string>& urls() const { return urls_; }
  // The URL to use now: the first at the start, then the last one that
  // answered (sticky), or the one after the last that failed.
  [[nodiscard]] size_t current() const { return current_; }

  // URL `i` answered: it stays current, and the backoff starts over.
  void succeeded(size_t i);
  // URL `i` failed: when it is the current one, the next (wrapping) becomes
  // current. Returns true when every URL has failed since the last success.
  bool failed(size_t i);
  // The wait before the next round once a whole round failed; each call
  // doubles the next, up to the policy's max, until succeeded() resets it.
  [[nodiscard]] std::chrono::milliseconds nextBackoff();

 private:
  std::vector<std::string> urls_;
  BackoffPolicy policy_;
  size_t current_ = 0;
  size_t failed_in_row_ = 0;  // distinct failures since the last success
  std::chrono::milliseconds next_backoff_;
};

struct FailoverOptions {
  ClientTlsOptions tls = {};
  BackoffPolicy backoff = {};
};

// http::Client over an EndpointList: send() tries the current URL, then each
// other one once, and returns the first answer that is not a reason to move
// on (any HTTP status but 502/503/504), or the last failure. An empty URL
// list fails every send as an invalid URL. Not thread-safe: one per thread,
// as Client.
class FailoverClient {
 public:
  explicit FailoverClient(std::vector<std::string> base_urls, const FailoverOptions& options = {});
  ~FailoverClient();
  FailoverClient(FailoverClient&&) noexcept;
  FailoverClient& operator=(FailoverClient&&) noexcept;

  // As Client::send. A failure on every URL is the last URL's error (or 5xx
  // response), its message prefixed with how many were tried.
  [[nodiscard]] Result<Response> send(const std::string& method, const std::string& target,
                                      const Headers& headers = {}, const std::string& body = {},
                                      std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // The URL send() uses first.
  [[nodiscard]] const std::string& currentUrl() const;
  [[nodiscard]] const std::vector<std::string>& urls() const;
  // How long to wait after a send() that failed on every URL (nextBackoff).
  [[nodiscard]] std::chrono::milliseconds backoff();

 private:
  EndpointList list_;
  std::vector<Client> clients_;  // one per URL, in list order
};

}  // namespace plfm::http
