#include "escape.h"

#include "plfm/secrets/format.h"

namespace plfm::secrets::internal {
namespace {

uint8_t byteAt(std::string_view s, size_t i) { return static_cast<uint8_t>(s[i]); }

bool inRange(std::string_view s, size_t i, uint8_t lo, uint8_t hi) {
  return i < s.size() && byteAt(s, i) >= lo && byteAt(s, i) <= hi;
}

constexpr std::string_view kHexDigits = "0123456789abcdef";

// How `value` is written from position i: the number of value bytes taken and
// the number of output bytes they become.
struct Step {
  size_t in = 1;
  size_t out = 1;
};

Step stepAt(std::string_view value, size_t i) {
  const uint8_t b = byteAt(value, i);
  if (shortEscape(b) != 0) return {1, 2};
  if (needsHexEscape(b)) return {1, 4};
  if (b < 0x80) return {1, 1};
  const size_t n = utf8SequenceLength(value, i);
  if (n == 0) return {1, 4};
  return {n, n};
}

// The escaped form of the step at value[i]: either a view into `value` or
// the escape sequence written into `buf`.
std::string_view render(std::string_view value, size_t i, Step step, char (&buf)[4]) {
  const uint8_t b = byteAt(value, i);
  if (step.out == step.in) return value.substr(i, step.in);
  buf[0] = '\\';
  if (step.out == 2) {
    buf[1] = shortEscape(b);
    return {buf, 2};
  }
  buf[1] = 'x';
  buf[2] = kHexDigits[b >> 4];
  buf[3] = kHexDigits[b & 0xF];
  return {buf, 4};
}

}  // namespace

size_t utf8SequenceLength(std::string_view s, size_t i) {
  const uint8_t b = byteAt(s, i);
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return inRange(s, i + 1, 0x80, 0xBF) ? 2 : 0;
  if (b >= 0xE0 && b <= 0xEF) {
    uint8_t lo = 0x80;
    uint8_t hi = 0xBF;
    if (b == 0xE0) lo = 0xA0;  // overlong
    if (b == 0xED) hi = 0x9F;  // UTF-16 surrogates
    return inRange(s, i + 1, lo, hi) && inRange(s, i + 2, 0x80, 0xBF) ? 3 : 0;
  }
  if (b >= 0xF0 && b <= 0xF4) {
    uint8_t lo = 0x80;
    uint8_t hi = 0xBF;
    if (b == 0xF0) lo = 0x90;  // overlong
    if (b == 0xF4) hi = 0x8F;  // above U+10FFFF
    return inRange(s, i + 1, lo, hi) && inRange(s, i + 2, 0x80, 0xBF) &&
                   inRange(s, i + 3, 0x80, 0xBF)
               ? 4
               : 0;
  }
  return 0;
}

char shortEscape(uint8_t b) {
  switch (b) {
    case '\n':
      return 'n';
    case '\r':
      return 'r';
    case '\t':
      return 't';
    case '\\':
      return '\\';
    case '"':
      return '"';
    case '$':
      return '$';
    case '`':
      return '`';
    default:
      return 0;
  }
}

bool needsHexEscape(uint8_t b) { return (b < 0x20 && shortEscape(b) == 0) || b == 0x7F; }

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

size_t escapedSize(std::string_view value) {
  size_t total = 0;
  for (size_t i = 0; i < value.size();) {
    const Step step = stepAt(value, i);
    total += step.out;
    i += step.in;
  }
  return total;
}

void appendEscaped(std::string& out, std::string_view value) {
  char buf[4];
  for (size_t i = 0; i < value.size();) {
    const Step step = stepAt(value, i);
    out.append(render(value, i, step, buf));
    i += step.in;
  }
}

size_t firstNonCanonical(std::string_view value, std::string_view escaped) {
  char buf[4];
  size_t pos = 0;
  for (size_t i = 0; i < value.size();) {
    const Step step = stepAt(value, i);
    const std::string_view piece = render(value, i, step, buf);
    for (size_t k = 0; k < piece.size(); ++k) {
      if (pos + k >= escaped.size() || escaped[pos + k] != piece[k]) return pos;
    }
    pos += piece.size();
    i += step.in;
  }
  return pos == escaped.size() ? std::string_view::npos : pos;
}

WipeOnExit::~WipeOnExit() { wipe(s_); }

}  // namespace plfm::secrets::internal
