// prescan(): a TOML 1.0 tokenizer that follows the grammar only as far as it
// must to know what is a key, a string, a bare value or structure. It runs
// before toml++ so that toml++ never sees text it handles badly:
//
// - Deep nesting. toml++ tables free themselves recursively, so dotted keys
//   (at most 32 dots per line) and arrays/inline tables (at most 32 deep)
//   are bounded.
// - Non-ASCII outside strings. toml++ 3.3's is_non_ascii_horizontal_whitespace
//   reaches __builtin_unreachable() (undefined behaviour) for some code
//   points, e.g. U+0465, and toml++ asks it about every code point it meets
//   outside strings (keys, bare values, between tokens) and about the first
//   one after a backslash in a multi-line basic string. TOML allows non-ASCII
//   only in strings and comments, so rejecting it elsewhere costs valid
//   manifests nothing.
//
// Where the text leaves the grammar, toml++ stops with a syntax error at or
// before that point; from there on the scanner is "lost" and conservative:
// every non-ASCII byte is rejected and every dot and bracket counts. Found
// by manifest_fuzz; the inputs are in test/corpus/crash_*.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "rules.h"
#include "toml_reader.h"

namespace plfm::manifest {
namespace {

bool isBareKeyChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}
bool isBlank(char c) { return c == ' ' || c == '\t' || c == '\r'; }
bool isAscii(char c) { return static_cast<unsigned char>(c) < 0x80; }

class Scanner {
 public:
  explicit Scanner(std::string_view text) : text_(text) {}

  PrescanResult run() {
    if (at("\xef\xbb\xbf")) i_ = lineStart_ = 3;  // a UTF-8 BOM, which toml++ skips
    while (i_ < text_.size() && result_.ok) {
      if (lost_) {
        lostStep();
      } else {
        step();
      }
    }
    return result_;
  }

 private:
  enum class State { kLineStart, kKey, kAfterKey, kValue, kAfterValue, kInlineOpen, kLineEnd };
  enum class KeyOf { kHeader, kKeyVal, kInline };
  enum class Ctx { kArray, kTable };

  static constexpr std::string_view kNonAscii = "a non-ASCII character outside a string or comment";

  void fail(std::string what) {
    result_.ok = false;
    result_.where = here();
    result_.offset = i_;
    result_.what = std::move(what);
  }

  // Columns count code points, as toml++'s do.
  Position here() const {
    int column = 1;
    for (size_t k = lineStart_; k < i_; ++k) {
      if ((static_cast<unsigned char>(text_[k]) & 0xC0) != 0x80) ++column;
    }
    return Position{line_, column};
  }

  bool at(std::string_view s) const { return text_.substr(i_, s.size()) == s; }

  void newline() {
    ++i_;
    ++line_;
    lineStart_ = i_;
    dots_ = 0;
  }

  void lose() {
    lost_ = true;
    rawDepth_ = static_cast<int>(stack_.size());
  }

  void countDot() {
    if (++dots_ > rules::kMaxDotsPerLine) {
      fail("keys nested too deeply: more than " + std::to_string(rules::kMaxDotsPerLine) +
           " dots on one line");
    }
  }

  void push(Ctx ctx) {
    if (static_cast<int>(stack_.size()) >= rules::kMaxBracketDepth) {
      fail("arrays and tables nested more than " + std::to_string(rules::kMaxBracketDepth) +
           " deep");
      return;
    }
    stack_.push_back(ctx);
    ++i_;
  }

  void pop() {
    stack_.pop_back();
    ++i_;
    state_ = State::kAfterValue;
  }

  bool inArray() const { return !stack_.empty() && stack_.back() == Ctx::kArray; }

  void skipComment() {
    while (i_ < text_.size() && text_[i_] != '\n') ++i_;
  }

  // After the text left the grammar: count everything, allow no non-ASCII.
  void lostStep() {
    const char c = text_[i_];
    if (c == '\n') {
      newline();
      return;
    }
    if (!isAscii(c)) return fail(std::string(kNonAscii));
    if (c == '.') countDot();
    if ((c == '[' || c == '{') && ++rawDepth_ > rules::kMaxBracketDepth) {
      return fail("arrays and tables nested more than " + std::to_string(rules::kMaxBracketDepth) +
                  " deep");
    }
    if ((c == ']' || c == '}') && rawDepth_ > 0) --rawDepth_;
    ++i_;
  }

  void step() {
    const char c = text_[i_];
    if (isBlank(c)) {
      ++i_;
      return;
    }
    if (!isAscii(c)) return fail(std::string(kNonAscii));
    switch (state_) {
      case State::kLineStart:
        return lineStart(c);
      case State::kKey:
        return key(c);
      case State::kAfterKey:
        return afterKey(c);
      case State::kValue:
        return value(c);
      case State::kAfterValue:
        return afterValue(c);
      case State::kInlineOpen:
        if (c == '}') return pop();
        keyOf_ = KeyOf::kInline;
        state_ = State::kKey;
        return;
      case State::kLineEnd:
        return lineEnd(c);
    }
  }

  void lineStart(char c) {
    if (c == '\n') return newline();
    if (c == '#') return skipComment();
    if (c == '[') {
      ++i_;
      arrayHeader_ = at("[");
      if (arrayHeader_) ++i_;
      keyOf_ = KeyOf::kHeader;
      state_ = State::kKey;
      return;
    }
    keyOf_ = KeyOf::kKeyVal;
    state_ = State::kKey;
  }

  void key(char c) {
    if (isBareKeyChar(c)) {
      while (i_ < text_.size() && isBareKeyChar(text_[i_])) ++i_;
      state_ = State::kAfterKey;
      return;
    }
    if ((c == '"' || c == '\'') && !at(c == '"' ? R"(""")" : "'''")) {
      skipString(c);
      state_ = State::kAfterKey;
      return;
    }
    lose();  // includes multi-line strings, which keys may not be
  }

  void afterKey(char c) {
    if (c == '.') {
      countDot();
      ++i_;
      state_ = State::kKey;
      return;
    }
    if (keyOf_ == KeyOf::kHeader && c == ']') {
      ++i_;
      if (arrayHeader_) {
        if (!at("]")) return lose();
        ++i_;
      }
      state_ = State::kLineEnd;
      return;
    }
    if (keyOf_ != KeyOf::kHeader && c == '=') {
      ++i_;
      state_ = State::kValue;
      return;
    }
    lose();
  }

  void value(char c) {
    if (inArray()) {
      if (c == '\n') return newline();
      if (c == '#') return skipComment();
      if (c == ']') return pop();  // an empty array, or after a trailing comma
    }
    if (c == '"' || c == '\'') {
      skipString(c);
      state_ = State::kAfterValue;
      return;
    }
    if (c == '[') return push(Ctx::kArray);
    if (c == '{') {
      push(Ctx::kTable);
      state_ = State::kInlineOpen;
      return;
    }
    if (c == '\n' || c == '#' || c == ',' || c == ']' || c == '}' || c == '=') return lose();
    bareValue();
  }

  // A number, boolean, date or time: toml++ reads on to a value terminator.
  void bareValue() {
    const size_t start = i_;
    while (i_ < text_.size()) {
      const char c = text_[i_];
      if (c == ' ' && i_ - start == 10 && text_[start + 4] == '-' && i_ + 1 < text_.size() &&
          text_[i_ + 1] >= '0' && text_[i_ + 1] <= '9') {
        ++i_;  // "1979-05-27 07:32:00": a date-time may use a space for 'T'
        continue;
      }
      if (isBlank(c) || c == '\n' || c == ',' || c == ']' || c == '}' || c == '#') break;
      if (!isAscii(c)) return fail(std::string(kNonAscii));
      ++i_;
    }
    state_ = State::kAfterValue;
  }

  void afterValue(char c) {
    if (stack_.empty()) return lineEnd(c);
    if (inArray()) {
      if (c == '\n') return newline();
      if (c == '#') return skipComment();
      if (c == ',') {
        ++i_;
        state_ = State::kValue;
        return;
      }
      if (c == ']') return pop();
      return lose();
    }
    if (c == ',') {
      ++i_;
      keyOf_ = KeyOf::kInline;
      state_ = State::kKey;
      return;
    }
    if (c == '}') return pop();
    lose();
  }

  void lineEnd(char c) {
    if (c == '#') return skipComment();
    if (c == '\n') {
      newline();
      state_ = State::kLineStart;
      return;
    }
    lose();
  }

  // Skips a basic ("), literal ('), or multi-line (""" ''') string starting
  // at i_. Unterminated strings end at the end of the line (single-line) or
  // of the text (multi-line), as toml++ gives up there too. Fails on a
  // non-ASCII character after a backslash in a multi-line basic string.
  void skipString(char quote) {
    const bool basic = quote == '"';
    const std::string_view triple = basic ? R"(""")" : "'''";
    if (at(triple)) {
      i_ += 3;
      while (i_ < text_.size()) {
        if (text_[i_] == '\n') {
          ++i_;
          ++line_;
          lineStart_ = i_;
          continue;
        }
        if (basic && text_[i_] == '\\') {
          ++i_;
          const size_t escaped = i_;
          while (i_ < text_.size() && (isBlank(text_[i_]) || text_[i_] == '\n')) {
            if (text_[i_] == '\n') {
              ++line_;
              lineStart_ = i_ + 1;
            }
            ++i_;
          }
          if (i_ < text_.size() && !isAscii(text_[i_])) {
            return fail(
                "a non-ASCII character right after a backslash (or after the whitespace a "
                "line-ending backslash trims) is not supported");
          }
          // After a line-ending backslash, what follows is content again
          // (maybe the closing quotes). Otherwise skip the one escaped
          // character, so that \" does not close the string.
          if (i_ == escaped && i_ < text_.size()) ++i_;
          continue;
        }
        if (at(triple)) {
          i_ += 3;
          // Up to two more quotes belong to the content: """a""""" is a"".
          for (int extra = 0; extra < 2 && i_ < text_.size() && text_[i_] == quote; ++extra) ++i_;
          return;
        }
        ++i_;
      }
      return;
    }
    ++i_;
    while (i_ < text_.size() && text_[i_] != quote && text_[i_] != '\n') {
      if (basic && text_[i_] == '\\' && i_ + 1 < text_.size() && text_[i_ + 1] != '\n') ++i_;
      ++i_;
    }
    if (i_ < text_.size() && text_[i_] == quote) ++i_;
  }

  std::string_view text_;
  PrescanResult result_;
  size_t i_ = 0;
  size_t lineStart_ = 0;
  int line_ = 1;
  int dots_ = 0;
  State state_ = State::kLineStart;
  KeyOf keyOf_ = KeyOf::kKeyVal;
  bool arrayHeader_ = false;
  std::vector<Ctx> stack_;
  bool lost_ = false;
  int rawDepth_ = 0;
};

}  // namespace

PrescanResult prescan(std::string_view text) { return Scanner(text).run(); }

}  // namespace plfm::manifest
