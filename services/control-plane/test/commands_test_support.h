// Requests for the command parsers' unit tests (*_commands_test.cc): the
// parts of an http::Request that parse*() reads, as the router fills them.
#pragma once

#include <string>

#include "plfm/core/result.h"
#include "plfm/http/http.h"

namespace plfm::cp::command_test {

// A request with one path parameter and a body.
inline http::Request commandRequest(const std::string& param, const std::string& id,
                                    const std::string& body) {
  http::Request req;
  req.method = "POST";
  req.body = body;
  req.params[param] = id;
  return req;
}

// The field a refusal names, or "(accepted)".
template <class T>
std::string refusedField(const Result<T>& r) {
  return r ? "(accepted)" : std::string(r.error().detail("field"));
}

}  // namespace plfm::cp::command_test
