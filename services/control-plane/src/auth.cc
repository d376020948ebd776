#include "auth.h"

#include <sys/random.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "plfm/core/json.h"
#include "plfm/core/process.h"
#include "plfm/core/sha256.h"
#include "plfm/pg/prepared.h"

namespace plfm::cp {
namespace {

constexpr std::string_view kTokenPrefix = "vt_";
constexpr size_t kTokenBodyLen = 52;  // 256 bits in base32, rounded up
constexpr std::string_view kAlphabet = "abcdefghijklmnopqrstuvwxyz234567";

Error unauthenticated() {
  return Error(plfm::errc::kUnauthenticated,
               "missing or invalid bearer token; log in again (vt login)");
}

}  // namespace

std::string newToken() {
  std::array<uint8_t, 32> bytes{};
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::getrandom(bytes.data() + got, bytes.size() - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  std::string out(kTokenPrefix);
  uint32_t buffer = 0;
  int bits = 0;
  for (uint8_t b : bytes) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += kAlphabet[(buffer >> (bits - 5)) & 31U];
      bits -= 5;
    }
  }
  if (bits > 0) out += kAlphabet[(buffer << (5 - bits)) & 31U];
  return out;
}

std::string hashToken(std::string_view token) { return Sha256::hex(token); }

Result<Principal> authenticate(pg::Connection& conn, const Clock& clock,
                               std::optional<std::string_view> authorization,
                               std::string_view org_id) {
  if (!authorization) return unauthenticated();
  std::string_view h = *authorization;
  constexpr std::string_view kBearer = "Bearer ";
  if (h.size() <= kBearer.size() || h.substr(0, kBearer.size()) != kBearer) {
    return unauthenticated();
  }
  const std::string_view token = h.substr(kBearer.size());
  if (token.size() != kTokenPrefix.size() + kTokenBodyLen || !token.starts_with(kTokenPrefix)) {
    return unauthenticated();
  }
  // Read on every request, never cached: a revoked or expired token stops
  // working with the next request.
  const std::string now = toRfc3339(clock.now());
  // With an org: the user's role in it too, one round trip for both.
  auto rs = org_id.empty()
                ? pg::execPrepared(
                      conn,
                      "SELECT t.token_id, t.kind, t.subject_id, coalesce(u.name, t.subject_id), "
                      "coalesce(u.is_admin, false), t.first_used_at IS NULL FROM api_tokens t LEFT "
                      "JOIN users u ON t.kind = 'user' AND u.user_id = t.subject_id "
                      "WHERE t.token_hash = $1 AND t.revoked_at IS NULL "
                      "AND (t.expires_at IS NULL OR t.expires_at > $2::timestamptz)",
                      {hashToken(token), now})
                : pg::execPrepared(
                      conn,
                      "SELECT t.token_id, t.kind, t.subject_id, coalesce(u.name, t.subject_id), "
                      "coalesce(u.is_admin, false), t.first_used_at IS NULL, (SELECT m.role FROM "
                      "org_members_view m WHERE t.kind = 'user' AND m.org_id = $3 AND m.user_id = "
                      "t.subject_id) FROM api_tokens t LEFT JOIN users u ON t.kind = 'user' AND "
                      "u.user_id = t.subject_id WHERE t.token_hash = $1 AND t.revoked_at IS NULL "
                      "AND (t.expires_at IS NULL OR t.expires_at > $2::timestamptz)",
                      {hashToken(token), now, std::string(org_id)});
  if (!rs) return unexpected(std::move(rs).error());
  if (rs->rows() != 1) return unauthenticated();
  Principal p;
  p.token_id = rs->text(0, 0);
  p.kind = rs->text(0, 1);
  p.id = rs->text(0, 2);
  p.name = rs->text(0, 3);
  p.is_admin = rs->boolean(0, 4).value_or(false);
  if (!org_id.empty()) {
    p.role_org = std::string(org_id);
    p.role = rs->optText(0, 6);
  }
  if (rs->text(0, 5) == "t") {
    // The first use, recorded once. The row lock orders it against an
    // enrollment retry that revokes this token (nodes.cc): whichever comes
    // second sees the other, so a used credential is never re-issued and a
    // revoked one never gets through.
    auto mark = conn.exec(
        "UPDATE api_tokens SET first_used_at = $2 WHERE token_id = $1 AND revoked_at IS NULL "
        "AND first_used_at IS NULL RETURNING 1",
        {p.token_id, now});
    if (!mark) return unexpected(std::move(mark).error());
    if (mark->rows() != 1) {
      auto again = conn.exec("SELECT 1 FROM api_tokens WHERE token_id = $1 AND revoked_at IS NULL",
                             {p.token_id});
      if (!again) return unexpected(std::move(again).error());
      if (again->rows() != 1) return unauthenticated();
    }
  }
  return p;
}

Result<std::string> authenticateEnrollment(pg::Connection& conn, const Clock& clock,
                                           std::optional<std::string_view> authorization) {
  constexpr std::string_view kBearer = "Bearer ";
  std::string_view token;
  if (authorization && authorization->starts_with(kBearer)) {
    token = authorization->substr(kBearer.size());
  }
  if (token.size() != kTokenPrefix.size() + kTokenBodyLen || !token.starts_with(kTokenPrefix)) {
    return Error(plfm::errc::kUnauthenticated,
                 "missing or invalid enrollment token; create one with `vt nodes enroll`");
  }
  PLFM_ASSIGN_OR_RETURN(auto known, conn.exec("SELECT 1 FROM node_enrollments WHERE "
                                              "token_hash = $1 AND expires_at > $2",
                                              {hashToken(token), toRfc3339(clock.now())}));
  if (known.rows() != 1) {
    return Error(plfm::errc::kUnauthenticated,
                 "missing, unknown or expired enrollment token; create a new one with "
                 "`vt nodes enroll`");
  }
  return std::string(token);
}

Result<void> recheck(pg::Connection& conn, const Clock& clock, const Principal& who) {
  PLFM_ASSIGN_OR_RETURN(auto rs,
                        pg::execPrepared(conn,
                                         "SELECT 1 FROM api_tokens WHERE token_id = $1 AND "
                                         "revoked_at IS NULL AND (expires_at IS NULL OR "
                                         "expires_at > $2::timestamptz)",
                                         {who.token_id, toRfc3339(clock.now())}));
  if (rs.rows() != 1) return unauthenticated();
  return ok();
}

Result<std::string> roleIn(pg::Connection& conn, const Principal& who, std::string_view org_id) {
  auto notFound = [&] {
    return Error(plfm::errc::kNotFound, "org " + std::string(org_id) + " not found")
        .with("org_id", std::string(org_id));
  };
  if (who.kind != "user") return notFound();
  if (!who.role_org.empty() && who.role_org == org_id) {  // read with the credential
    if (who.role) return *who.role;
    return notFound();
  }
  PLFM_ASSIGN_OR_RETURN(auto rs,
                        pg::execPrepared(conn,
                                         "SELECT role FROM org_members_view WHERE org_id = $1 "
                                         "AND user_id = $2",
                                         {std::string(org_id), who.id}));
  if (rs.rows() == 1) return std::string(rs.text(0, 0));
  return notFound();
}

Result<std::pair<NewUser, std::vector<NewEvent>>> createUser(pg::Transaction& tx,
                                                             const Clock& clock,
                                                             std::string_view name, bool is_admin) {
  NewUser u;
  u.user_id = UserId::generate().str();
  u.name = name;
  u.is_admin = is_admin;
  u.created_at = toRfc3339(clock.now());
  u.token = newToken();
  u.token_id = TokenId::generate().str();
  auto ins = tx.exec("INSERT INTO users (user_id, name, is_admin, created_at) VALUES ($1,$2,$3,$4)",
                     {u.user_id, u.name, is_admin, u.created_at});
  if (!ins) {
    if (ins.error().is(pg::errc::kUniqueViolation)) {
      return Error(plfm::errc::kAlreadyExists, "a user named '" + u.name + "' already exists")
          .with("field", "name");
    }
    return unexpected(std::move(ins).error());
  }
  PLFM_TRY(tx.exec(
      "INSERT INTO api_tokens (token_id, token_hash, kind, subject_id, description, created_at) "
      "VALUES ($1, $2, 'user', $3, 'initial token', $4)",
      {u.token_id, hashToken(u.token), u.user_id, u.created_at}));
  std::vector<NewEvent> out = {
      events::toNewEvent(
          events::UserCreated{.user_id = u.user_id, .name = u.name, .is_admin = is_admin}, 1, ""),
      events::toNewEvent(
          events::TokenCreated{.token_id = u.token_id, .kind = "user", .subject_id = u.user_id}, 1,
          ""),
  };
  return std::make_pair(std::move(u), std::move(out));
}

Result<bool> bootstrapAdmin(pg::Connection& conn, EventStore& store, const Clock& clock,
                            const std::string& token_file) {
  PLFM_ASSIGN_OR_RETURN(auto tx, pg::Transaction::begin(conn));
  // Serialize concurrent first starts.
  PLFM_TRY(tx.exec("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE"));
  PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec("SELECT count(*) FROM users"));
  if (rs.int64(0, 0).value_or(0) > 0) return false;
  PLFM_ASSIGN_OR_RETURN(auto created, createUser(tx, clock, "admin", true));
  PLFM_TRY(store.append(tx, {"system:bootstrap", ""}, created.second));
  // Write the token before committing: if the write fails, no admin exists
  // that nobody can log in as.
  PLFM_TRY(writeFileAtomic(token_file, created.first.token + "\n", 0600));
  if (auto c = tx.commit(); !c) {
    ::unlink(token_file.c_str());
    return unexpected(std::move(c).error());
  }
  return true;
}

}  // namespace plfm::cp
