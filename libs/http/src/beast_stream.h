// Private to libs/http/src, and included only by the Beast translation units
// (server.cc, client.cc, tls.cc, websocket.cc): adapts internal::Socket to
// Beast's SyncReadStream and SyncWriteStream concepts, so that http::read and
// http::write get deadlines (Socket's) and can be interrupted by shutdown().
//
// A WebSocket connection starts like any other (sync, with deadlines) and then
// switches the same stream, TLS session included, to Asio's asynchronous
// operations: attachAsync() hands it a descriptor registered with ioContext()
// on the same file descriptor.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>
#include <cerrno>
#include <system_error>
#include <utility>

#include "socket.h"

namespace plfm::http::internal {

// Maps Socket's std::error_code to the codes Beast expects: end of stream is
// asio::error::eof, a missed deadline is beast::error::timeout.
inline boost::system::error_code toBoost(const std::error_code& ec) {
  if (ec == std::errc::timed_out) return boost::beast::error::timeout;
  return {ec.value(), boost::system::system_category()};
}

// The process-wide io_context of the asynchronous (WebSocket) connections.
// Its threads start with the first one (startIoThreads()); before that the
// sync streams use it only as the executor that ssl::stream insists on.
boost::asio::io_context& ioContext();
void startIoThreads();

class BeastStream {
 public:
  // What asio::ssl::stream<BeastStream> needs to layer TLS on top (tls.h).
  using lowest_layer_type = BeastStream;
  using executor_type = boost::asio::io_context::executor_type;

  explicit BeastStream(Socket& socket) : socket_(socket) {}

  lowest_layer_type& lowest_layer() { return *this; }
  const lowest_layer_type& lowest_layer() const { return *this; }
  executor_type get_executor() { return ioContext().get_executor(); }
  [[nodiscard]] Socket& socket() { return socket_; }

  // Enables async_read_some/async_write_some through `descriptor`, which
  // wraps socket().fd() and must outlive every asynchronous operation.
  void attachAsync(boost::asio::posix::stream_descriptor* descriptor) { async_ = descriptor; }

  template <class MutableBufferSequence, class Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    return async_->async_read_some(buffers, std::forward<Token>(token));
  }
  // Not the descriptor's own write, which is write(2): a peer that went away
  // must be an error value, not SIGPIPE. So: wait until writable, then
  // sendmsg(MSG_NOSIGNAL) what fits. Never completes inside this call.
  template <class ConstBufferSequence, class Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    return boost::asio::async_compose<Token, void(boost::system::error_code, size_t)>(
        [this, buffers, started = false](auto& self, boost::system::error_code ec = {}) mutable {
          if (!ec && started) {
            const ssize_t n = sendSome(buffers, ec);
            if (n >= 0) return self.complete(ec, static_cast<size_t>(n));
          }
          if (!ec) {
            started = true;
            return async_->async_wait(boost::asio::posix::descriptor_base::wait_write,
                                      std::move(self));
          }
          self.complete(ec, 0);
        },
        token, *async_);
  }

  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers, boost::system::error_code& ec) {
    ec = {};
    auto end = boost::asio::buffer_sequence_end(buffers);
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != end; ++it) {
      const boost::asio::mutable_buffer b(*it);
      if (b.size() == 0) continue;
      std::error_code sec;
      const size_t n = socket_.readSome(b.data(), b.size(), sec);
      if (sec) {
        ec = toBoost(sec);
      } else if (n == 0) {
        ec = boost::asio::error::eof;
      }
      return n;
    }
    return 0;
  }

  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers) {
    boost::system::error_code ec;
    const size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

  template <class ConstBufferSequence>
  size_t write_some(const ConstBufferSequence& buffers, boost::system::error_code& ec) {
    ec = {};
    std::array<iovec, 16> iov{};
    const size_t count = gather(buffers, iov);
    if (count == 0) return 0;
    std::error_code sec;
    const size_t n = socket_.writeSome(iov.data(), count, sec);
    if (sec) ec = toBoost(sec);
    return n;
  }

  // One non-blocking sendmsg: bytes sent; -1 with `ec` clear when it would
  // block; -1 with `ec` on an error.
  template <class ConstBufferSequence>
  ssize_t sendSome(const ConstBufferSequence& buffers, boost::system::error_code& ec) {
    std::array<iovec, 16> iov{};
    const size_t count = gather(buffers, iov);
    if (count == 0) return 0;
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = count;
    const ssize_t n = ::sendmsg(socket_.fd(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return -1;
    ec = boost::system::error_code(errno, boost::system::system_category());
    return -1;
  }

  template <class ConstBufferSequence>
  size_t write_some(const ConstBufferSequence& buffers) {
    boost::system::error_code ec;
    const size_t n = write_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  // The first non-empty buffers of `buffers` (as many as `iov` holds).
  template <class ConstBufferSequence>
  static size_t gather(const ConstBufferSequence& buffers, std::array<iovec, 16>& iov) {
    size_t count = 0;
    auto end = boost::asio::buffer_sequence_end(buffers);
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != end && count < iov.size();
         ++it) {
      const boost::asio::const_buffer b(*it);
      if (b.size() == 0) continue;
      iov[count++] = iovec{const_cast<void*>(b.data()), b.size()};
    }
    return count;
  }

  Socket& socket_;
  boost::asio::posix::stream_descriptor* async_ = nullptr;
};

// Beast's customization points for a WebSocket directly over BeastStream
// (found by argument-dependent lookup). Tearing down only ends our sending
// side: the connection's owner closes the descriptor.
inline void teardown(boost::beast::role_type /*role*/, BeastStream& stream,
                     boost::system::error_code& ec) {
  stream.socket().shutdown(SHUT_WR);
  ec = {};
}

template <class Handler>
void async_teardown(boost::beast::role_type /*role*/, BeastStream& stream, Handler&& handler) {
  stream.socket().shutdown(SHUT_WR);
  // Through the handler's own executor (the connection's strand), as if by
  // post: bind_front_handler keeps it associated.
  boost::asio::post(stream.get_executor(),
                    boost::beast::bind_front_handler(std::forward<Handler>(handler),
                                                     boost::system::error_code{}));
}

// What Beast calls to abort a connection (a failed WebSocket): wakes every
// pending operation with end of stream.
inline void beast_close_socket(BeastStream& stream) { stream.socket().shutdown(SHUT_RDWR); }

}  // namespace plfm::http::internal
