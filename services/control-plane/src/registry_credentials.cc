#include "registry_credentials.h"

#include <arpa/inet.h>

#include <algorithm>

#include "api.h"
#include "plfm/core/strings.h"
#include "plfm/secrets/format.h"
#include "secrets_store.h"

namespace plfm::cp::registry {
namespace {

Error badHost(std::string_view field, std::string_view why) {
  return Error(apierr::kInvalidId, std::string(field) +
                                       " must be a registry host such as ghcr.io or "
                                       "registry.example.com:5000 (" +
                                       std::string(why) + ")")
      .with("field", std::string(field));
}

bool dnsLabel(std::string_view l) {
  if (l.empty() || l.size() > 63 || l.front() == '-' || l.back() == '-') return false;
  return std::all_of(l.begin(), l.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

bool dnsName(std::string_view name) {
  if (name.empty()) return false;
  for (std::string_view rest = name;;) {
    const size_t dot = rest.find('.');
    if (!dnsLabel(rest.substr(0, dot))) return false;
    if (dot == std::string_view::npos) return true;
    rest = rest.substr(dot + 1);
  }
}

bool validPort(std::string_view p) {
  if (p.empty() || p.size() > 5 || p.front() == '0') return false;
  if (!std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
  return std::stoi(std::string(p)) <= 65535;
}

std::string dockerHubAlias(std::string host) {
  if (host == "index.docker.io" || host == "registry-1.docker.io") return "docker.io";
  return host;
}

// The associated data of a credential's seal: org, registry, username and
// version, so a row's ciphertext opens nowhere else.
crypto::VersionRef refOf(const Entry& e) {
  return {"registry/" + e.org_id + "/" + e.registry + "/" + e.username,
          e.credential_id + "/v" + std::to_string(e.version), e.version};
}

const std::string kColumns = "org_id, registry, credential_id, version, username, " +
                             ts("created_at") + ", created_by, " + ts("updated_at") +
                             ", updated_by";

Entry entryOf(const pg::ResultSet& rs, int i) {
  Entry e;
  e.org_id = rs.text(i, 0);
  e.registry = rs.text(i, 1);
  e.credential_id = rs.text(i, 2);
  e.version = rs.int64(i, 3).value_or(0);
  e.username = rs.text(i, 4);
  e.created_at = rs.text(i, 5);
  e.created_by = rs.text(i, 6);
  e.updated_at = rs.text(i, 7);
  e.updated_by = rs.text(i, 8);
  return e;
}

struct SealedRow {
  Entry entry;
  crypto::Sealed sealed;
};

Result<std::optional<SealedRow>> readSealed(pg::Connection& conn, const std::string& where,
                                            const std::vector<std::string>& params) {
  std::vector<pg::Param> ps(params.begin(), params.end());
  PLFM_ASSIGN_OR_RETURN(auto rs, conn.exec("SELECT " + kColumns +
                                               ", key_id, wrapped_key, ciphertext FROM "
                                               "registry_credentials WHERE " +
                                               where,
                                           ps));
  if (rs.rows() != 1) return std::optional<SealedRow>();
  SealedRow r;
  r.entry = entryOf(rs, 0);
  r.sealed.key_id = rs.text(0, 9);
  PLFM_ASSIGN_OR_RETURN(r.sealed.wrapped_key,
                        secretstore::fromBase64(rs.text(0, 10), "wrapped_key"));
  PLFM_ASSIGN_OR_RETURN(r.sealed.ciphertext, secretstore::fromBase64(rs.text(0, 11), "ciphertext"));
  return std::optional<SealedRow>(std::move(r));
}

}  // namespace

Result<std::string> parseHost(std::string_view text, std::string_view field) {
  if (text.empty()) return badHost(field, "it is empty");
  if (text.size() > kMaxHostBytes) return badHost(field, "it is longer than 255 bytes");
  if (text.find("://") != std::string_view::npos || text.find('/') != std::string_view::npos) {
    return badHost(field, "name the host and port only, without a scheme or a path");
  }
  const std::string host = asciiLower(text);
  std::string_view name = host;
  std::string_view port;
  if (name.front() == '[') {
    const size_t close = name.find(']');
    if (close == std::string_view::npos) return badHost(field, "an IPv6 address lacks its ']'");
    const std::string addr(name.substr(1, close - 1));
    in6_addr a{};
    if (::inet_pton(AF_INET6, addr.c_str(), &a) != 1) {
      return badHost(field, "the bracketed part is not an IPv6 address");
    }
    const std::string_view rest = name.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || !validPort(rest.substr(1)))) {
      return badHost(field, "the port must be 1 to 65535");
    }
    return host;
  }
  if (const size_t colon = name.find(':'); colon != std::string_view::npos) {
    port = name.substr(colon + 1);
    name = name.substr(0, colon);
    if (!validPort(port)) return badHost(field, "the port must be 1 to 65535");
  }
  if (!dnsName(name)) {
    return badHost(field, "a host is DNS labels of [a-z0-9-] separated by dots, or an IP address");
  }
  return dockerHubAlias(host);
}

std::string hostOfImageRef(std::string_view image_ref) {
  const size_t slash = image_ref.find('/');
  if (slash == std::string_view::npos) return "docker.io";
  const std::string_view first = image_ref.substr(0, slash);
  if (first.find('.') == std::string_view::npos && first.find(':') == std::string_view::npos &&
      first != "localhost") {
    return "docker.io";
  }
  return dockerHubAlias(asciiLower(first));
}

Result<void> checkUsername(std::string_view username) {
  const bool printable = std::all_of(username.begin(), username.end(),
                                     [](char c) { return c > 0x20 && c < 0x7f && c != ':'; });
  if (username.empty() || username.size() > kMaxUsernameBytes || !printable) {
    return Error(apierr::kInvalidField,
                 "field 'username' must be 1 to 256 printable ASCII characters without spaces "
                 "or ':'")
        .with("field", "username");
  }
  return ok();
}

Result<void> checkSecret(std::string_view secret) {
  if (secret.empty() || secret.size() > kMaxSecretBytes ||
      secret.find('\0') != std::string_view::npos) {
    return Error(apierr::kInvalidField,
                 "field 'password' must be 1 to 8192 bytes without NUL (the registry's password "
                 "or access token)")
        .with("field", "password");
  }
  return ok();
}

Result<std::vector<Entry>> list(pg::Connection& conn, const std::string& org_id) {
  PLFM_ASSIGN_OR_RETURN(auto rs, conn.exec("SELECT " + kColumns +
                                               " FROM registry_credentials WHERE org_id = $1 "
                                               "ORDER BY registry COLLATE \"C\"",
                                           {org_id}));
  std::vector<Entry> out;
  out.reserve(static_cast<size_t>(rs.rows()));
  for (int i = 0; i < rs.rows(); ++i) out.push_back(entryOf(rs, i));
  return out;
}

Result<Entry> put(pg::Transaction& tx, crypto::Keyring& keyring, const Put& p,
                  std::string_view secret, bool* created) {
  // Writers of one (org, registry) queue here, so versions count 1, 2, 3...
  PLFM_TRY(tx.exec("SELECT pg_advisory_xact_lock(hashtext('registry_credentials'), hashtext($1))",
                   {p.org_id + "/" + p.registry}));
  PLFM_ASSIGN_OR_RETURN(auto old, readSealed(tx.connection(), "org_id = $1 AND registry = $2",
                                             {p.org_id, p.registry}));
  *created = !old.has_value();
  if (*created) {
    PLFM_ASSIGN_OR_RETURN(auto n, tx.exec("SELECT count(*) FROM registry_credentials WHERE "
                                          "org_id = $1",
                                          {p.org_id}));
    if (n.int64(0, 0).value_or(0) >= kMaxPerOrg) {
      return Error(plfm::errc::kFailedPrecondition,
                   "org " + p.org_id + " already has credentials for " +
                       std::to_string(kMaxPerOrg) + " registries; remove one first")
          .with("field", "registry_host");
    }
  }
  Entry e;
  e.org_id = p.org_id;
  e.registry = p.registry;
  e.credential_id = old ? old->entry.credential_id : RegistryCredentialId::generate().str();
  e.version = old ? old->entry.version + 1 : 1;
  e.username = p.username;
  e.created_at = old ? old->entry.created_at : p.now;
  e.created_by = old ? old->entry.created_by : p.actor;
  e.updated_at = p.now;
  e.updated_by = p.actor;
  PLFM_ASSIGN_OR_RETURN(auto sealed, keyring.seal(secret, refOf(e)));
  PLFM_TRY(tx.exec(
      "INSERT INTO registry_credentials (org_id, registry, credential_id, version, username, "
      "key_id, wrapped_key, ciphertext, created_at, created_by, updated_at, updated_by) VALUES "
      "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (org_id, registry) DO "
      "UPDATE SET version = $4, username = $5, key_id = $6, wrapped_key = $7, ciphertext = $8, "
      "updated_at = $11, updated_by = $12",
      {e.org_id, e.registry, e.credential_id, e.version, e.username, sealed.key_id,
       secretstore::toBase64(sealed.wrapped_key), secretstore::toBase64(sealed.ciphertext),
       e.created_at, e.created_by, e.updated_at, e.updated_by}));
  return e;
}

Result<std::optional<Entry>> remove(pg::Transaction& tx, const std::string& org_id,
                                    const std::string& registry) {
  PLFM_TRY(tx.exec("SELECT pg_advisory_xact_lock(hashtext('registry_credentials'), hashtext($1))",
                   {org_id + "/" + registry}));
  PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec("DELETE FROM registry_credentials WHERE org_id = $1 AND "
                                         "registry = $2 RETURNING " +
                                             kColumns,
                                         {org_id, registry}));
  if (rs.rows() != 1) return std::optional<Entry>();
  return std::optional<Entry>(entryOf(rs, 0));
}

Result<std::optional<Opened>> open(pg::Connection& conn, crypto::Keyring& keyring,
                                   const std::string& org_id, const std::string& registry) {
  PLFM_ASSIGN_OR_RETURN(auto row,
                        readSealed(conn, "org_id = $1 AND registry = $2", {org_id, registry}));
  if (!row) return std::optional<Opened>();
  Opened o;
  o.entry = row->entry;
  PLFM_ASSIGN_OR_RETURN(o.secret, keyring.open(row->sealed, refOf(row->entry)));
  return std::optional<Opened>(std::move(o));
}

Result<int64_t> rewrapAll(pg::Connection& conn, crypto::Keyring& keyring,
                          const crypto::MasterKey& to) {
  int64_t changed = 0;
  for (;;) {
    PLFM_ASSIGN_OR_RETURN(auto ids, conn.exec("SELECT credential_id FROM registry_credentials "
                                              "WHERE key_id <> $1 ORDER BY credential_id "
                                              "LIMIT 100",
                                              {to.id}));
    if (ids.rows() == 0) return changed;
    for (int i = 0; i < ids.rows(); ++i) {
      const std::string id(ids.text(i, 0));
      PLFM_ASSIGN_OR_RETURN(auto tx, pg::Transaction::begin(conn));
      PLFM_ASSIGN_OR_RETURN(auto row, readSealed(tx.connection(), "credential_id = $1", {id}));
      if (!row) continue;  // removed meanwhile
      PLFM_ASSIGN_OR_RETURN(auto out, keyring.rewrap(row->sealed, refOf(row->entry), to));
      // Compare-and-set on the version and the old key id: a concurrent
      // update or rotation wins cleanly.
      PLFM_ASSIGN_OR_RETURN(auto up,
                            tx.exec("UPDATE registry_credentials SET key_id = $2, wrapped_key = $3 "
                                    "WHERE credential_id = $1 AND key_id = $4 AND version = $5",
                                    {id, out.key_id, secretstore::toBase64(out.wrapped_key),
                                     row->sealed.key_id, row->entry.version}));
      PLFM_TRY(tx.commit());
      changed += up.affected();
    }
  }
}

}  // namespace plfm::cp::registry
