#include "tls.h"

#include <openssl/err.h>

#include <algorithm>
#include <climits>
#include <cstring>

namespace plfm::hello {
namespace {

constexpr unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

// RFC 7301 §3.2: pick http/1.1 if offered; without overlap carry on with no
// ALPN (curl then speaks HTTP/1.1 anyway).
int selectAlpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen,
               const unsigned char* in, unsigned int inlen, void* /*arg*/) {
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kHttp11, sizeof kHttp11, in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

}  // namespace

std::string lastTlsError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no OpenSSL error";
  const char* reason = ERR_reason_error_string(e);
  return reason != nullptr ? reason : "unknown OpenSSL error";
}

Result<TlsContext> TlsContext::load(const std::string& cert_file, const std::string& key_file) {
  TlsContext t;
  t.ctx_.reset(SSL_CTX_new(TLS_server_method()));
  if (!t.ctx_) return Error(errc::kInternal, "SSL_CTX_new: " + lastTlsError());
  SSL_CTX* c = t.ctx_.get();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(c, cert_file.c_str()) != 1) {
    return Error(errc::kFailedPrecondition, "cannot load the certificate: " + lastTlsError())
        .with("path", cert_file);
  }
  if (SSL_CTX_use_PrivateKey_file(c, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return Error(errc::kFailedPrecondition, "cannot load the private key: " + lastTlsError())
        .with("path", key_file);
  }
  if (SSL_CTX_check_private_key(c) != 1) {
    return Error(errc::kFailedPrecondition, "the private key does not match the certificate")
        .with("path", key_file);
  }
  SSL_CTX_set_alpn_select_cb(c, selectAlpn, nullptr);
  return t;
}

TlsStream::TlsStream(SSL_CTX* ctx, int fd) : ssl_(SSL_new(ctx)) {
  if (ssl_ != nullptr) SSL_set_fd(ssl_, fd);
}

TlsStream::~TlsStream() { SSL_free(ssl_); }

bool TlsStream::handshake(std::string& error) {
  if (ssl_ == nullptr) {
    error = "SSL_new: " + lastTlsError();
    return false;
  }
  ERR_clear_error();
  if (SSL_accept(ssl_) == 1) return true;
  error = ERR_peek_error() != 0 ? lastTlsError() : std::string("connection closed or timed out");
  return false;
}

std::string TlsStream::serverName() const {
  const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
  return name != nullptr ? name : "";
}

std::string TlsStream::version() const { return SSL_get_version(ssl_); }

long TlsStream::read(char* buf, size_t len) {
  int n = SSL_read(ssl_, buf, static_cast<int>(std::min<size_t>(len, INT_MAX)));
  if (n > 0) return n;
  return SSL_get_error(ssl_, n) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}

bool TlsStream::writeAll(std::string_view data) {
  while (!data.empty()) {
    int n = SSL_write(ssl_, data.data(), static_cast<int>(std::min<size_t>(data.size(), INT_MAX)));
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void TlsStream::shutdown() {
  (void)SSL_shutdown(ssl_);
  ERR_clear_error();
}

}  // namespace plfm::hello
