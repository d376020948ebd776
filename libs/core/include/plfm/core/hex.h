// Checks of hex text that arrives from peers (digests, restic ids, exec
// tokens): one predicate, so that every parser holds it to the same grammar.
#pragma once

#include <algorithm>
#include <string_view>

namespace plfm {

// Exactly 64 lowercase hex characters: a SHA-256 in hex, a restic id.
[[nodiscard]] inline bool isLowerHex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace plfm
