// A registry front that demands bearer tokens, for testing the
// WWW-Authenticate challenge flow against a real registry: GET /token (with
// the expected basic credentials, if set) hands out a token, /v2/ requests
// without it get 401 and a Bearer challenge, and authorized requests are
// forwarded to the real docker-registry behind it. Blob GETs are answered
// with a 307 redirect to the registry itself, as registries backed by object
// storage do, so redirects are exercised too.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "plfm/core/result.h"
#include "plfm/http/http.h"

namespace plfm::image::testing {

class TokenProxy {
 public:
  // `backend` is "127.0.0.1:PORT" of the real registry.
  [[nodiscard]] static Result<std::unique_ptr<TokenProxy>> start(std::string backend,
                                                                 const std::string& username = "",
                                                                 const std::string& password = "");
  ~TokenProxy();
  TokenProxy(const TokenProxy&) = delete;
  TokenProxy& operator=(const TokenProxy&) = delete;

  // Also accepts this user at the token endpoint (another org's account).
  // Call before any request.
  void addUser(const std::string& username, const std::string& password);

  [[nodiscard]] std::string host() const { return host_; }
  [[nodiscard]] int blobGets() const { return blob_gets_; }
  [[nodiscard]] int blobHeads() const { return blob_heads_; }
  [[nodiscard]] int tokensIssued() const { return tokens_; }
  [[nodiscard]] int challenges() const { return challenges_; }
  [[nodiscard]] int redirects() const { return redirects_; }

 private:
  TokenProxy() = default;
  http::Response handle(http::Request& req);

  std::unique_ptr<http::Server> server_;
  std::string backend_;
  std::string host_;
  std::vector<std::string> basic_;  // accepted "Basic ..." headers; empty: anonymous tokens
  std::string token_ = "plfm-test-token-7f3a";
  std::atomic<int> tokens_{0};
  std::atomic<int> challenges_{0};
  std::atomic<int> redirects_{0};
  std::atomic<int> blob_gets_{0};
  std::atomic<int> blob_heads_{0};
};

}  // namespace plfm::image::testing
