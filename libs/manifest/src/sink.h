// Sink collects the diagnostics of one manifest. Readers record where each
// field path sits in the source (locate) and which values were unusable
// (markBad); the rules then report by path alone, and the sink finds the
// closest known position, so a missing key points at its table.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/manifest/manifest.h"

namespace plfm::manifest {

struct Position {
  int line = 0;
  int column = 0;
};

class Sink {
 public:
  explicit Sink(std::string file) : file_(std::move(file)) {}

  // Records that `path` appears in the source, at `pos` (may be unknown).
  void locate(const std::string& path, Position pos);
  [[nodiscard]] bool present(const std::string& path) const {
    return all_present_ || positions_.count(path) != 0;
  }
  // For manifests built in code or read from JSON, where no field is
  // optional: a zero or empty value was given, not left out.
  void assumeAllPresent() { all_present_ = true; }
  // The line of `path` or of its closest located parent; 0 when unknown.
  [[nodiscard]] int lineOf(const std::string& path) const { return find(path).line; }

  // A value that was already reported (wrong type, unparsable); rules skip it
  // so that one mistake gives one diagnostic.
  void markBad(const std::string& path) { bad_.insert(path); }
  [[nodiscard]] bool bad(const std::string& path) const { return bad_.count(path) != 0; }

  // Shows paths under `from` as under `to` in messages ("checks.web" written
  // as a bare [checks] table is reported as "checks").
  void alias(std::string from, std::string to) { aliases_[std::move(from)] = std::move(to); }

  void report(const std::string& path, std::string message, std::string hint = "");
  void reportAt(Position pos, const std::string& path, std::string message, std::string hint = "");

  [[nodiscard]] bool empty() const { return out_.empty(); }
  // Every diagnostic, in source order (unlocated ones first).
  [[nodiscard]] std::vector<Diagnostic> take();

 private:
  [[nodiscard]] Position find(std::string path) const;
  [[nodiscard]] std::string shown(const std::string& path) const;

  std::string file_;
  std::map<std::string, Position> positions_;
  std::set<std::string> bad_;
  std::map<std::string, std::string> aliases_;
  std::vector<Diagnostic> out_;
  bool all_present_ = false;
};

// "parent.key", quoting `key` TOML-style unless it is a bare key.
[[nodiscard]] std::string keyPath(std::string_view parent, std::string_view key);
// "parent[i]".
[[nodiscard]] std::string indexPath(std::string_view parent, std::size_t i);
// "did you mean `x`?" for the candidate closest to `word`, or "".
[[nodiscard]] std::string didYouMean(std::string_view word,
                                     const std::vector<std::string_view>& candidates);

}  // namespace plfm::manifest
