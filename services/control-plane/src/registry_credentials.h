// Per-org registry credentials (docs/specs/api/v1.md, "Registry
// credentials"): the typed edge (registry hosts as tenants name them) and
// the write side (table registry_credentials). The password or token is
// sealed with the secrets Keyring (secrets_crypto.h) under a fresh data key
// per version, its associated data binding it to the org, the registry, the
// username and the version, so a ciphertext cannot be moved to another org's
// row. Nothing here logs, and no error carries the secret.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/id.h"
#include "plfm/core/result.h"
#include "plfm/pg/pg.h"
#include "secrets_crypto.h"

namespace plfm::cp {

PLFM_DEFINE_ID(RegistryCredentialId, "rcred");

namespace registry {

inline constexpr size_t kMaxHostBytes = 255;
inline constexpr size_t kMaxUsernameBytes = 256;
inline constexpr size_t kMaxSecretBytes = 8192;
inline constexpr int kMaxPerOrg = 50;

// A registry host as a tenant names it ("ghcr.io", "127.0.0.1:5000",
// "[fd00::1]:5000"), normalized: lowercase, and Docker Hub's aliases
// (index.docker.io, registry-1.docker.io) as "docker.io". invalid_id naming
// `field` otherwise; the message never echoes more than the first bytes.
[[nodiscard]] Result<std::string> parseHost(std::string_view text, std::string_view field);

// The normalized registry host of an image reference, by Docker's reference
// grammar: the first path component when it holds '.' or ':' or is
// "localhost", otherwise docker.io.
[[nodiscard]] std::string hostOfImageRef(std::string_view image_ref);

// The username (printable ASCII, no ':', 1..256 bytes) and the secret
// (1..8 KiB, no NUL), checked; errors name the field, never the value.
[[nodiscard]] Result<void> checkUsername(std::string_view username);
[[nodiscard]] Result<void> checkSecret(std::string_view secret);

// One stored credential's metadata (never the secret).
struct Entry {
  std::string org_id;
  std::string registry;
  std::string credential_id;
  int64_t version = 0;
  std::string username;
  std::string created_at, created_by, updated_at, updated_by;  // RFC 3339, actors
};

// The org's credentials in registry order.
[[nodiscard]] Result<std::vector<Entry>> list(pg::Connection& conn, const std::string& org_id);

// Creates or replaces the credential of (org, registry) under a transaction
// lock on the pair, sealing `secret` as the next version. `created` tells
// which one happened.
struct Put {
  std::string org_id, registry, username, actor, now;  // now: RFC 3339
};
[[nodiscard]] Result<Entry> put(pg::Transaction& tx, crypto::Keyring& keyring, const Put& p,
                                std::string_view secret, bool* created);

// Deletes the row (and with it the sealed material); nullopt when none.
[[nodiscard]] Result<std::optional<Entry>> remove(pg::Transaction& tx, const std::string& org_id,
                                                  const std::string& registry);

// The credential with its secret, opened; nullopt when the org has none
// for the registry. The caller wipes `secret`.
struct Opened {
  Entry entry;
  std::string secret;
};
[[nodiscard]] Result<std::optional<Opened>> open(pg::Connection& conn, crypto::Keyring& keyring,
                                                 const std::string& org_id,
                                                 const std::string& registry);

// Re-wraps every data key not yet under `to` (master key rotation), one row
// per transaction; returns how many changed.
[[nodiscard]] Result<int64_t> rewrapAll(pg::Connection& conn, crypto::Keyring& keyring,
                                        const crypto::MasterKey& to);

}  // namespace registry
}  // namespace plfm::cp
