#include "sink.h"

#include <algorithm>
#include <utility>

#include "plfm/core/strings.h"

namespace plfm::manifest {

void Sink::locate(const std::string& path, Position pos) {
  auto [it, inserted] = positions_.emplace(path, pos);
  if (!inserted && it->second.line == 0) it->second = pos;
}

Position Sink::find(std::string path) const {
  while (true) {
    auto it = positions_.find(path);
    if (it != positions_.end() && it->second.line > 0) return it->second;
    if (path.empty()) return {};
    // Strip the last component: "a.b[2].c" -> "a.b[2]" -> "a.b" -> "a" -> "".
    // Quoted keys may hold '.' or '[', so scan from the end outside quotes.
    size_t cut = 0;
    bool quoted = false;
    for (size_t i = path.size(); i-- > 0;) {
      const char c = path[i];
      if (c == '"' && (i == 0 || path[i - 1] != '\\')) quoted = !quoted;
      if (!quoted && (c == '.' || c == '[')) {
        cut = i;
        break;
      }
    }
    path.resize(cut);
  }
}

std::string Sink::shown(const std::string& path) const {
  for (const auto& [from, to] : aliases_) {
    if (path == from) return to;
    if (startsWith(path, from) && path.size() > from.size() && path[from.size()] == '.') {
      return to + path.substr(from.size());
    }
  }
  return path;
}

void Sink::report(const std::string& path, std::string message, std::string hint) {
  reportAt(find(path), path, std::move(message), std::move(hint));
}

void Sink::reportAt(Position pos, const std::string& path, std::string message, std::string hint) {
  Diagnostic d;
  d.file = file_;
  d.line = pos.line;
  d.column = pos.column;
  d.path = shown(path);
  d.message = std::move(message);
  d.hint = std::move(hint);
  out_.push_back(std::move(d));
}

std::vector<Diagnostic> Sink::take() {
  std::stable_sort(out_.begin(), out_.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::pair(a.line, a.column) < std::pair(b.line, b.column);
  });
  return std::move(out_);
}

std::string keyPath(std::string_view parent, std::string_view key) {
  bool bare = !key.empty();
  for (char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    bare = bare && ok;
  }
  std::string out(parent);
  if (!out.empty()) out += '.';
  if (bare) {
    out += key;
  } else {
    out += '"';
    out += jsonEscape(key);
    out += '"';
  }
  return out;
}

std::string indexPath(std::string_view parent, std::size_t i) {
  return std::string(parent) + "[" + std::to_string(i) + "]";
}

std::string didYouMean(std::string_view word, const std::vector<std::string_view>& candidates) {
  auto match = closestMatch(word, candidates);
  if (!match || *match == word) return "";
  return "did you mean `" + *match + "`?";
}

}  // namespace plfm::manifest
