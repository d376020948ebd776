// Method + path-pattern routing (Beast-free).
//
// Paths are split on '/' before percent-decoding, so an encoded slash ("%2F")
// stays inside one segment and reaches a placeholder as '/'.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "internal.h"
#include "plfm/core/assert.h"
#include "plfm/http/http.h"

namespace plfm::http {
namespace {

// "/a/b" -> {"a", "b"}, "/" -> {""}, "/a/" -> {"a", ""}. `path` starts with '/'.
std::vector<std::string_view> splitPath(std::string_view path) {
  std::vector<std::string_view> out;
  size_t start = 1;
  for (;;) {
    const size_t slash = path.find('/', start);
    out.push_back(path.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) return out;
    start = slash + 1;
  }
}

bool isPlaceholder(std::string_view segment) {
  return segment.size() >= 3 && segment.front() == '{' && segment.back() == '}';
}

bool matches(const std::vector<std::string>& pattern, const std::vector<std::string>& path) {
  if (pattern.size() != path.size()) return false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (isPlaceholder(pattern[i])) {
      if (path[i].empty()) return false;
    } else if (pattern[i] != path[i]) {
      return false;
    }
  }
  return true;
}

// Of two patterns matching the same path, the one with a literal segment where
// the other has a placeholder (leftmost difference) wins: "/apps/new" beats
// "/apps/{id}".
bool moreSpecific(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const bool pa = isPlaceholder(a[i]);
    const bool pb = isPlaceholder(b[i]);
    if (pa != pb) return !pa;
  }
  return false;
}

// The request's path segments, percent-decoded one by one.
Result<std::vector<std::string>> requestSegments(const Request& req) {
  std::vector<std::string> out;
  if (!req.target.empty()) {
    const std::string_view raw = internal::targetPath(req.target);
    if (raw.empty() || raw.front() != '/') {
      return Error(errc::kInvalidArgument, "request target must start with '/'");
    }
    for (std::string_view segment : splitPath(raw)) {
      PLFM_ASSIGN_OR_RETURN(auto decoded, percentDecode(segment, /*plus_is_space=*/false));
      out.push_back(std::move(decoded));
    }
    return out;
  }
  // A request built in code without a target: its path is already decoded.
  if (req.path.empty() || req.path.front() != '/') {
    return Error(errc::kInvalidArgument, "request path must start with '/'");
  }
  for (std::string_view segment : splitPath(req.path)) out.emplace_back(segment);
  return out;
}

}  // namespace

void Router::add(std::string method, std::string pattern, Handler handler) {
  PLFM_ASSERT(!pattern.empty() && pattern.front() == '/', "route pattern must start with '/'");
  PLFM_ASSERT(handler != nullptr, "route handler must not be empty");
  std::vector<std::string> segments;
  for (std::string_view segment : splitPath(pattern)) segments.emplace_back(segment);
  for (const Entry& e : entries_) {
    PLFM_ASSERT(!(e.method == method && e.segments == segments), "duplicate route");
  }
  entries_.push_back(
      Entry{std::move(method), std::move(pattern), std::move(segments), std::move(handler)});
}

std::vector<Router::Route> Router::routes() const {
  std::vector<Route> out;
  out.reserve(entries_.size());
  for (const Entry& e : entries_) out.push_back(Route{e.method, e.pattern});
  return out;
}

Response Router::dispatch(Request& req) const {
  auto segments = requestSegments(req);
  if (!segments) {
    return internal::errorResponse(400, internal::kCodeBadRequest, segments.error().message());
  }
  const Entry* best = nullptr;
  std::vector<std::string> allowed;
  for (const Entry& e : entries_) {
    if (!matches(e.segments, *segments)) continue;
    allowed.push_back(e.method);
    if (e.method == req.method && (best == nullptr || moreSpecific(e.segments, best->segments))) {
      best = &e;
    }
  }
  if (best != nullptr) {
    req.params.clear();
    for (size_t i = 0; i < best->segments.size(); ++i) {
      const std::string& segment = best->segments[i];
      if (isPlaceholder(segment)) {
        req.params.insert_or_assign(segment.substr(1, segment.size() - 2),
                                    std::move((*segments)[i]));
      }
    }
    return best->handler(req);
  }
  if (allowed.empty()) {
    return internal::errorResponse(404, internal::kCodeNotFound, "no route for this path");
  }
  std::sort(allowed.begin(), allowed.end());
  allowed.erase(std::unique(allowed.begin(), allowed.end()), allowed.end());
  std::string allow;
  for (const std::string& m : allowed) {
    if (!allow.empty()) allow += ", ";
    allow += m;
  }
  Response r = internal::errorResponse(405, internal::kCodeMethodNotAllowed,
                                       "method " + req.method + " not allowed; allowed: " + allow);
  r.headers.set("Allow", allow);
  return r;
}

}  // namespace plfm::http
