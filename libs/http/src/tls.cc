// GCC 12: a -Wnull-dereference false positive inside Asio, for this file
// and its unity batch only (libs/http/CMakeLists.txt).
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include "tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ssl/error.hpp>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>

#include "plfm/core/log.h"
#include "plfm/core/sha256.h"
#include "plfm/http/pki.h"
#include "socket.h"

namespace plfm::http::internal {

// Also declared by websocket_session.h: one alias of the namespace, not a
// file-local one that would shadow it in a unity batch.
using BoostError = boost::system::error_code;

namespace {

namespace ssl = boost::asio::ssl;

std::string opensslReason() {
  const unsigned long e = ERR_peek_last_error();  // NOLINT(google-runtime-int)
  ERR_clear_error();
  if (e == 0) return "unknown error";
  const char* reason = ERR_reason_error_string(e);
  return reason != nullptr ? std::string(reason) : "error " + std::to_string(e);
}

Error fileError(std::string_view what, const std::string& path) {
  return Error(errc::kInvalidArgument,
               "TLS: cannot use " + std::string(what) + " " + path + ": " + opensslReason())
      .with("file", path);
}

std::shared_ptr<ssl::context> baseContext(ssl::context::method method) {
  auto ctx = std::make_shared<ssl::context>(method);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_compression);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  return ctx;
}

// Reads the first PEM certificate of `path` as DER.
Result<std::string> readCertDer(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "re"), &std::fclose);
  if (!f) return errnoError("TLS: open pinned certificate " + path, errno).with("file", path);
  std::unique_ptr<X509, void (*)(X509*)> cert(PEM_read_X509(f.get(), nullptr, nullptr, nullptr),
                                              &X509_free);
  if (!cert) return fileError("pinned certificate", path);
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert.get(), &der);
  if (len <= 0) return fileError("pinned certificate", path);
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

Result<std::string> peerCertDer(SSL* ssl) {
  std::unique_ptr<X509, void (*)(X509*)> cert(SSL_get1_peer_certificate(ssl), &X509_free);
  if (!cert) return Error(errc::kUnavailable, "server presented no certificate");
  unsigned char* der = nullptr;
  const int len = i2d_X509(cert.get(), &der);
  if (len <= 0) return Error(errc::kInternal, "cannot encode the server's certificate");
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

}  // namespace

}  // namespace plfm::http::internal

namespace plfm::http {

Result<std::string> certificateSha256(const std::string& pem_file) {
  ERR_clear_error();
  PLFM_ASSIGN_OR_RETURN(std::string der, internal::readCertDer(pem_file));
  return Sha256::hex(der);
}

}  // namespace plfm::http

namespace plfm::http::internal {

boost::asio::io_context& ioContext() {
  // Never destroyed: its threads may still run at exit.
  static auto* const kContext = new boost::asio::io_context();
  return *kContext;
}

void startIoThreads() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Keeps run() from returning while no connection has work.
    static auto* const kGuard =
        new boost::asio::executor_work_guard<boost::asio::io_context::executor_type>(
            ioContext().get_executor());
    (void)kGuard;
    // Two threads: one slow TLS operation does not hold up every connection.
    // Each connection runs on its own strand.
    for (int i = 0; i < 2; ++i) {
      std::thread([] {
        for (;;) {
          try {
            ioContext().run();
            return;
          } catch (const std::exception& e) {
            log::error("http: asynchronous handler threw", {{"error", e.what()}});
          }
        }
      }).detach();
    }
  });
}

Result<ServerTls> makeServerTls(const ServerTlsOptions& options) {
  if (options.cert_file.empty() || options.key_file.empty()) {
    return Error(errc::kInvalidArgument, "TLS: both a certificate file and a key file are needed");
  }
  ERR_clear_error();
  ServerTls out;
  out.context = baseContext(ssl::context::tls_server);
  SSL_CTX* ctx = out.context->native_handle();
  // Our clients never resume sessions; tickets would only linger unread on
  // kept-alive connections.
  SSL_CTX_set_num_tickets(ctx, 0);
  if (SSL_CTX_use_certificate_chain_file(ctx, options.cert_file.c_str()) != 1) {
    return fileError("certificate", options.cert_file);
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return fileError("private key", options.key_file);
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return Error(errc::kInvalidArgument, "TLS: private key " + options.key_file +
                                             " does not match certificate " + options.cert_file)
        .with("file", options.key_file);
  }
  return out;
}

Result<ClientTls> makeClientTls(const ClientTlsOptions& options) {
  ERR_clear_error();
  ClientTls out;
  out.context = baseContext(ssl::context::tls_client);
  if (!options.pinned_cert_sha256.empty()) {
    if (options.pinned_cert_sha256.size() != 64 ||
        options.pinned_cert_sha256.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return Error(errc::kInvalidArgument,
                   "TLS: a pinned certificate SHA-256 is 64 lowercase hex digits");
    }
    out.pinned_sha256 = options.pinned_cert_sha256;
    out.context->set_verify_mode(ssl::verify_none);
    return out;
  }
  if (!options.pinned_cert_file.empty()) {
    PLFM_ASSIGN_OR_RETURN(out.pinned_der, readCertDer(options.pinned_cert_file));
    // The pin is checked after the handshake (clientHandshake).
    out.context->set_verify_mode(ssl::verify_none);
    return out;
  }
  out.context->set_verify_mode(ssl::verify_peer);
  if (options.ca_file.empty()) {
    if (SSL_CTX_set_default_verify_paths(out.context->native_handle()) != 1) {
      return Error(errc::kInternal, "TLS: cannot load the system CA store: " + opensslReason());
    }
  } else if (SSL_CTX_load_verify_locations(out.context->native_handle(), options.ca_file.c_str(),
                                           nullptr) != 1) {
    return fileError("CA file", options.ca_file);
  }
  return out;
}

Result<void> clientHandshake(TlsStream& stream, const ClientTls& tls, const std::string& host,
                             const std::string& display) {
  SSL* ssl = stream.native_handle();
  const bool ip = isIpLiteral(host);
  if (!ip) {
    // SSL_set_tlsext_host_name, without the macro's C cast.
    SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(host.c_str()));
  }
  const bool pinned = !tls.pinned_der.empty() || !tls.pinned_sha256.empty();
  if (!pinned) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    const int set = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                       : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    if (set != 1) return Error(errc::kInvalidArgument, "TLS: cannot verify host " + host);
  }
  ERR_clear_error();
  BoostError ec;
  stream.handshake(ssl::stream_base::client, ec);
  if (ec) {
    const long verify = SSL_get_verify_result(ssl);  // NOLINT(google-runtime-int)
    std::string why;
    if (verify != X509_V_OK) {
      why = std::string("server certificate not trusted: ") +
            X509_verify_cert_error_string(verify) +
            (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH
                 ? " (the certificate does not name " + host + ")"
                 : " (check the CA file)");
    } else if (ec == boost::beast::error::timeout) {
      return Error(errc::kDeadlineExceeded, "TLS handshake with " + display + ": timed out")
          .with("address", display);
    } else {
      why = ec.message();
    }
    // Not trusting the server is not transient: callers should not retry.
    return Error(verify != X509_V_OK ? errc::kFailedPrecondition : errc::kUnavailable,
                 "TLS handshake with " + display + " failed: " + why)
        .with("address", display);
  }
  if (pinned) {
    PLFM_ASSIGN_OR_RETURN(std::string der, peerCertDer(ssl));
    const bool match =
        tls.pinned_sha256.empty() ? der == tls.pinned_der : Sha256::hex(der) == tls.pinned_sha256;
    if (!match) {
      return Error(errc::kFailedPrecondition, "TLS handshake with " + display +
                                                  " failed: server certificate does not match the "
                                                  "pinned certificate")
          .with("address", display);
    }
  }
  return ok();
}

}  // namespace plfm::http::internal
