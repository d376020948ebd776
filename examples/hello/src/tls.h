// TLS for the HTTPS port (OpenSSL, linked statically). The certificate and
// key are the image's own: the ingress passes TLS through untouched (ADR
// 0007), so this process is where connections are decrypted.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "plfm/core/result.h"
#include "stream.h"

namespace plfm::hello {

class TlsContext {
 public:
  // TLS 1.2 and 1.3, ALPN "http/1.1". Fails, with OpenSSL's reason, when the
  // files cannot be read or the key does not match the certificate.
  [[nodiscard]] static Result<TlsContext> load(const std::string& cert_file,
                                               const std::string& key_file);
  [[nodiscard]] SSL_CTX* get() const { return ctx_.get(); }

 private:
  struct Free {
    void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
  };
  std::unique_ptr<SSL_CTX, Free> ctx_;
};

class TlsStream : public Stream {
 public:
  TlsStream(SSL_CTX* ctx, int fd);
  ~TlsStream() override;
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // Runs the server handshake. On failure `error` holds OpenSSL's reason
  // (never key material).
  [[nodiscard]] bool handshake(std::string& error);
  // The server name the client sent (SNI), "" when none.
  [[nodiscard]] std::string serverName() const;
  [[nodiscard]] std::string version() const;

  long read(char* buf, size_t len) override;
  bool writeAll(std::string_view data) override;
  // Sends close_notify (best effort).
  void shutdown();

 private:
  SSL* ssl_;
};

// The reason of the last OpenSSL error on this thread, and clears the queue.
[[nodiscard]] std::string lastTlsError();

}  // namespace plfm::hello
