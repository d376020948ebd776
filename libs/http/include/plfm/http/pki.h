// A small local PKI for TLS between our own processes: one CA and one server
// certificate it signs. `vt dev up` uses it for the dev platform's control
// plane, and tests use it to get certificates at test time.
//
//   PLFM_ASSIGN_OR_RETURN(http::LocalPki pki,
//                         http::writeLocalPki(dir, {"localhost", "::1", "127.0.0.1"}));
//   options.tls = http::ServerTlsOptions{pki.server_cert, pki.server_key};
//   http::Client client(url, {.ca_file = pki.ca_cert});
//
// Keys are ECDSA P-256, written with mode 0600. Nothing here logs or returns
// key material.
#pragma once

#include <string>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::http {

struct LocalPki {
  std::string ca_cert;      // <dir>/ca.pem
  std::string ca_key;       // <dir>/ca-key.pem (0600)
  std::string server_cert;  // <dir>/server.pem, signed by the CA
  std::string server_key;   // <dir>/server-key.pem (0600)
};

struct LocalPkiOptions {
  std::string ca_name = "plfm local CA";
  int validity_days = 825;
};

// Writes a fresh CA and a server certificate for `names` (DNS names and IP
// literals, each a subjectAltName) into `dir`, which must exist. Replaces the
// files of an earlier call.
[[nodiscard]] Result<LocalPki> writeLocalPki(const std::string& dir,
                                             const std::vector<std::string>& names,
                                             const LocalPkiOptions& options = {});

// Another server certificate from the CA of `ca` (its ca_cert and ca_key):
// for `names`, written to STEM.pem with its key in STEM-key.pem (0600). The
// result is `ca` with server_cert and server_key naming the new files. Each
// control-plane replica can have its own this way, all trusted through one
// CA file.
[[nodiscard]] Result<LocalPki> writeServerCert(const LocalPki& ca, const std::string& stem,
                                               const std::vector<std::string>& names,
                                               const LocalPkiOptions& options = {});

// The lowercase hex SHA-256 of the DER of the first certificate in
// `pem_file`: what ClientTlsOptions::pinned_cert_sha256 compares against.
[[nodiscard]] Result<std::string> certificateSha256(const std::string& pem_file);

}  // namespace plfm::http
