#include "http.h"

#include <algorithm>

namespace plfm::hello {
namespace {

bool isTchar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// RFC 9112 §3.2.1 origin-form: "/" then visible ASCII.
bool isOriginForm(std::string_view target) {
  if (target.empty() || target.front() != '/') return false;
  return std::all_of(target.begin(), target.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

}  // namespace

std::optional<size_t> headLength(std::string_view buf) {
  auto end = buf.find("\r\n\r\n");
  if (end == std::string_view::npos) return std::nullopt;
  return end + 4;
}

std::optional<Request> parseRequestHead(std::string_view head) {
  auto eol = head.find("\r\n");
  if (eol == std::string_view::npos) return std::nullopt;
  std::string_view line = head.substr(0, eol);
  auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return std::nullopt;
  auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return std::nullopt;
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!std::all_of(method.begin(), method.end(), isTchar)) return std::nullopt;
  if (!isOriginForm(target)) return std::nullopt;
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return std::nullopt;
  Request r;
  r.method = std::string(method);
  r.path = std::string(target.substr(0, target.find('?')));
  return r;
}

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    default:
      return "Internal Server Error";
  }
}

std::string serialize(const Response& response, bool head_only) {
  std::string out = "HTTP/1.1 " + std::to_string(response.status) + " ";
  out += reasonPhrase(response.status);
  out += "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ";
  out += std::to_string(response.body.size());
  out += "\r\nCache-Control: no-store\r\nConnection: close\r\n";
  if (!response.allow.empty()) out += "Allow: " + response.allow + "\r\n";
  out += "\r\n";
  if (!head_only) out += response.body;
  return out;
}

}  // namespace plfm::hello
