// The result shape shared by the incremental parsers of this library
// (ClientHelloParser, ProxyHeaderParser). A connection handler feeds each
// read into the parser until it reports kDone or kError; kNeedMore means
// "read more bytes" and the handler owns the timeout for slow clients.
#pragma once

#include <cstddef>

namespace plfm::net {

enum class ParseStatus { kNeedMore, kDone, kError };

struct FeedResult {
  ParseStatus status = ParseStatus::kNeedMore;
  // How many bytes of this call's input the parser took. When the status is
  // kDone, input[consumed..] is what follows the parsed object (the parser
  // never reads into it). With kNeedMore it is the whole input; with kError,
  // the bytes examined up to the offending one.
  size_t consumed = 0;
};

}  // namespace plfm::net
