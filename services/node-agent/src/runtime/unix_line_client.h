// A blocking line-oriented client on a Unix stream socket, with deadlines: what
// QMP (newline-delimited JSON) needs. Not thread-safe.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "plfm/core/result.h"

namespace plfm::runtime {

class UnixLineClient {
 public:
  UnixLineClient() = default;
  ~UnixLineClient();
  UnixLineClient(UnixLineClient&& o) noexcept;
  UnixLineClient& operator=(UnixLineClient&& o) noexcept;
  UnixLineClient(const UnixLineClient&) = delete;
  UnixLineClient& operator=(const UnixLineClient&) = delete;

  // Connects, retrying while the socket does not exist yet or refuses, until
  // `timeout` has passed.
  [[nodiscard]] static Result<UnixLineClient> connect(const std::string& path,
                                                      std::chrono::milliseconds timeout);

  [[nodiscard]] Result<void> writeAll(std::string_view data, std::chrono::milliseconds timeout);
  // Like writeAll, with `pass_fd` attached to the first byte (SCM_RIGHTS),
  // as QMP's add-fd and getfd expect.
  [[nodiscard]] Result<void> writeAllWithFd(std::string_view data, int pass_fd,
                                            std::chrono::milliseconds timeout);
  // One line without its '\n'. Lines longer than `max_bytes` are an error.
  [[nodiscard]] Result<std::string> readLine(std::chrono::milliseconds timeout,
                                             size_t max_bytes = 1 << 20);

  [[nodiscard]] int fd() const { return fd_; }

 private:
  explicit UnixLineClient(int fd) : fd_(fd) {}
  int fd_ = -1;
  std::string buffer_;
};

}  // namespace plfm::runtime
