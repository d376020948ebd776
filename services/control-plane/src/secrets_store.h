// The write side of secret bundles: the per-env head row (secret_bundles)
// and the sealed material (secret_versions), the only place secret values
// are stored (docs/specs/secrets/bundles.md). Every change writes a new
// immutable version under the head's row lock, so versions of one env are
// numbered without gaps even under concurrent writers.
#pragma once

#include <optional>
#include <string>

#include "plfm/core/result.h"
#include "plfm/pg/pg.h"
#include "plfm/secrets/format.h"
#include "secrets_crypto.h"

namespace plfm::cp::secretstore {

struct Head {
  std::string version_id;
  int64_t number = 0;
};

// The env's newest version, locked FOR UPDATE until the transaction ends;
// nullopt when the env has no secrets yet. The env's row is created first
// when missing, so even the first writers of an env queue on its lock.
[[nodiscard]] Result<std::optional<Head>> lockHead(pg::Transaction& tx, const std::string& env_id,
                                                   const std::string& org_id);
// The same without a lock (deploys read it to pin the current version).
[[nodiscard]] Result<std::optional<Head>> readHead(pg::Connection& conn, const std::string& env_id);

// The env and number of a version (nullopt when unknown).
struct VersionInfo {
  std::string env_id;
  std::string org_id;
  int64_t number = 0;
};
[[nodiscard]] Result<std::optional<VersionInfo>> versionInfo(pg::Connection& conn,
                                                             const std::string& version_id);

// The version's plaintext: the secrets file as written (secrets::encode).
// Wipe it (plfm::secrets::wipe) when done.
[[nodiscard]] Result<std::string> readFile(pg::Connection& conn, crypto::Keyring& keyring,
                                           const std::string& version_id);
// The same, decoded. Wipe the map when done.
[[nodiscard]] Result<plfm::secrets::SecretMap> readMap(pg::Connection& conn,
                                                       crypto::Keyring& keyring,
                                                       const std::string& version_id);

// Seals `values` as version `number` of `env_id` and makes it the head.
// Call after lockHead() in the same transaction.
struct NewVersion {
  std::string env_id;
  std::string org_id;
  std::string version_id;
  int64_t number = 0;
  std::string actor;
  std::string created_at;  // RFC 3339
};
[[nodiscard]] Result<void> writeVersion(pg::Transaction& tx, crypto::Keyring& keyring,
                                        const NewVersion& v,
                                        const plfm::secrets::SecretMap& values);

// Sealed columns are stored as base64 (the original variant, padded).
[[nodiscard]] std::string toBase64(const std::string& bin);
// `what` names the column in the error (never its contents).
[[nodiscard]] Result<std::string> fromBase64(std::string_view b64, std::string_view what);

// Re-wraps, one row per transaction, every data key not yet wrapped by
// `to`; returns how many rows changed. The ciphertexts are not touched.
[[nodiscard]] Result<int64_t> rewrapAll(pg::Connection& conn, crypto::Keyring& keyring,
                                        const crypto::MasterKey& to);

}  // namespace plfm::cp::secretstore
