// plfm::Result<T> is tl::expected<T, plfm::Error> marked [[nodiscard]], so a
// dropped error is a compile warning (an error under -Werror).
//
//   Result<Port> parsePort(std::string_view s);
//   PLFM_ASSIGN_OR_RETURN(auto port, parsePort(text));
//   PLFM_TRY(listen(port));
//
// A function returning Result<T> may `return value;` or `return error;`
// (an Error converts implicitly to the failed state).
#pragma once

#include <tl/expected.hpp>
#include <utility>

#include "plfm/core/error.h"

namespace plfm {

template <class T = void>
class [[nodiscard]] Result : public tl::expected<T, Error> {
 public:
  using Base = tl::expected<T, Error>;
  using Base::Base;

  Result(Base base) : Base(std::move(base)) {}  // NOLINT(google-explicit-constructor)
  Result(Error error)                           // NOLINT(google-explicit-constructor)
      : Base(tl::unexpect, std::move(error)) {}
};

inline tl::unexpected<Error> unexpected(Error error) {
  return tl::unexpected<Error>(std::move(error));
}

// Result<void> success value: `return plfm::ok();`.
inline Result<void> ok() { return {}; }

}  // namespace plfm

#define PLFM_CONCAT_INNER_(a, b) a##b
#define PLFM_CONCAT_(a, b) PLFM_CONCAT_INNER_(a, b)

// Evaluates `expr` (a Result<...>); on failure returns its error from the
// enclosing function.
#define PLFM_TRY(expr)                                                \
  do {                                                                \
    auto&& plfm_try_result_ = (expr);                                 \
    if (!plfm_try_result_) {                                          \
      return ::plfm::unexpected(std::move(plfm_try_result_).error()); \
    }                                                                 \
  } while (false)

// `tmp` and `lhs` name declarations, so they cannot be parenthesized.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define PLFM_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr)    \
  auto tmp = (expr);                                   \
  if (!tmp) {                                          \
    return ::plfm::unexpected(std::move(tmp).error()); \
  }                                                    \
  lhs = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)

// Evaluates `expr`; on failure returns its error, otherwise moves the value
// into `lhs` (which may be a declaration: `auto x`).
#define PLFM_ASSIGN_OR_RETURN(lhs, expr) \
  PLFM_ASSIGN_OR_RETURN_IMPL_(PLFM_CONCAT_(plfm_aor_, __LINE__), lhs, expr)
