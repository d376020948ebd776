#include "plfm/core/error.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "plfm/core/assert.h"

namespace plfm {

std::string_view Error::detail(std::string_view key) const {
  for (const auto& [k, v] : details_) {
    if (k == key) return v;
  }
  return {};
}

Error& Error::with(std::string key, std::string value) & {
  details_.emplace_back(std::move(key), std::move(value));
  return *this;
}

Error&& Error::with(std::string key, std::string value) && {
  details_.emplace_back(std::move(key), std::move(value));
  return std::move(*this);
}

Error& Error::context(std::string_view what) & {
  message_ = std::string(what) + ": " + message_;
  return *this;
}

Error&& Error::context(std::string_view what) && {
  message_ = std::string(what) + ": " + message_;
  return std::move(*this);
}

std::string Error::toString() const {
  std::string out = code_ + ": " + message_;
  if (!details_.empty()) {
    out += " (";
    for (size_t i = 0; i < details_.size(); ++i) {
      if (i > 0) out += ", ";
      out += details_[i].first + "=" + details_[i].second;
    }
    out += ")";
  }
  return out;
}

Error errnoError(std::string_view what, int err) {
  return Error(errc::kIo, std::string(what) + ": " + std::strerror(err))
      .with("errno", std::to_string(err));
}

namespace internal {
void assertFail(const char* expr, const char* file, int line, const char* msg) {
  std::fprintf(stderr, "PLFM_ASSERT failed: %s at %s:%d: %s\n", expr, file, line, msg);
  std::fflush(stderr);
  std::abort();
}
}  // namespace internal

}  // namespace plfm
