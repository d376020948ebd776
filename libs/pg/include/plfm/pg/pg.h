// A thin RAII layer over libpq.
//
//   PLFM_ASSIGN_OR_RETURN(auto conn, pg::Connection::connect(conninfo));
//   PLFM_ASSIGN_OR_RETURN(auto rs, conn.exec("SELECT name FROM apps WHERE id = $1", {id}));
//
// Queries take parameters only ($1, $2, ...): SQL text is never built from
// values. Results are text-format; typed getters parse and report errors.
// Server errors become plfm::Error values with codes that callers can branch
// on (pg::errc below) and the SQLSTATE in the details.
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "plfm/core/result.h"

struct pg_conn;
struct pg_result;

namespace plfm::pg {

namespace errc {
inline constexpr std::string_view kSerializationFailure = "pg.serialization_failure";  // 40001
inline constexpr std::string_view kDeadlock = "pg.deadlock";                           // 40P01
inline constexpr std::string_view kUniqueViolation = "pg.unique_violation";            // 23505
inline constexpr std::string_view kForeignKeyViolation = "pg.foreign_key_violation";   // 23503
inline constexpr std::string_view kCheckViolation = "pg.check_violation";              // 23514
inline constexpr std::string_view kNotNullViolation = "pg.not_null_violation";         // 23502
inline constexpr std::string_view kRaised = "pg.raised";  // P0001: RAISE in a trigger
inline constexpr std::string_view kQueryCanceled = "pg.query_canceled";  // 57014
inline constexpr std::string_view kConnection = "pg.connection";         // class 08, lost link
inline constexpr std::string_view kBadResult = "pg.bad_result";          // a value failed to parse
inline constexpr std::string_view kError = "pg.error";                   // anything else
}  // namespace errc

// True for errors where retrying the whole transaction may succeed.
[[nodiscard]] bool isRetryable(const Error& e);

// One query parameter in text form, or SQL NULL.
class Param {
 public:
  Param(std::nullopt_t) {}                               // NOLINT(google-explicit-constructor)
  Param(std::string_view v) : value_(std::string(v)) {}  // NOLINT
  Param(const char* v) : value_(std::string(v)) {}       // NOLINT
  Param(const std::string& v) : value_(v) {}             // NOLINT
  Param(std::string&& v) : value_(std::move(v)) {}       // NOLINT
  Param(bool v) : value_(v ? "t" : "f") {}               // NOLINT
  template <std::integral T>
  requires(!std::same_as<T, bool>) Param(T v) : value_(std::to_string(v)) {}  // NOLINT
  template <class T>
  Param(const std::optional<T>& v) {  // NOLINT
    if (v) *this = Param(*v);
  }

  [[nodiscard]] const std::optional<std::string>& value() const { return value_; }

 private:
  std::optional<std::string> value_;
};

using Params = std::vector<Param>;

// A query result. Rows and columns are zero-based.
class ResultSet {
 public:
  ResultSet() = default;
  explicit ResultSet(pg_result* r);
  ResultSet(ResultSet&&) noexcept;
  ResultSet& operator=(ResultSet&&) noexcept;
  ResultSet(const ResultSet&) = delete;
  ResultSet& operator=(const ResultSet&) = delete;
  ~ResultSet();

  [[nodiscard]] int rows() const;
  [[nodiscard]] int columns() const;
  [[nodiscard]] std::string_view columnName(int col) const;
  [[nodiscard]] int columnIndex(std::string_view name) const;  // -1 when absent
  // The column's type OID (16 bool, 20/21/23 integers, 114 json, 3802 jsonb, ...).
  [[nodiscard]] unsigned columnType(int col) const;
  // The column's type as JSON would carry it: bool, int2/int4/int8, json or
  // jsonb; every other type (numeric, text, timestamps, ...) is text.
  enum class Kind { kBool, kInteger, kJson, kText };
  [[nodiscard]] Kind columnKind(int col) const;
  // The command tag ("INSERT 0 1", "COMMIT", "ROLLBACK").
  [[nodiscard]] std::string_view commandTag() const;
  // Rows touched by INSERT/UPDATE/DELETE.
  [[nodiscard]] int64_t affected() const;

  [[nodiscard]] bool isNull(int row, int col) const;
  // The raw text value (empty for NULL; check isNull()).
  [[nodiscard]] std::string_view text(int row, int col) const;
  [[nodiscard]] std::optional<std::string> optText(int row, int col) const;
  [[nodiscard]] Result<int64_t> int64(int row, int col) const;
  [[nodiscard]] Result<bool> boolean(int row, int col) const;

 private:
  pg_result* res_ = nullptr;
};

struct Notification {
  std::string channel;
  std::string payload;
  int backend_pid = 0;
};

class Connection {
 public:
  Connection() = default;
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // conninfo is a libpq connection string ("host=/tmp/sock dbname=x user=y").
  [[nodiscard]] static Result<Connection> connect(const std::string& conninfo);

  [[nodiscard]] Result<ResultSet> exec(std::string_view sql, const Params& params = {});
  [[nodiscard]] Result<ResultSet> exec(std::string_view sql, std::initializer_list<Param> params);

  // Runs a multi-statement script with the simple query protocol. No
  // parameters: for migrations and fixed DDL only.
  [[nodiscard]] Result<void> execScript(std::string_view sql);

  // LISTEN on `channel` (quoted as an identifier).
  [[nodiscard]] Result<void> listen(std::string_view channel);
  // Returns a pending notification, waiting up to `timeout` for one.
  [[nodiscard]] Result<std::optional<Notification>> waitNotification(
      std::chrono::milliseconds timeout);

  // Reads whatever arrived on the socket and returns the queued
  // notifications without waiting (for callers that poll() socket() along
  // with other file descriptors).
  [[nodiscard]] Result<std::vector<Notification>> drainNotifications();
  [[nodiscard]] int socket() const;

  [[nodiscard]] bool healthy() const;
  // Whether the server has closed this idle connection (it died, or ended
  // the session), from what already arrived on the socket: no round trip.
  // For pools, before handing a connection out.
  [[nodiscard]] bool closedByServer();
  // Connected and not inside a transaction block.
  [[nodiscard]] bool idle() const;
  [[nodiscard]] int backendPid() const;
  [[nodiscard]] pg_conn* raw() const { return conn_; }

  // Writes whose results nobody reads (a projection's INSERT) can ride on
  // the next statement's round trip. While a BatchedWrites of this
  // connection is alive, execDeferred() queues the write; the next exec(),
  // execScript(), execPipeline(), execPrepared() or commit sends the queue
  // first, in one pipeline with its own statement, and returns the first
  // queued write's error as its own. Without a BatchedWrites it runs the
  // write at once. Queued writes are prepared once per connection, like
  // execPrepared(), so they must be statements whose plan does not depend
  // on their parameters (writes by a key).
  // `on_error`: when the write fails with that code (a unique violation),
  // report this error instead, wherever it surfaces.
  struct OnError {
    std::string_view code;
    Error instead;
  };
  [[nodiscard]] Result<void> execDeferred(std::string_view sql, Params params,
                                          std::optional<OnError> on_error = std::nullopt);
  [[nodiscard]] bool batchingWrites() const { return batching_; }
  [[nodiscard]] size_t deferredWrites() const { return deferred_.size(); }
  // How many queued writes have been sent (not discarded) so far.
  [[nodiscard]] uint64_t deferredSent() const { return deferred_sent_; }
  // Sends the queued writes now (a round trip when there are any).
  [[nodiscard]] Result<void> flushDeferred();
  // Drops the queued writes (before a ROLLBACK).
  void discardDeferred() { deferred_.clear(); }
  // Every queued write has an index, counted over the connection's life:
  // deferredSent() for the first one still queued, deferredNext() for the
  // next one queued. Dropping queued writes frees their indices again.
  [[nodiscard]] uint64_t deferredNext() const { return deferred_sent_ + deferred_.size(); }
  // Drops the queued writes from index `index` on, keeping those before it.
  void discardDeferredFrom(uint64_t index);
  // The index of the queued write whose failure the last round trip
  // reported (the pipeline stopped there), and forgets it. nullopt: none
  // failed since the last call.
  [[nodiscard]] std::optional<uint64_t> takeDeferredFailure() {
    return std::exchange(deferred_failed_, std::nullopt);
  }
  void noteDeferredFailure(uint64_t index) { deferred_failed_ = index; }

  struct DeferredWrite {
    std::string sql;
    Params params;
    std::optional<OnError> on_error;
  };
  [[nodiscard]] std::vector<DeferredWrite> takeDeferred() {
    deferred_sent_ += deferred_.size();
    return std::exchange(deferred_, {});
  }

 private:
  friend class BatchedWrites;
  explicit Connection(pg_conn* c) : conn_(c) {}
  Result<ResultSet> check(pg_result* r, std::string_view sql);
  pg_conn* conn_ = nullptr;
  bool batching_ = false;
  std::vector<DeferredWrite> deferred_;
  uint64_t deferred_sent_ = 0;
  std::optional<uint64_t> deferred_failed_;
};

// While alive, the connection's execDeferred() writes (and a
// Transaction::begin) are queued for the next statement's round trip. On
// destruction whatever is still queued is sent: an error there aborts the
// open transaction, so its commit fails.
class BatchedWrites {
 public:
  explicit BatchedWrites(Connection& conn) : conn_(conn), previous_(conn.batching_) {
    conn.batching_ = true;
  }
  ~BatchedWrites() {
    (void)conn_.flushDeferred();
    conn_.batching_ = previous_;
  }
  BatchedWrites(const BatchedWrites&) = delete;
  BatchedWrites& operator=(const BatchedWrites&) = delete;

 private:
  Connection& conn_;
  bool previous_;
};

enum class Isolation { kReadCommitted, kRepeatableRead, kSerializable };

// BEGIN on creation, ROLLBACK on destruction unless commit() succeeded.
// Under BatchedWrites the BEGIN itself waits for the first statement.
class Transaction {
 public:
  [[nodiscard]] static Result<Transaction> begin(Connection& conn,
                                                 Isolation iso = Isolation::kReadCommitted);
  Transaction(Transaction&& o) noexcept : conn_(o.conn_) { o.conn_ = nullptr; }
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  [[nodiscard]] Result<ResultSet> exec(std::string_view sql, const Params& params = {}) {
    return conn_->exec(sql, params);
  }
  [[nodiscard]] Result<ResultSet> exec(std::string_view sql, std::initializer_list<Param> p) {
    return conn_->exec(sql, p);
  }
  [[nodiscard]] Connection& connection() { return *conn_; }
  [[nodiscard]] Result<void> commit();
  // commit() on a connection with queued writes, which go in its round trip.
  // When one of them fails the COMMIT does not run: the error is returned
  // with `*queued_failed` set, and the transaction stays open, aborted until
  // it is rolled back to a savepoint (the connection's takeDeferredFailure()
  // says which write failed).
  [[nodiscard]] Result<void> commit(bool* queued_failed);
  void rollback();

 private:
  explicit Transaction(Connection& c) : conn_(&c) {}
  Connection* conn_;
};

// Quotes an identifier for the rare statement that cannot take a parameter
// (LISTEN, CREATE DATABASE). Never use it for values.
[[nodiscard]] std::string quoteIdentifier(std::string_view ident);

}  // namespace plfm::pg
