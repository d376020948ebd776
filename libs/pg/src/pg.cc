#include "plfm/pg/pg.h"

#include <libpq-fe.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <span>

#include "plfm/pg/pipeline.h"
#include "plfm/pg/sqlstate.h"
#include "result_error.h"

namespace plfm::pg {
namespace {

std::string_view codeForSqlState(std::string_view state) {
  if (state == "40001") return errc::kSerializationFailure;
  if (state == "40P01") return errc::kDeadlock;
  if (state == "23505") return errc::kUniqueViolation;
  if (state == "23503") return errc::kForeignKeyViolation;
  if (state == "23514") return errc::kCheckViolation;
  if (state == "23502") return errc::kNotNullViolation;
  if (state == "P0001") return errc::kRaised;
  if (state == "57014") return errc::kQueryCanceled;
  if (endsSession(state)) return errc::kConnection;
  return errc::kError;
}

std::string field(const PGresult* r, int code) {
  const char* v = PQresultErrorField(r, code);
  return v != nullptr ? std::string(v) : std::string();
}

std::string trimNewline(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

namespace internal {

Error connectionError(PGconn* c, std::string_view what) {
  return Error(errc::kConnection, std::string(what) + ": " +
                                      trimNewline(c != nullptr ? PQerrorMessage(c) : "no memory"));
}

Error resultError(PGconn* c, const PGresult* r, std::string_view sql) {
  const std::string state = field(r, PG_DIAG_SQLSTATE);
  std::string_view code = codeForSqlState(state);
  if (state.empty() && PQstatus(c) != CONNECTION_OK) code = errc::kConnection;
  Error e(code, trimNewline(field(r, PG_DIAG_MESSAGE_PRIMARY)));
  if (e.message().empty()) e = Error(code, trimNewline(PQerrorMessage(c)));
  e.with("sqlstate", state);
  if (auto v = field(r, PG_DIAG_CONSTRAINT_NAME); !v.empty()) e.with("constraint", v);
  if (auto t = field(r, PG_DIAG_TABLE_NAME); !t.empty()) e.with("table", t);
  if (auto d = field(r, PG_DIAG_MESSAGE_DETAIL); !d.empty()) e.with("pg_detail", d);
  // The statement's first line helps find the call site; values never appear
  // in SQL text because every value is a parameter.
  e.with("statement", std::string(sql.substr(0, std::min<size_t>(sql.find('\n'), 120))));
  return e;
}

void endSession(PGconn* c) {
  if (c == nullptr || PQstatus(c) != CONNECTION_OK) return;
  // Shut the socket: libpq then reads EOF and marks the connection bad, and
  // the server ends the backend.
  if (const int fd = PQsocket(c); fd >= 0) ::shutdown(fd, SHUT_RDWR);
  (void)PQconsumeInput(c);
}

}  // namespace internal

using internal::connectionError;
using internal::forgetPrepared;

bool endsSession(std::string_view sqlstate) {
  return sqlstate.substr(0, 2) == "08" || sqlstate == "25006" || sqlstate == "57P01" ||
         sqlstate == "57P02" || sqlstate == "57P03";
}

bool isRetryable(const Error& e) {
  return e.is(errc::kSerializationFailure) || e.is(errc::kDeadlock);
}

// ---- ResultSet ----

ResultSet::ResultSet(pg_result* r) : res_(r) {}
ResultSet::ResultSet(ResultSet&& o) noexcept : res_(o.res_) { o.res_ = nullptr; }
ResultSet& ResultSet::operator=(ResultSet&& o) noexcept {
  if (this != &o) {
    if (res_ != nullptr) PQclear(res_);
    res_ = o.res_;
    o.res_ = nullptr;
  }
  return *this;
}
ResultSet::~ResultSet() {
  if (res_ != nullptr) PQclear(res_);
}

int ResultSet::rows() const { return res_ != nullptr ? PQntuples(res_) : 0; }
int ResultSet::columns() const { return res_ != nullptr ? PQnfields(res_) : 0; }
std::string_view ResultSet::columnName(int col) const { return PQfname(res_, col); }
int ResultSet::columnIndex(std::string_view name) const {
  for (int i = 0; i < columns(); ++i) {
    if (columnName(i) == name) return i;
  }
  return -1;
}

std::string_view ResultSet::commandTag() const { return res_ != nullptr ? PQcmdStatus(res_) : ""; }

unsigned ResultSet::columnType(int col) const { return PQftype(res_, col); }

ResultSet::Kind ResultSet::columnKind(int col) const {
  // Built-in type OIDs (src/include/catalog/pg_type.dat); stable across
  // PostgreSQL versions.
  switch (columnType(col)) {
    case 16:  // bool
      return Kind::kBool;
    case 20:  // int8
    case 21:  // int2
    case 23:  // int4
      return Kind::kInteger;
    case 114:   // json
    case 3802:  // jsonb
      return Kind::kJson;
    default:
      return Kind::kText;
  }
}

int64_t ResultSet::affected() const {
  const char* s = res_ != nullptr ? PQcmdTuples(res_) : "";
  int64_t v = 0;
  std::from_chars(s, s + std::char_traits<char>::length(s), v);
  return v;
}

bool ResultSet::isNull(int row, int col) const { return PQgetisnull(res_, row, col) != 0; }

std::string_view ResultSet::text(int row, int col) const {
  return {PQgetvalue(res_, row, col), static_cast<size_t>(PQgetlength(res_, row, col))};
}

std::optional<std::string> ResultSet::optText(int row, int col) const {
  if (isNull(row, col)) return std::nullopt;
  return std::string(text(row, col));
}

Result<int64_t> ResultSet::int64(int row, int col) const {
  std::string_view s = text(row, col);
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (isNull(row, col) || ec != std::errc() || p != s.data() + s.size()) {
    return Error(errc::kBadResult, "column '" + std::string(columnName(col)) +
                                       "' is not an integer: '" + std::string(s) + "'");
  }
  return v;
}

Result<bool> ResultSet::boolean(int row, int col) const {
  std::string_view s = text(row, col);
  if (!isNull(row, col) && s == "t") return true;
  if (!isNull(row, col) && s == "f") return false;
  return Error(errc::kBadResult, "column '" + std::string(columnName(col)) + "' is not a boolean");
}

// ---- Connection ----

Connection::Connection(Connection&& o) noexcept
    : conn_(o.conn_), batching_(o.batching_), deferred_(std::move(o.deferred_)) {
  o.conn_ = nullptr;
}
Connection& Connection::operator=(Connection&& o) noexcept {
  if (this != &o) {
    if (conn_ != nullptr) {
      forgetPrepared(conn_);
      PQfinish(conn_);
    }
    conn_ = o.conn_;
    o.conn_ = nullptr;
    batching_ = o.batching_;
    deferred_ = std::move(o.deferred_);
  }
  return *this;
}
Connection::~Connection() {
  if (conn_ != nullptr) {
    forgetPrepared(conn_);
    PQfinish(conn_);
  }
}

Result<Connection> Connection::connect(const std::string& conninfo) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  if (c == nullptr || PQstatus(c) != CONNECTION_OK) {
    Error e = connectionError(c, "cannot connect to PostgreSQL");
    if (c != nullptr) PQfinish(c);
    return e;
  }
  Connection conn(c);
  // Notices (e.g. "relation already exists, skipping") are not errors; keep
  // them off stderr.
  PQsetNoticeProcessor(
      c, [](void*, const char*) {}, nullptr);
  return conn;
}

Result<ResultSet> Connection::check(pg_result* r, std::string_view sql) {
  ResultSet rs(r);
  if (r == nullptr) return connectionError(conn_, "query failed");
  const ExecStatusType st = PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) return rs;
  Error e = internal::resultError(conn_, r, sql);
  if (e.is(errc::kConnection)) internal::endSession(conn_);
  return e;
}

Result<ResultSet> Connection::exec(std::string_view sql, const Params& params) {
  if (!deferred_.empty()) {
    const Statement s{sql, params};
    PLFM_ASSIGN_OR_RETURN(auto results, execPipeline(*this, std::span<const Statement>(&s, 1)));
    return std::move(results.front());
  }
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p.value() ? p.value()->c_str() : nullptr);
  const std::string text(sql);
  pg_result* r = PQexecParams(conn_, text.c_str(), static_cast<int>(values.size()), nullptr,
                              values.data(), nullptr, nullptr, 0);
  return check(r, sql);
}

Result<ResultSet> Connection::exec(std::string_view sql, std::initializer_list<Param> params) {
  return exec(sql, Params(params));
}

Result<void> Connection::execDeferred(std::string_view sql, Params params,
                                      std::optional<OnError> on_error) {
  if (!batching_) {
    auto r = exec(sql, params);
    if (!r && on_error && r.error().is(on_error->code)) return unexpected(on_error->instead);
    if (!r) return unexpected(std::move(r).error());
    return ok();
  }
  deferred_.push_back(DeferredWrite{std::string(sql), std::move(params), std::move(on_error)});
  return ok();
}

void Connection::discardDeferredFrom(uint64_t index) {
  if (index <= deferred_sent_) {
    deferred_.clear();
  } else if (index < deferredNext()) {
    deferred_.resize(static_cast<size_t>(index - deferred_sent_));
  }
}

Result<void> Connection::flushDeferred() {
  if (deferred_.empty()) return ok();
  PLFM_TRY(execPipeline(*this, {}));
  return ok();
}

Result<void> Connection::execScript(std::string_view sql) {
  PLFM_TRY(flushDeferred());
  const std::string text(sql);
  PLFM_TRY(check(PQexec(conn_, text.c_str()), sql));
  return ok();
}

Result<void> Connection::listen(std::string_view channel) {
  PLFM_TRY(execScript("LISTEN " + quoteIdentifier(channel)));
  return ok();
}

Result<std::optional<Notification>> Connection::waitNotification(
    std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (PQconsumeInput(conn_) == 0) return connectionError(conn_, "reading notifications");
    if (PGnotify* n = PQnotifies(conn_); n != nullptr) {
      Notification out{n->relname, n->extra != nullptr ? n->extra : "", n->be_pid};
      PQfreemem(n);
      return std::optional<Notification>(std::move(out));
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::optional<Notification>();
    pollfd pfd{PQsocket(conn_), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) {
      return errnoError("poll", errno);
    }
  }
}

Result<std::vector<Notification>> Connection::drainNotifications() {
  if (PQconsumeInput(conn_) == 0) return connectionError(conn_, "reading notifications");
  std::vector<Notification> out;
  while (PGnotify* n = PQnotifies(conn_)) {
    out.push_back(Notification{n->relname, n->extra != nullptr ? n->extra : "", n->be_pid});
    PQfreemem(n);
  }
  return out;
}

int Connection::socket() const { return conn_ != nullptr ? PQsocket(conn_) : -1; }

bool Connection::healthy() const { return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK; }

bool Connection::closedByServer() {
  if (!healthy()) return true;
  pollfd pfd{PQsocket(conn_), POLLIN | POLLRDHUP, 0};
  if (::poll(&pfd, 1, 0) <= 0) return false;  // nothing arrived
  // A server that ends a session sends its FATAL error and closes.
  if ((pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) return true;
  return PQconsumeInput(conn_) == 0 || PQstatus(conn_) != CONNECTION_OK;
}
bool Connection::idle() const { return healthy() && PQtransactionStatus(conn_) == PQTRANS_IDLE; }

int Connection::backendPid() const { return conn_ != nullptr ? PQbackendPID(conn_) : 0; }

// ---- Transaction ----

Result<Transaction> Transaction::begin(Connection& conn, Isolation iso) {
  std::string_view sql = "BEGIN";
  if (iso == Isolation::kRepeatableRead) sql = "BEGIN ISOLATION LEVEL REPEATABLE READ";
  if (iso == Isolation::kSerializable) sql = "BEGIN ISOLATION LEVEL SERIALIZABLE";
  if (conn.batchingWrites()) {
    PLFM_TRY(conn.execDeferred(sql, {}));
  } else {
    PLFM_TRY(conn.execScript(sql));
  }
  return Transaction(conn);
}

Transaction::~Transaction() { rollback(); }

Result<void> Transaction::commit() { return commit(nullptr); }

Result<void> Transaction::commit(bool* queued_failed) {
  if (conn_ == nullptr) return Error(errc::kError, "transaction already finished");
  Connection* c = conn_;
  const uint64_t first_queued = c->deferredSent();
  const bool queued = c->deferredWrites() > 0;
  auto r = c->exec("COMMIT");
  if (!r && queued_failed != nullptr && queued) {
    // A queued write failed (the COMMIT was skipped): the transaction stays.
    auto failed = c->takeDeferredFailure();
    if (failed && *failed >= first_queued) {
      *queued_failed = true;
      c->noteDeferredFailure(*failed);
      return unexpected(std::move(r).error());
    }
  }
  conn_ = nullptr;
  if (!r) {
    (void)c->execScript("ROLLBACK");
    return unexpected(std::move(r).error());
  }
  // COMMIT of a transaction that already failed "succeeds" with the tag
  // ROLLBACK: nothing was committed, so report it as an error.
  if (r->commandTag() == "ROLLBACK") {
    return Error(errc::kError, "transaction was rolled back: an earlier statement failed");
  }
  return ok();
}

void Transaction::rollback() {
  if (conn_ != nullptr) {
    conn_->discardDeferred();
    (void)conn_->execScript("ROLLBACK");
    conn_ = nullptr;
  }
}

std::string quoteIdentifier(std::string_view ident) {
  std::string out = "\"";
  for (char c : ident) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace plfm::pg
