// Private to libs/http/src, included only by websocket.cc: the engine of one
// WebSocket connection (Session, SessionImpl<Stream>), on Beast's websocket
// stream.
//
// A connection opens like any HTTP exchange of ours: synchronously, on the
// deadline-aware socket (the server's connection thread, or the caller of
// connectWebSocket()). Once the handshake is done the same stream, TLS
// session included, switches to Asio's asynchronous operations on the shared
// ioContext(), and every Beast call of that connection from then on runs on
// its strand. Callers never touch the stream: read() takes from an inbox that
// a read loop on the strand fills; write() and close() queue an operation that
// the strand sends one at a time; so two writes can never overlap on the wire.
//
// Lifetime: finish() (from ~WebSocket) closes if needed, shuts the socket
// down so every pending operation completes, waits until nothing of this
// connection is queued or running on the strand (`quiet`), and only then lets
// the stream and socket go.
#pragma once

#include <algorithm>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/beast/websocket/stream.hpp>
#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "beast_stream.h"
#include "plfm/core/result.h"
#include "plfm/http/websocket.h"
#include "socket.h"

namespace plfm::http::internal {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bws = boost::beast::websocket;
using BoostError = boost::system::error_code;

// Messages the read loop may hold that nobody has read() yet; beyond it,
// reading pauses and TCP flow control pushes back on the peer.
inline constexpr size_t kInboxMessages = 1;
// The most one read step takes from the stream.
inline constexpr size_t kReadChunk = 64 << 10;
// A close reason is at most 123 bytes (RFC 6455 section 5.5: 125 minus the code).
inline constexpr size_t kMaxCloseReason = 123;
// How much longer than handshake_timeout a caller waits for close() before
// giving up on the strand (Beast's own close timeout fires first).
inline constexpr auto kCloseSlack = std::chrono::seconds(1);
// After stop(), how often Beast operations that are still pending get a
// terminal cancellation (see drain()).
inline constexpr auto kDrainEvery = std::chrono::milliseconds(5);

inline Error closedError(const CloseStatus& status, std::string_view who) {
  return Error(kErrWebSocketClosed, "websocket closed by " + std::string(who) + " (" +
                                        std::to_string(status.code) +
                                        (status.reason.empty() ? "" : " " + status.reason) + ")")
      .with("close_code", std::to_string(status.code))
      .with("close_reason", status.reason);
}

// Caller-facing half of a connection; SessionImpl<Stream> does the I/O.
class Session {
 public:
  Session() = default;
  virtual ~Session() = default;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  virtual Result<std::string> read() = 0;
  virtual Result<void> write(std::string_view message) = 0;
  virtual Result<void> close(uint16_t code, std::string_view reason) = 0;
  // Starts a close and returns at once.
  virtual void startClose(uint16_t code, std::string_view reason) = 0;
  [[nodiscard]] virtual std::optional<CloseStatus> closeStatus() const = 0;
  // Closes with `code` if still open, then waits until the strand holds
  // nothing of this connection. The stream may be destroyed after it.
  virtual void finish(uint16_t code) = 0;
};

struct OutOp {
  enum class Kind { kData, kPing, kClose } kind = Kind::kData;
  std::string data;
  bws::close_reason reason;
  std::promise<Result<void>> done;
};

template <class Stream>
class SessionImpl final : public Session {
 public:
  SessionImpl(Stream& stream, Socket& socket, const WebSocketOptions& options)
      : stream_(stream),
        socket_(socket),
        options_(options),
        strand_(asio::make_strand(ioContext())),
        descriptor_(ioContext()),
        timer_(strand_),
        close_timer_(strand_),
        drain_timer_(strand_) {
    ws_.emplace(stream_);
  }

  ~SessionImpl() override {
    // Only when start() failed or never ran: finish() released it otherwise.
    if (descriptor_.is_open()) (void)descriptor_.release();
  }
  SessionImpl(const SessionImpl&) = delete;
  SessionImpl& operator=(const SessionImpl&) = delete;

  // For the synchronous handshake, before start().
  bws::stream<Stream&>& ws() { return *ws_; }

  // Switches to asynchronous operation and starts reading and the keepalive.
  Result<void> start() {
    BoostError ec;
    descriptor_.assign(socket_.fd(), ec);
    if (ec) return Error(errc::kInternal, "websocket: registering the socket: " + ec.message());
    beast::get_lowest_layer(stream_).attachAsync(&descriptor_);
    ws_->binary(true);
    ws_->auto_fragment(false);
    ws_->read_message_max(options_.max_message_bytes);
    // Beast's own timer bounds only the closing handshake; the keepalive is
    // ours (tick()), so that it stops while the inbox is full.
    bws::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = options_.handshake_timeout;
    timeouts.idle_timeout = bws::stream_base::none();
    timeouts.keep_alive_pings = false;
    ws_->set_option(timeouts);
    ws_->control_callback([this](bws::frame_type /*kind*/, beast::string_view /*payload*/) {
      last_rx_ = SteadyClock::now();
    });
    last_rx_ = SteadyClock::now();
    startIoThreads();
    post([this] {
      startRead();
      armTimer();
    });
    return ok();
  }

  Result<std::string> read() override {
    std::lock_guard reader(read_mu_);
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !inbox_.empty() || end_.has_value(); });
    if (inbox_.empty()) return *end_;
    std::string message = std::move(inbox_.front());
    inbox_.pop_front();
    lock.unlock();
    post([this] { startRead(); });  // the inbox has room again
    return message;
  }

  Result<void> write(std::string_view message) override {
    if (message.size() > options_.max_message_bytes) {
      return Error(errc::kInvalidArgument,
                   "websocket message of " + std::to_string(message.size()) +
                       " bytes is over the limit of " + std::to_string(options_.max_message_bytes))
          .with("max_message_bytes", std::to_string(options_.max_message_bytes));
    }
    auto op = std::make_shared<OutOp>();
    op->data = std::string(message);
    std::future<Result<void>> done = op->done.get_future();
    if (!post([this, op] { enqueue(op); })) return finishedError();
    return done.get();
  }

  Result<void> close(uint16_t code, std::string_view reason) override {
    auto op = std::make_shared<OutOp>();
    op->kind = OutOp::Kind::kClose;
    op->reason =
        bws::close_reason(static_cast<bws::close_code>(code), reason.substr(0, kMaxCloseReason));
    std::future<Result<void>> done = op->done.get_future();
    if (!post([this, op] { enqueue(op); })) return finishedError();
    if (done.wait_for(options_.handshake_timeout + kCloseSlack) != std::future_status::ready) {
      // Beast's own close timeout has fired by now, and it only shuts the
      // socket down: an operation stuck inside Beast needs stop()'s drain.
      Error e(errc::kDeadlineExceeded, "websocket close handshake timed out");
      (void)post([this, e] { stop(e); });
      return e;
    }
    return done.get();
  }

  void startClose(uint16_t code, std::string_view reason) override {
    auto op = std::make_shared<OutOp>();
    op->kind = OutOp::Kind::kClose;
    op->reason =
        bws::close_reason(static_cast<bws::close_code>(code), reason.substr(0, kMaxCloseReason));
    (void)post([this, op] { enqueue(op); });
  }

  [[nodiscard]] std::optional<CloseStatus> closeStatus() const override {
    std::lock_guard lock(mu_);
    return peer_close_;
  }

  void finish(uint16_t code) override {
    bool finishing = false;
    {
      std::lock_guard lock(mu_);
      finishing = finishing_;
    }
    // Also waits for a close already under way (one the read loop started
    // for a text message, or the session's own).
    if (!finishing) (void)close(code, {});
    {
      std::lock_guard lock(mu_);
      if (finishing_) return;
      finishing_ = true;
      ++posted_;
    }
    asio::post(strand_, [this] {
      stop(Error(errc::kUnavailable, "websocket finished locally"));
      afterPosted();
    });
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return quiet_; });
    lock.unlock();
    // Nothing of ours is on the strand any more; Beast's close timer may still
    // hold a weak reference, which it checks there.
    std::promise<void> destroyed;
    asio::post(strand_, [this, &destroyed] {
      ws_.reset();
      destroyed.set_value();
    });
    destroyed.get_future().wait();
    beast::get_lowest_layer(stream_).attachAsync(nullptr);
    (void)descriptor_.release();  // the socket's owner closes the descriptor
  }

 private:
  Error finishedError() const {
    return Error(errc::kFailedPrecondition, "websocket is already finished");
  }

  // Runs `fn` on the strand; false once finish() began.
  template <class Fn>
  bool post(Fn&& fn) {
    {
      std::lock_guard lock(mu_);
      if (finishing_) return false;
      ++posted_;
    }
    asio::post(strand_, [this, f = std::forward<Fn>(fn)]() mutable {
      f();
      afterPosted();
    });
    return true;
  }

  void afterPosted() {
    std::lock_guard lock(mu_);
    --posted_;
    checkQuietLocked();
  }

  // On the strand, after every state change.
  void checkQuiet() {
    std::lock_guard lock(mu_);
    checkQuietLocked();
  }
  void checkQuietLocked() {
    if (finishing_ && stopped_ && !reading_ && !writing_ && !timer_armed_ && !close_timer_armed_ &&
        !drain_armed_ && posted_ == 0) {
      quiet_ = true;
      cv_.notify_all();
    }
  }

  void setEnd(Error e) {
    std::lock_guard lock(mu_);
    if (!end_) end_ = std::move(e);
    cv_.notify_all();
  }
  [[nodiscard]] Error currentEnd() const {
    std::lock_guard lock(mu_);
    return end_ ? *end_ : Error(errc::kUnavailable, "websocket closed");
  }
  [[nodiscard]] bool inboxFull() const {
    std::lock_guard lock(mu_);
    return inbox_.size() >= kInboxMessages;
  }

  // --- On the strand from here on. ---

  Error mapError(const BoostError& ec) {
    if (ec == bws::error::closed) {
      const bws::close_reason& r = ws_->reason();
      CloseStatus status{r.code, std::string(r.reason.data(), r.reason.size())};
      {
        std::lock_guard lock(mu_);
        peer_close_ = status;
      }
      return closedError(status, close_sent_ ? "us" : "the peer");
    }
    if (ec == bws::error::message_too_big) {
      return Error(errc::kResourceExhausted, "websocket message over the limit of " +
                                                 std::to_string(options_.max_message_bytes) +
                                                 " bytes; closed with 1009")
          .with("max_message_bytes", std::to_string(options_.max_message_bytes));
    }
    return Error(errc::kUnavailable, "websocket connection failed: " + ec.message());
  }

  // Fails the connection: shuts the socket down, which completes every
  // pending I/O operation with an error, and drains what Beast still holds.
  void stop(Error why) {
    setEnd(why);
    if (stopped_) return;
    stopped_ = true;
    socket_.shutdown(SHUT_RDWR);
    BoostError ignored;
    descriptor_.cancel(ignored);
    timer_.cancel();
    close_timer_.cancel();
    while (!queue_.empty()) {
      queue_.front()->done.set_value(why);
      queue_.pop_front();
    }
    completeCloseWaiters(why);
    drain();
  }

  // After stop(): completes the Beast operations that the shutdown did not.
  // Beast parks an operation that waits for the other direction (a read
  // that must answer a close, a close that must read the answer) in the
  // stream until that direction is released, and two of them can wait for
  // each other with no I/O pending (for example when a peer sends a frame
  // Beast rejects while our close frame goes out): no shutdown wakes those.
  // A terminal cancellation does; the stream is unusable afterwards, which
  // is fine once stopped. It repeats while any is left, since an operation
  // may park itself again after a cancellation went out.
  void drain() {
    if (!reading_ && !writing_) return;
    read_cancel_.emit(asio::cancellation_type::terminal);
    write_cancel_.emit(asio::cancellation_type::terminal);
    if ((!reading_ && !writing_) || drain_armed_) return;
    drain_armed_ = true;
    drain_timer_.expires_after(kDrainEvery);
    drain_timer_.async_wait([this](BoostError /*ec*/) {
      drain_armed_ = false;
      drain();
      checkQuiet();
    });
  }

  // Bounds our close on the strand, whoever waits for it (close(), or nobody:
  // startClose(), the close for a text message). Beast's own close timeout
  // only shuts the socket down, which does not complete a close parked in
  // Beast; stop() does.
  void armCloseTimer() {
    close_pending_ = true;
    close_timer_armed_ = true;
    close_timer_.expires_after(options_.handshake_timeout + kCloseSlack / 2);
    close_timer_.async_wait([this](BoostError ec) {
      close_timer_armed_ = false;
      if (!ec && close_pending_ && !stopped_) {
        stop(Error(errc::kDeadlineExceeded, "websocket close handshake timed out"));
      }
      checkQuiet();
    });
  }

  void completeCloseWaiters(const Result<void>& result) {
    close_done_ = true;
    for (const std::shared_ptr<OutOp>& waiter : close_waiters_) waiter->done.set_value(result);
    close_waiters_.clear();
  }

  // Once our close is queued the read loop starts no new read: the close
  // reads until the peer's answer itself. A read started then could find the
  // peer's close frame already buffered and, because of the control
  // callback, process it a strand turn later while holding Beast's read side;
  // if our close finished sending in between, it would wait for that read
  // side while the read waits for the write side to answer the close, and
  // neither would ever complete.
  void startRead() {
    if (reading_ || read_done_ || close_sent_ || stopped_ || inboxFull()) return;
    reading_ = true;
    ws_->async_read_some(
        rbuf_, kReadChunk,
        asio::bind_cancellation_slot(read_cancel_.slot(),
                                     asio::bind_executor(strand_, [this](BoostError ec, size_t) {
                                       onRead(ec);
                                       checkQuiet();
                                     })));
  }

  void onRead(const BoostError& ec) {
    reading_ = false;
    if (ec) {
      read_done_ = true;
      Error e = mapError(ec);
      if (stopped_) return;
      // Our own close is under way: its outcome, not how the read ended, says
      // how the connection ended.
      if (close_sent_ && ec != bws::error::closed) return;
      // Beast has already answered a close or sent 1009 and torn down.
      setEnd(std::move(e));
      finishClose();
      return;
    }
    last_rx_ = SteadyClock::now();
    if (ws_->is_message_done()) {
      if (!ws_->got_binary()) {
        setEnd(Error(errc::kFailedPrecondition, "websocket peer sent a text message"));
        queueClose(bws::close_reason(bws::close_code::unknown_data, "binary messages only"));
        read_done_ = true;  // the close reads what is left
        return;
      }
      std::string message = beast::buffers_to_string(rbuf_.data());
      rbuf_.clear();
      std::lock_guard lock(mu_);
      inbox_.push_back(std::move(message));
      cv_.notify_all();
    }
    startRead();
  }

  // The connection ended by a close handshake or an error: answer the close()
  // callers still waiting in the queue.
  void finishClose() {
    Error why = currentEnd();
    if (writing_) return;  // its completion drains the queue
    while (!queue_.empty()) {
      auto op = queue_.front();
      queue_.pop_front();
      if (op->kind == OutOp::Kind::kClose) {
        op->done.set_value(ok());
      } else {
        op->done.set_value(why);
      }
    }
    completeCloseWaiters(ok());
  }

  void queueClose(bws::close_reason reason) {
    auto op = std::make_shared<OutOp>();
    op->kind = OutOp::Kind::kClose;
    op->reason = std::move(reason);
    enqueue(op);
  }

  void enqueue(const std::shared_ptr<OutOp>& op) {
    if (op->kind == OutOp::Kind::kClose && !close_done_ && !stopped_ && close_sent_) {
      close_waiters_.push_back(op);  // a second close waits for the first
      return;
    }
    if (op->kind == OutOp::Kind::kClose && (close_sent_ || read_done_ || stopped_)) {
      // The connection already ended: nothing to send.
      op->done.set_value(ok());
      return;
    }
    if (op->kind != OutOp::Kind::kClose && (close_sent_ || read_done_ || stopped_)) {
      std::lock_guard lock(mu_);
      op->done.set_value(end_ ? *end_ : Error(kErrWebSocketClosed, "websocket is closing"));
      return;
    }
    if (op->kind == OutOp::Kind::kClose) close_sent_ = true;
    queue_.push_back(op);
    pumpWrites();
  }

  void pumpWrites() {
    if (writing_ || queue_.empty() || stopped_) return;
    std::shared_ptr<OutOp> op = queue_.front();
    queue_.pop_front();
    writing_ = true;
    auto done = asio::bind_cancellation_slot(
        write_cancel_.slot(),
        asio::bind_executor(strand_, [this, op](BoostError ec, auto&&... /*n*/) {
          onWritten(*op, ec);
          checkQuiet();
        }));
    switch (op->kind) {
      case OutOp::Kind::kData:
        ws_->async_write(asio::buffer(op->data), std::move(done));
        break;
      case OutOp::Kind::kPing:
        ws_->async_ping({}, std::move(done));
        break;
      case OutOp::Kind::kClose:
        ws_->async_close(op->reason, std::move(done));
        armCloseTimer();
        break;
    }
  }

  void onWritten(OutOp& op, BoostError ec) {
    writing_ = false;
    if (op.kind == OutOp::Kind::kClose) {
      close_pending_ = false;
      close_timer_.cancel();
      // The handshake is complete (or failed): either way nothing more goes out.
      read_done_ = true;
      // The read loop answered the peer's close before ours could go out:
      // the handshake is complete, Beast just aborts the redundant close.
      if (ec == asio::error::operation_aborted && !stopped_ && peerClosed()) ec = {};
      if (ec && ec != bws::error::closed) {
        Error e = stopped_ ? currentEnd() : mapError(ec);
        op.done.set_value(e);
        completeCloseWaiters(e);
        stop(std::move(e));
        return;
      }
      setEnd(closedError(peerCloseOr(op.reason), "us"));
      op.done.set_value(ok());
      finishClose();
      return;
    }
    if (ec) {
      Error e = mapError(ec);
      op.done.set_value(e);
      if (!stopped_ && ec != bws::error::closed) stop(std::move(e));
      finishClose();
      return;
    }
    op.done.set_value(ok());
    pumpWrites();
  }

  [[nodiscard]] bool peerClosed() const {
    std::lock_guard lock(mu_);
    return peer_close_.has_value();
  }

  CloseStatus peerCloseOr(const bws::close_reason& ours) {
    std::lock_guard lock(mu_);
    if (peer_close_) return *peer_close_;
    const bws::close_reason& r = ws_->reason();
    if (r.code != bws::close_code::none) {
      peer_close_ = CloseStatus{r.code, std::string(r.reason.data(), r.reason.size())};
      return *peer_close_;
    }
    return CloseStatus{ours.code, std::string(ours.reason.data(), ours.reason.size())};
  }

  // Keepalive, every idle_timeout / 4: ping once the peer has been silent for
  // half of idle_timeout, give up after all of it.
  void armTimer() {
    if (stopped_ || read_done_) return;
    timer_armed_ = true;
    timer_.expires_after(std::max<std::chrono::milliseconds>(options_.idle_timeout / 4,
                                                             std::chrono::milliseconds(1)));
    timer_.async_wait(asio::bind_executor(strand_, [this](BoostError ec) {
      timer_armed_ = false;
      if (!ec) tick();
      checkQuiet();
    }));
  }

  void tick() {
    if (stopped_ || read_done_) return;
    const Deadline now = SteadyClock::now();
    if (inboxFull() || !reading_) {
      // Our reader is slow, not the peer: nothing is read, so nothing counts.
      last_rx_ = now;
    } else if (now - last_rx_ >= options_.idle_timeout) {
      stop(Error(errc::kDeadlineExceeded, "websocket peer silent for " +
                                              std::to_string(options_.idle_timeout.count()) +
                                              " ms (no answer to ping)"));
      return;
    } else if (now - last_rx_ >= options_.idle_timeout / 2 && last_ping_ < last_rx_ &&
               !close_sent_) {
      last_ping_ = now;
      auto op = std::make_shared<OutOp>();
      op->kind = OutOp::Kind::kPing;
      queue_.push_back(op);
      pumpWrites();
    }
    armTimer();
  }

  Stream& stream_;
  Socket& socket_;
  const WebSocketOptions options_;
  asio::strand<asio::io_context::executor_type> strand_;
  asio::posix::stream_descriptor descriptor_;
  // Bound to every read and every write (close, ping) we start, for drain();
  // declared before ws_ so that they outlive the operations that use them.
  asio::cancellation_signal read_cancel_;
  asio::cancellation_signal write_cancel_;
  std::optional<bws::stream<Stream&>> ws_;
  asio::steady_timer timer_;
  asio::steady_timer close_timer_;
  asio::steady_timer drain_timer_;

  // The strand's own state.
  beast::flat_buffer rbuf_;
  std::deque<std::shared_ptr<OutOp>> queue_;
  bool reading_ = false;
  bool writing_ = false;
  bool timer_armed_ = false;
  bool close_timer_armed_ = false;
  bool close_pending_ = false;  // our close is in Beast
  bool drain_armed_ = false;
  bool read_done_ = false;   // the read loop ended (error, close, text)
  bool close_sent_ = false;  // a close is queued or sent: no more data
  bool stopped_ = false;     // the socket is shut down
  bool close_done_ = false;  // the close handshake ended (or cannot happen)
  std::vector<std::shared_ptr<OutOp>> close_waiters_;  // later close() calls
  Deadline last_rx_{};
  Deadline last_ping_{};

  // Shared with callers.
  std::mutex read_mu_;  // one read() at a time
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> inbox_;
  std::optional<Error> end_;  // read() returns it once the inbox is empty
  std::optional<CloseStatus> peer_close_;
  int posted_ = 0;  // post()ed functions not yet run
  bool finishing_ = false;
  bool quiet_ = false;
};

}  // namespace plfm::http::internal
