// Private to libs/http/src, and included only by the two Beast translation
// units (server.cc, client.cc): adapts internal::Socket to Beast's
// SyncReadStream and SyncWriteStream concepts, so that http::read and
// http::write get deadlines (Socket's) and can be interrupted by shutdown().
#pragma once

#include <sys/uio.h>

#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>
#include <system_error>

#include "socket.h"

namespace plfm::http::internal {

// Maps Socket's std::error_code to the codes Beast expects: end of stream is
// asio::error::eof, a missed deadline is beast::error::timeout.
inline boost::system::error_code toBoost(const std::error_code& ec) {
  if (ec == std::errc::timed_out) return boost::beast::error::timeout;
  return {ec.value(), boost::system::system_category()};
}

// An executor for the parts of Asio that insist on one (ssl::stream builds two
// timers it uses only for async operations, which we never start).
boost::asio::io_context::executor_type unusedExecutor();

class BeastStream {
 public:
  // What asio::ssl::stream<BeastStream> needs to layer TLS on top (tls.h).
  using lowest_layer_type = BeastStream;
  using executor_type = boost::asio::io_context::executor_type;

  explicit BeastStream(Socket& socket) : socket_(socket) {}

  lowest_layer_type& lowest_layer() { return *this; }
  const lowest_layer_type& lowest_layer() const { return *this; }
  executor_type get_executor() { return unusedExecutor(); }
  [[nodiscard]] Socket& socket() { return socket_; }

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
    size_t count = 0;
    auto end = boost::asio::buffer_sequence_end(buffers);
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != end && count < iov.size();
         ++it) {
      const boost::asio::const_buffer b(*it);
      if (b.size() == 0) continue;
      iov[count++] = iovec{const_cast<void*>(b.data()), b.size()};
    }
    if (count == 0) return 0;
    std::error_code sec;
    const size_t n = socket_.writeSome(iov.data(), count, sec);
    if (sec) ec = toBoost(sec);
    return n;
  }

  template <class ConstBufferSequence>
  size_t write_some(const ConstBufferSequence& buffers) {
    boost::system::error_code ec;
    const size_t n = write_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  Socket& socket_;
};

}  // namespace plfm::http::internal
