#include "token_proxy.h"

#include <openssl/evp.h>

#include <algorithm>

#include "plfm/core/strings.h"

namespace plfm::image::testing {

namespace {
std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}
}  // namespace

Result<std::unique_ptr<TokenProxy>> TokenProxy::start(std::string backend,
                                                      const std::string& username,
                                                      const std::string& password) {
  std::unique_ptr<TokenProxy> p(new TokenProxy());
  p->backend_ = std::move(backend);
  if (!username.empty()) p->basic_.push_back("Basic " + base64(username + ":" + password));
  http::ServerOptions o;
  o.listen = {"127.0.0.1:0"};
  TokenProxy* self = p.get();
  p->server_ =
      std::make_unique<http::Server>(o, [self](http::Request& r) { return self->handle(r); });
  PLFM_TRY(p->server_->start());
  p->host_ = p->server_->endpoints().front();
  return p;
}

void TokenProxy::addUser(const std::string& username, const std::string& password) {
  basic_.push_back("Basic " + base64(username + ":" + password));
}

TokenProxy::~TokenProxy() {
  if (server_) server_->stop(std::chrono::milliseconds(100));
}

http::Response TokenProxy::handle(http::Request& req) {
  if (req.path == "/token") {
    const std::string auth(req.header("Authorization").value_or(""));
    if (!basic_.empty() && std::find(basic_.begin(), basic_.end(), auth) == basic_.end()) {
      return http::Response::json(401, R"({"errors":[{"code":"UNAUTHORIZED"}]})");
    }
    if (req.queryParam("scope").value_or("").find("repository:") != 0 ||
        req.queryParam("service").value_or("") != "plfm-test") {
      return http::Response::json(400, R"({"error":"bad scope or service"})");
    }
    ++tokens_;
    return http::Response::json(200, R"({"token":")" + token_ + R"(","expires_in":300})");
  }
  if (req.header("Authorization").value_or("") != "Bearer " + token_) {
    ++challenges_;
    // /v2/<repo>/manifests/<ref> -> repository:<repo>:pull
    std::string repo;
    if (auto m = req.path.find("/manifests/"); m != std::string::npos)
      repo = req.path.substr(4, m - 4);
    if (auto b = req.path.find("/blobs/"); b != std::string::npos) repo = req.path.substr(4, b - 4);
    auto resp = http::Response::json(401, R"({"errors":[{"code":"UNAUTHORIZED"}]})");
    std::string challenge = R"(Bearer realm="http://)";
    challenge += host_;
    challenge += R"(/token",service="plfm-test",scope="repository:)";
    challenge += repo;
    challenge += R"(:pull")";
    resp.headers.set("WWW-Authenticate", challenge);
    return resp;
  }
  if (req.path.find("/blobs/") != std::string::npos) {
    ++redirects_;
    ++(req.method == "HEAD" ? blob_heads_ : blob_gets_);
    http::Response resp;
    resp.status = 307;
    resp.headers.set("Location", "http://" + backend_ + req.target);
    return resp;
  }
  http::ClientRequest fwd;
  fwd.method = req.method;
  fwd.url = "http://" + backend_ + req.target;
  if (auto a = req.header("Accept")) fwd.headers.set("Accept", std::string(*a));
  auto r = http::request(fwd);
  if (!r) return http::Response::text(502, r.error().toString());
  http::Response resp;
  resp.status = r->status;
  resp.body = std::move(r->body);
  for (const char* h : {"Content-Type", "Docker-Content-Digest"}) {
    if (auto v = r->headers.get(h)) resp.headers.set(h, std::string(*v));
  }
  return resp;
}

}  // namespace plfm::image::testing
