// writeLocalPki with OpenSSL 3's EVP and X509 APIs (no openssl CLI needed).
#include "plfm/http/pki.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <functional>
#include <memory>

#include "socket.h"

namespace plfm::http {
namespace {

using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using CertPtr = std::unique_ptr<X509, decltype(&X509_free)>;

Error sslError(std::string_view what) {
  const unsigned long e = ERR_get_error();  // NOLINT(google-runtime-int)
  ERR_clear_error();
  const char* reason = e != 0 ? ERR_reason_error_string(e) : nullptr;
  return Error(errc::kInternal, "local PKI: " + std::string(what) + ": " +
                                    (reason != nullptr ? reason : "unknown error"));
}

Result<KeyPtr> newKey() {
  KeyPtr key(EVP_EC_gen("P-256"), &EVP_PKEY_free);
  if (!key) return sslError("generate key");
  return key;
}

bool addExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1;
}

// An unsigned certificate for `key` named `cn`, issued by `issuer` (null:
// self-issued).
Result<CertPtr> newCert(EVP_PKEY* key, const std::string& cn, X509* issuer, int days) {
  CertPtr cert(X509_new(), &X509_free);
  if (!cert) return sslError("new certificate");
  X509_set_version(cert.get(), 2);
  std::unique_ptr<BIGNUM, decltype(&BN_free)> serial(BN_new(), &BN_free);
  if (!serial || BN_rand(serial.get(), 120, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return sslError("serial number");
  }
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 86400);  // NOLINT
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer)
                                                     : X509_get_subject_name(cert.get()));
  X509* signer = issuer != nullptr ? issuer : cert.get();
  if (!addExt(cert.get(), signer, NID_subject_key_identifier, "hash") ||
      !addExt(cert.get(), signer, NID_authority_key_identifier, "keyid:always")) {
    return sslError("key identifiers");
  }
  return cert;
}

Result<void> writeFile(const std::string& path, mode_t mode,
                       const std::function<bool(FILE*)>& write) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return errnoError("local PKI: create " + tmp, errno);
  ::fchmod(fd, mode);
  FILE* f = ::fdopen(fd, "w");
  if (f == nullptr) {
    ::close(fd);
    return errnoError("local PKI: open " + tmp, errno);
  }
  const bool written = write(f);
  if (std::fclose(f) != 0 || !written) {
    ::unlink(tmp.c_str());
    return Error(errc::kIo, "local PKI: cannot write " + path);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return errnoError("local PKI: rename to " + path, errno);
  }
  return ok();
}

Result<void> writeCert(const std::string& path, X509* cert) {
  return writeFile(path, 0644, [cert](FILE* f) { return PEM_write_X509(f, cert) == 1; });
}

Result<void> writeKey(const std::string& path, EVP_PKEY* key) {
  return writeFile(path, 0600, [key](FILE* f) {
    return PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  });
}

// "DNS:a,IP:::1" for the subjectAltName of a server certificate.
Result<std::string> subjectAltNames(const std::vector<std::string>& names) {
  if (names.empty()) return Error(errc::kInvalidArgument, "local PKI: no server names");
  std::string san;
  for (const std::string& n : names) {
    if (n.empty() || n.find_first_of(",\n") != std::string::npos) {
      return Error(errc::kInvalidArgument, "local PKI: invalid server name").with("name", n);
    }
    if (!san.empty()) san += ",";
    san += (internal::isIpLiteral(n) ? "IP:" : "DNS:") + n;
  }
  return san;
}

// A server certificate for `names` signed by `ca`, written with its new key
// to `cert_path` and `key_path`.
Result<void> issueServerCert(X509* ca, EVP_PKEY* ca_key, const std::vector<std::string>& names,
                             int days, const std::string& cert_path, const std::string& key_path) {
  PLFM_ASSIGN_OR_RETURN(const std::string san, subjectAltNames(names));
  PLFM_ASSIGN_OR_RETURN(KeyPtr key, newKey());
  PLFM_ASSIGN_OR_RETURN(CertPtr cert, newCert(key.get(), names.front(), ca, days));
  if (!addExt(cert.get(), ca, NID_basic_constraints, "critical,CA:FALSE") ||
      !addExt(cert.get(), ca, NID_key_usage, "critical,digitalSignature") ||
      !addExt(cert.get(), ca, NID_ext_key_usage, "serverAuth") ||
      !addExt(cert.get(), ca, NID_subject_alt_name, san)) {
    return sslError("server certificate extensions");
  }
  if (X509_sign(cert.get(), ca_key, EVP_sha256()) == 0) return sslError("sign certificate");
  PLFM_TRY(writeKey(key_path, key.get()));
  return writeCert(cert_path, cert.get());
}

}  // namespace

Result<LocalPki> writeLocalPki(const std::string& dir, const std::vector<std::string>& names,
                               const LocalPkiOptions& options) {
  PLFM_TRY(subjectAltNames(names));
  ERR_clear_error();
  PLFM_ASSIGN_OR_RETURN(KeyPtr ca_key, newKey());
  PLFM_ASSIGN_OR_RETURN(CertPtr ca,
                        newCert(ca_key.get(), options.ca_name, nullptr, options.validity_days));
  if (!addExt(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
      !addExt(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign,cRLSign")) {
    return sslError("CA extensions");
  }
  if (X509_sign(ca.get(), ca_key.get(), EVP_sha256()) == 0) return sslError("sign CA");

  LocalPki out{dir + "/ca.pem", dir + "/ca-key.pem", dir + "/server.pem", dir + "/server-key.pem"};
  PLFM_TRY(writeKey(out.ca_key, ca_key.get()));
  PLFM_TRY(writeCert(out.ca_cert, ca.get()));
  PLFM_TRY(issueServerCert(ca.get(), ca_key.get(), names, options.validity_days, out.server_cert,
                           out.server_key));
  return out;
}

Result<LocalPki> writeServerCert(const LocalPki& ca, const std::string& stem,
                                 const std::vector<std::string>& names,
                                 const LocalPkiOptions& options) {
  ERR_clear_error();
  std::unique_ptr<FILE, decltype(&std::fclose)> cert_file(std::fopen(ca.ca_cert.c_str(), "re"),
                                                          &std::fclose);
  std::unique_ptr<FILE, decltype(&std::fclose)> key_file(std::fopen(ca.ca_key.c_str(), "re"),
                                                         &std::fclose);
  if (!cert_file || !key_file) {
    return Error(errc::kIo, "local PKI: cannot open the CA's certificate or key")
        .with("path", ca.ca_cert);
  }
  CertPtr ca_cert(PEM_read_X509(cert_file.get(), nullptr, nullptr, nullptr), &X509_free);
  KeyPtr ca_key(PEM_read_PrivateKey(key_file.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  if (!ca_cert || !ca_key) return sslError("read the CA");
  LocalPki out = ca;
  out.server_cert = stem + ".pem";
  out.server_key = stem + "-key.pem";
  PLFM_TRY(issueServerCert(ca_cert.get(), ca_key.get(), names, options.validity_days,
                           out.server_cert, out.server_key));
  return out;
}

}  // namespace plfm::http
