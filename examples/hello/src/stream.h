// A connected byte stream that a request is read from and answered on:
// plain TCP on the health port, TLS on the HTTPS port. Reads and writes are
// blocking, bounded by the socket's SO_RCVTIMEO / SO_SNDTIMEO.
#pragma once

#include <cstddef>
#include <string_view>

namespace plfm::hello {

class Stream {
 public:
  virtual ~Stream() = default;
  // Bytes read into buf (> 0), 0 at end of stream, -1 on error or timeout.
  virtual long read(char* buf, size_t len) = 0;
  // Writes everything; false on error or timeout.
  virtual bool writeAll(std::string_view data) = 0;
};

class PlainStream : public Stream {
 public:
  explicit PlainStream(int fd) : fd_(fd) {}
  long read(char* buf, size_t len) override;
  bool writeAll(std::string_view data) override;

 private:
  int fd_;
};

}  // namespace plfm::hello
