// Byte-level helpers shared by the strict codec and the dotenv reader: the
// key charset, UTF-8 well-formedness and the canonical value escaping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace plfm::secrets::internal {

inline bool isKeyStart(char c) { return (c >= 'A' && c <= 'Z') || c == '_'; }
inline bool isKeyChar(char c) { return isKeyStart(c) || (c >= '0' && c <= '9'); }

// Length of the well-formed UTF-8 sequence starting at s[i] (Unicode 15,
// table 3-7: no overlongs, no surrogates, nothing above U+10FFFF), or 0 when
// none starts there. ASCII bytes count as sequences of length 1.
size_t utf8SequenceLength(std::string_view s, size_t i);

// The short escape letter for a byte that has one (\n \r \t \\ \" \$ \`),
// or 0. '$' and '`' are escaped so that a POSIX shell sourcing the file does
// not expand them inside the double quotes.
char shortEscape(uint8_t b);

// True for bytes that can only be written as \xNN: C0 controls without a
// short escape, and DEL. (Bytes >= 0x80 are \xNN only when they do not start
// a well-formed UTF-8 sequence; that depends on the following bytes.)
bool needsHexEscape(uint8_t b);

// Lowercase hex digit value, or -1.
int hexValue(char c);

// Size of `value` once escaped, without the quotes.
size_t escapedSize(std::string_view value);
// Appends `value`, escaped, without the quotes.
void appendEscaped(std::string& out, std::string_view value);

// Compares `escaped` with the canonical escaping of `value` without building
// it (that would be one more copy of the secret). Returns the offset into
// `escaped` of the first difference, or npos when they are equal.
size_t firstNonCanonical(std::string_view value, std::string_view escaped);

// Wipes a string when it goes out of scope, whatever the path out.
class WipeOnExit {
 public:
  explicit WipeOnExit(std::string& s) : s_(s) {}
  WipeOnExit(const WipeOnExit&) = delete;
  WipeOnExit& operator=(const WipeOnExit&) = delete;
  ~WipeOnExit();

 private:
  std::string& s_;
};

}  // namespace plfm::secrets::internal
