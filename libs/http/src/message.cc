// Headers, Request, Response and percent-decoding: the Beast-free message
// types of plfm/http/http.h.
#include <algorithm>
#include <utility>

#include "internal.h"
#include "plfm/core/strings.h"
#include "plfm/http/http.h"

namespace plfm::http {
namespace {

char asciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

void Headers::add(std::string name, std::string value) {
  items_.emplace_back(std::move(name), std::move(value));
}

void Headers::set(std::string name, std::string value) {
  std::erase_if(items_, [&](const auto& item) { return internal::iequals(item.first, name); });
  items_.emplace_back(std::move(name), std::move(value));
}

std::optional<std::string_view> Headers::get(std::string_view name) const {
  for (const auto& [key, value] : items_) {
    if (internal::iequals(key, name)) return std::string_view(value);
  }
  return std::nullopt;
}

std::string_view Request::param(std::string_view name) const {
  auto it = params.find(std::string(name));
  return it == params.end() ? std::string_view() : std::string_view(it->second);
}

std::optional<std::string_view> Request::queryParam(std::string_view name) const {
  auto it = query.find(std::string(name));
  if (it == query.end()) return std::nullopt;
  return std::string_view(it->second);
}

Response Response::json(int status, std::string body) {
  Response r;
  r.status = status;
  r.headers.set("Content-Type", "application/json");
  r.body = std::move(body);
  return r;
}

Response Response::text(int status, std::string body) {
  Response r;
  r.status = status;
  r.headers.set("Content-Type", "text/plain; charset=utf-8");
  r.body = std::move(body);
  return r;
}

// RFC 3986 section 2.1; '+' as a space is the form encoding of query strings
// (WHATWG URL, application/x-www-form-urlencoded).
Result<std::string> percentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%') {
      const int hi = i + 1 < s.size() ? hexValue(s[i + 1]) : -1;
      const int lo = i + 2 < s.size() ? hexValue(s[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        return Error(errc::kInvalidArgument, "invalid percent-encoding")
            .with("offset", std::to_string(i));
      }
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (plus_is_space && c == '+') {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

namespace internal {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return asciiLower(x) == asciiLower(y);
         });
}

std::string errorBody(std::string_view code, std::string_view message) {
  std::string body = R"({"error":{"code":")";
  appendJsonEscaped(body, code);
  body += R"(","message":")";
  appendJsonEscaped(body, message);
  body += "\"}}";
  return body;
}

Response errorResponse(int status, std::string_view code, std::string_view message) {
  return Response::json(status, errorBody(code, message));
}

std::string_view targetPath(std::string_view target) { return target.substr(0, target.find('?')); }

Result<void> parseTarget(Request& req) {
  const std::string_view target = req.target;
  if (target.empty() || target.front() != '/') {
    return Error(errc::kInvalidArgument, "request target must start with '/'");
  }
  const std::string_view raw_path = targetPath(target);
  PLFM_ASSIGN_OR_RETURN(req.path, percentDecode(raw_path, /*plus_is_space=*/false));
  req.query.clear();
  if (raw_path.size() == target.size()) return ok();
  std::string_view rest = target.substr(raw_path.size() + 1);
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    PLFM_ASSIGN_OR_RETURN(auto key, percentDecode(pair.substr(0, eq), /*plus_is_space=*/true));
    std::string value;
    if (eq != std::string_view::npos) {
      PLFM_ASSIGN_OR_RETURN(value, percentDecode(pair.substr(eq + 1), /*plus_is_space=*/true));
    }
    req.query.insert_or_assign(std::move(key), std::move(value));
  }
  return ok();
}

}  // namespace internal
}  // namespace plfm::http
