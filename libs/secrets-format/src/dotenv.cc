#include "plfm/secrets/dotenv.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "escape.h"

namespace plfm::secrets {
namespace {

bool isBlank(char c) { return c == ' ' || c == '\t'; }

int hexValueAnyCase(char c) {
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return internal::hexValue(c);
}

class DotenvParser {
 public:
  explicit DotenvParser(std::string_view in) : in_(in) {}
  DotenvParser(const DotenvParser&) = delete;
  DotenvParser& operator=(const DotenvParser&) = delete;
  ~DotenvParser() { wipe(out_); }

  Result<SecretMap> run() {
    if (in_.size() > kMaxFileBytes) {
      return Error{ErrorCode::kLimitExceeded, "the file is " + std::to_string(in_.size()) +
                                                  " bytes; the limit is " +
                                                  std::to_string(kMaxFileBytes)};
    }
    if (in_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = line_start_ = 3;  // UTF-8 byte order mark
    while (true) {
      skipBlanks();
      if (pos_ == in_.size()) break;
      const char c = in_[pos_];
      if (c == '#') {
        skipToEndOfLine();
      } else if (c != '\n' && c != '\r') {
        auto entry = parseEntry();
        if (!entry) return entry.error();
      }
      auto eol = endOfLine();
      if (!eol) return eol.error();
      if (pos_ == in_.size()) break;
    }
    return std::exchange(out_, {});
  }

 private:
  [[nodiscard]] Error fail(ErrorCode code, size_t at, std::string message) const {
    return Error{code, std::move(message), line_, at - line_start_ + 1};
  }
  [[nodiscard]] bool at(char c) const { return pos_ < in_.size() && in_[pos_] == c; }
  void skipBlanks() {
    while (pos_ < in_.size() && isBlank(in_[pos_])) ++pos_;
  }
  void skipToEndOfLine() {
    while (pos_ < in_.size() && in_[pos_] != '\n') ++pos_;
  }
  // Called at a byte that must end the line: consumes "\n", "\r\n" or the
  // end of input. A lone '\r' is whitespace, as in most dotenv tools.
  Result<void> endOfLine() {
    while (at('\r')) ++pos_;
    if (pos_ == in_.size()) return {};
    if (!at('\n')) {
      return fail(ErrorCode::kSyntax, pos_, "unexpected text after the closing quote");
    }
    newline(pos_);
    ++pos_;
    return {};
  }
  void newline(size_t lf) {
    ++line_;
    line_start_ = lf + 1;
  }

  Result<void> parseEntry() {
    if (in_.substr(pos_, 6) == "export" && pos_ + 6 < in_.size() && isBlank(in_[pos_ + 6])) {
      pos_ += 6;
      skipBlanks();
    }
    const size_t key_start = pos_;
    while (pos_ < in_.size() && in_[pos_] != '=' && !isBlank(in_[pos_]) && in_[pos_] != '\n' &&
           in_[pos_] != '\r') {
      ++pos_;
    }
    const std::string_view key = in_.substr(key_start, pos_ - key_start);
    skipBlanks();
    // Neither the key nor the line is quoted in errors: a line without '='
    // may well be part of a secret pasted on its own.
    if (!at('=')) return fail(ErrorCode::kSyntax, pos_, "expected KEY=VALUE");
    auto checked = checkKey(key, key_start);
    if (!checked) return checked;
    ++pos_;
    const size_t before_blanks = pos_;
    skipBlanks();
    std::string value;
    internal::WipeOnExit wipe_value(value);
    const size_t value_line = line_;
    const size_t value_column = pos_ - line_start_ + 1;
    Result<void> parsed;
    if (at('"')) {
      parsed = parseDoubleQuoted(value);
    } else if (at('\'')) {
      parsed = parseSingleQuoted(value);
    } else {
      parseUnquoted(value, pos_ > before_blanks);
    }
    if (!parsed) return parsed;
    if (value.size() > kMaxValueBytes) {
      return Error{ErrorCode::kLimitExceeded,
                   "the value of " + std::string(key) + " is longer than " +
                       std::to_string(kMaxValueBytes) + " bytes",
                   value_line, value_column};
    }
    if (out_.size() == kMaxKeys) {
      return Error{ErrorCode::kLimitExceeded, "more than " + std::to_string(kMaxKeys) + " keys",
                   value_line, key_start - line_start_ + 1};
    }
    first_line_.emplace(key, value_line);
    out_.emplace(key, std::move(value));
    skipBlanks();
    if (at('#')) skipToEndOfLine();
    return {};
  }

  Result<void> checkKey(std::string_view key, size_t key_start) {
    if (key.empty()) return fail(ErrorCode::kSyntax, key_start, "expected a key before '='");
    if (key.size() > kMaxKeyBytes) {
      return fail(ErrorCode::kLimitExceeded, key_start + kMaxKeyBytes,
                  "key longer than " + std::to_string(kMaxKeyBytes) + " bytes");
    }
    if (!validKey(key)) {
      const bool lower =
          std::any_of(key.begin(), key.end(), [](char c) { return c >= 'a' && c <= 'z'; });
      size_t bad = 0;
      if (internal::isKeyStart(key[0])) {
        while (bad < key.size() && internal::isKeyChar(key[bad])) ++bad;
      }
      return fail(ErrorCode::kInvalidKey, key_start + bad,
                  std::string(lower ? "keys are upper case; " : "invalid key; ") +
                      "keys match [A-Z_][A-Z0-9_]*");
    }
    auto first = first_line_.find(key);
    if (first != first_line_.end()) {
      return fail(ErrorCode::kDuplicateKey, key_start,
                  "duplicate key " + std::string(key) + " (first on line " +
                      std::to_string(first->second) + ")");
    }
    return {};
  }

  // Reserves room for the value up to `end` so that appending does not
  // reallocate (and leave a copy behind) before the limit check.
  void reserveUpTo(std::string& value, size_t end) const {
    value.reserve(std::min(end - pos_, kMaxValueBytes + 4));
  }

  Result<void> parseDoubleQuoted(std::string& value) {
    const size_t open = pos_;
    const size_t open_line = line_;
    const size_t open_column = open - line_start_ + 1;
    size_t end = pos_ + 1;
    while (end < in_.size() && in_[end] != '"') end += in_[end] == '\\' ? 2 : 1;
    ++pos_;
    reserveUpTo(value, std::min(end, in_.size()));
    while (true) {
      if (pos_ >= in_.size()) return unterminated(open_line, open_column, "double");
      const char c = in_[pos_];
      if (c == '"') break;
      if (c == '\\' && pos_ + 1 < in_.size()) {
        pos_ += decodeEscape(value);
        continue;
      }
      appendRaw(value, c);
      ++pos_;
      if (value.size() > kMaxValueBytes) break;  // reported by the caller
    }
    ++pos_;
    return {};
  }

  // Decodes the escape at pos_ (a backslash) into `value`; returns how many
  // bytes it took. An unknown escape keeps its backslash, as python-dotenv
  // and docker compose do.
  size_t decodeEscape(std::string& value) {
    const char e = in_[pos_ + 1];
    const char decoded = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : 0;
    if (decoded != 0) {
      value.push_back(decoded);
      return 2;
    }
    if (e == '\\' || e == '"' || e == '$' || e == '`') {
      value.push_back(e);
      return 2;
    }
    if (e == 'x' && pos_ + 3 < in_.size()) {
      const int hi = hexValueAnyCase(in_[pos_ + 2]);
      const int lo = hexValueAnyCase(in_[pos_ + 3]);
      if (hi >= 0 && lo >= 0) {
        value.push_back(static_cast<char>(hi * 16 + lo));
        return 4;
      }
    }
    value.push_back('\\');
    return 1;
  }

  // Appends a raw byte of a quoted value; CRLF inside the value becomes LF.
  void appendRaw(std::string& value, char c) {
    if (c == '\r' && pos_ + 1 < in_.size() && in_[pos_ + 1] == '\n') return;
    if (c == '\n') newline(pos_);
    value.push_back(c);
  }

  Result<void> parseSingleQuoted(std::string& value) {
    const size_t open_line = line_;
    const size_t open_column = pos_ - line_start_ + 1;
    const size_t end = in_.find('\'', pos_ + 1);
    if (end == std::string_view::npos) return unterminated(open_line, open_column, "single");
    ++pos_;
    reserveUpTo(value, end);
    for (; pos_ < end; ++pos_) {
      appendRaw(value, in_[pos_]);
      if (value.size() > kMaxValueBytes) {
        pos_ = end;
        break;
      }
    }
    ++pos_;
    return {};
  }

  [[nodiscard]] Error unterminated(size_t line, size_t column, std::string_view kind) const {
    return Error{ErrorCode::kSyntax,
                 "unterminated " + std::string(kind) + "-quoted value (the quote opened here)",
                 line, column};
  }

  // An unquoted value runs to the end of the line; " #" starts a comment;
  // surrounding blanks are dropped.
  void parseUnquoted(std::string& value, bool after_blank) {
    const size_t start = pos_;
    size_t end = start;
    while (end < in_.size() && in_[end] != '\n') {
      if (in_[end] == '#' && (after_blank || (end > start && isBlank(in_[end - 1])))) break;
      ++end;
    }
    size_t last = end;
    while (last > start && (isBlank(in_[last - 1]) || in_[last - 1] == '\r')) --last;
    value.assign(in_.substr(start, std::min(last - start, kMaxValueBytes + 1)));
    pos_ = end;
  }

  std::string_view in_;
  size_t pos_ = 0;
  size_t line_ = 1;
  size_t line_start_ = 0;
  SecretMap out_;
  std::map<std::string, size_t, std::less<>> first_line_;
};

}  // namespace

Result<SecretMap> parseDotenv(std::string_view text) {
  DotenvParser parser(text);
  return parser.run();
}

}  // namespace plfm::secrets
