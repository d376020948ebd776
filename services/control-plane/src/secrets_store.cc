#include "secrets_store.h"

#include <sodium.h>

namespace plfm::cp::secretstore {

std::string toBase64(const std::string& bin) {
  const int variant = sodium_base64_VARIANT_ORIGINAL;
  std::string out(sodium_base64_ENCODED_LEN(bin.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bin.data()),
                    bin.size(), variant);
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

Result<std::string> fromBase64(std::string_view b64, std::string_view what) {
  std::string out(b64.size() / 4 * 3 + 3, '\0');
  size_t len = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), b64.data(),
                        b64.size(), nullptr, &len, nullptr, sodium_base64_VARIANT_ORIGINAL) != 0) {
    return Error(plfm::errc::kInternal, std::string(what) + " is not valid base64");
  }
  out.resize(len);
  return out;
}

namespace {

Result<std::optional<Head>> head(pg::Connection& conn, const std::string& env_id, bool lock) {
  PLFM_ASSIGN_OR_RETURN(auto rs, conn.exec(std::string("SELECT head_version_id, head_number FROM "
                                                       "secret_bundles WHERE env_id = $1") +
                                               (lock ? " FOR UPDATE" : ""),
                                           {env_id}));
  const int64_t number = rs.rows() == 1 ? rs.int64(0, 1).value_or(0) : 0;
  if (number == 0) return std::optional<Head>();  // none, or the row of a first writer
  return std::optional<Head>(Head{std::string(rs.text(0, 0)), number});
}

struct Row {
  crypto::Sealed sealed;
  crypto::VersionRef ref;
};

Result<Row> readRow(pg::Connection& conn, const std::string& version_id) {
  PLFM_ASSIGN_OR_RETURN(auto rs, conn.exec("SELECT env_id, number, key_id, wrapped_key, "
                                           "ciphertext FROM secret_versions WHERE version_id = $1",
                                           {version_id}));
  if (rs.rows() != 1) {
    return Error(plfm::errc::kNotFound, "secrets version " + version_id + " not found")
        .with("version_id", version_id);
  }
  Row r;
  r.ref = {std::string(rs.text(0, 0)), version_id, rs.int64(0, 1).value_or(0)};
  r.sealed.key_id = rs.text(0, 2);
  PLFM_ASSIGN_OR_RETURN(r.sealed.wrapped_key, fromBase64(rs.text(0, 3), "wrapped_key"));
  PLFM_ASSIGN_OR_RETURN(r.sealed.ciphertext, fromBase64(rs.text(0, 4), "ciphertext"));
  return r;
}

}  // namespace

Result<std::optional<Head>> lockHead(pg::Transaction& tx, const std::string& env_id,
                                     const std::string& org_id) {
  PLFM_TRY(
      tx.exec("INSERT INTO secret_bundles (env_id, org_id, head_version_id, head_number) "
              "VALUES ($1, $2, '', 0) ON CONFLICT (env_id) DO NOTHING",
              {env_id, org_id}));
  return head(tx.connection(), env_id, true);
}

Result<std::optional<Head>> readHead(pg::Connection& conn, const std::string& env_id) {
  return head(conn, env_id, false);
}

Result<std::optional<VersionInfo>> versionInfo(pg::Connection& conn,
                                               const std::string& version_id) {
  PLFM_ASSIGN_OR_RETURN(auto rs, conn.exec("SELECT env_id, org_id, number FROM secret_versions "
                                           "WHERE version_id = $1",
                                           {version_id}));
  if (rs.rows() != 1) return std::optional<VersionInfo>();
  return std::optional<VersionInfo>(VersionInfo{
      std::string(rs.text(0, 0)), std::string(rs.text(0, 1)), rs.int64(0, 2).value_or(0)});
}

Result<std::string> readFile(pg::Connection& conn, crypto::Keyring& keyring,
                             const std::string& version_id) {
  PLFM_ASSIGN_OR_RETURN(auto row, readRow(conn, version_id));
  return keyring.open(row.sealed, row.ref);
}

Result<plfm::secrets::SecretMap> readMap(pg::Connection& conn, crypto::Keyring& keyring,
                                         const std::string& version_id) {
  PLFM_ASSIGN_OR_RETURN(std::string file, readFile(conn, keyring, version_id));
  auto decoded = plfm::secrets::decode(file);
  plfm::secrets::wipe(file);
  if (!decoded) {
    return Error(plfm::errc::kInternal, "secrets version " + version_id +
                                            " does not decode: " + decoded.error().toString());
  }
  return std::move(*decoded);
}

Result<void> writeVersion(pg::Transaction& tx, crypto::Keyring& keyring, const NewVersion& v,
                          const plfm::secrets::SecretMap& values) {
  auto file = plfm::secrets::encode(values);
  if (!file) {
    return Error(plfm::errc::kInvalidArgument, file.error().toString())
        .with("code", std::string(plfm::secrets::codeName(file.error().code)));
  }
  auto sealed = keyring.seal(*file, {v.env_id, v.version_id, v.number});
  plfm::secrets::wipe(*file);
  if (!sealed) return unexpected(std::move(sealed).error());
  PLFM_TRY(tx.exec(
      "INSERT INTO secret_versions (version_id, env_id, org_id, number, key_id, "
      "wrapped_key, ciphertext, created_at, created_by) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
      {v.version_id, v.env_id, v.org_id, v.number, sealed->key_id, toBase64(sealed->wrapped_key),
       toBase64(sealed->ciphertext), v.created_at, v.actor}));
  PLFM_TRY(
      tx.exec("INSERT INTO secret_bundles (env_id, org_id, head_version_id, head_number) "
              "VALUES ($1, $2, $3, $4) ON CONFLICT (env_id) DO UPDATE SET "
              "head_version_id = $3, head_number = $4",
              {v.env_id, v.org_id, v.version_id, v.number}));
  return ok();
}

Result<int64_t> rewrapAll(pg::Connection& conn, crypto::Keyring& keyring,
                          const crypto::MasterKey& to) {
  int64_t changed = 0;
  for (;;) {
    PLFM_ASSIGN_OR_RETURN(auto ids, conn.exec("SELECT version_id FROM secret_versions WHERE "
                                              "key_id <> $1 ORDER BY version_id LIMIT 100",
                                              {to.id}));
    if (ids.rows() == 0) return changed;
    for (int i = 0; i < ids.rows(); ++i) {
      const std::string id(ids.text(i, 0));
      PLFM_ASSIGN_OR_RETURN(auto tx, pg::Transaction::begin(conn));
      PLFM_ASSIGN_OR_RETURN(auto row, readRow(tx.connection(), id));
      PLFM_ASSIGN_OR_RETURN(auto out, keyring.rewrap(row.sealed, row.ref, to));
      // Compare-and-set on the old key id: a concurrent rotation wins cleanly.
      PLFM_ASSIGN_OR_RETURN(
          auto up, tx.exec("UPDATE secret_versions SET key_id = $2, "
                           "wrapped_key = $3 WHERE version_id = $1 AND "
                           "key_id = $4",
                           {id, out.key_id, toBase64(out.wrapped_key), row.sealed.key_id}));
      PLFM_TRY(tx.commit());
      changed += up.affected();
    }
  }
}

}  // namespace plfm::cp::secretstore
