// The little HTTP/1.1 hello speaks: one request per connection, a request
// head of at most kMaxHeadBytes, GET and HEAD only, answers with
// `Connection: close`. Parsing is separate from answering (answer.h), so the
// rules are unit-tested without sockets.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace plfm::hello {

inline constexpr size_t kMaxHeadBytes = 8192;

struct Request {
  std::string method;  // as sent: "GET", "HEAD", ...
  std::string path;    // the target without its query string
};

// The length of the request head (through the blank line) when `buf` holds
// all of it; nullopt while more is needed.
[[nodiscard]] std::optional<size_t> headLength(std::string_view buf);

// Parses the request line of a complete head; nullopt for anything that is
// not `METHOD SP origin-form SP HTTP/1.x`.
[[nodiscard]] std::optional<Request> parseRequestHead(std::string_view head);

struct Response {
  int status = 200;
  std::string body;
  std::string allow;  // the Allow header of a 405
  // A paced body: `chunk` bytes every `pace` (a long download, for drain
  // tests); 0: all at once.
  std::chrono::milliseconds pace{0};
  size_t chunk = 0;
};

// The bytes on the wire; a HEAD response keeps Content-Length, drops the body.
[[nodiscard]] std::string serialize(const Response& response, bool head_only);

[[nodiscard]] std::string_view reasonPhrase(int status);

}  // namespace plfm::hello
