// Private to libs/http/src (Beast-free): binding http::Server's listen
// addresses ("[::1]:8080", "127.0.0.1:0", "unix:/path").
#pragma once

#include <sys/types.h>

#include <string>
#include <thread>

#include "plfm/core/result.h"
#include "socket.h"

namespace plfm::http::internal {

struct Listener {
  std::string endpoint;   // as bound: "[::1]:43121", "unix:/path"
  std::string unix_path;  // the socket file we created, removed by stop()
  ino_t unix_inode = 0;
  Socket socket;  // listening, non-blocking
  std::thread thread;
};

// Parses and binds one listen address. A Unix socket file left by a server
// that is gone is replaced; a live server's is not. Errors name the address
// (detail "address").
[[nodiscard]] Result<Listener> bindListener(const std::string& spec);

// Removes the Unix socket file that bindListener created, if it is still ours.
void removeSocketFile(const Listener& l);

}  // namespace plfm::http::internal
