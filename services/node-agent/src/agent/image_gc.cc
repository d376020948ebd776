#include "agent/image_gc.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <cctype>
#include <limits>

#include "plfm/core/id.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"

namespace plfm::agent {
namespace {

// "ENV_ID DIGEST [DIGEST...]", each part held to its grammar.
bool parseLine(std::string_view line, std::string& env, std::vector<image::Digest>& digests) {
  std::vector<std::string_view> parts;
  while (!line.empty()) {
    const size_t sp = line.find(' ');
    parts.push_back(line.substr(0, sp));
    line = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
  }
  if (parts.size() < 2 || !EnvId::parse(parts[0])) return false;
  env = std::string(parts[0]);
  for (size_t i = 1; i < parts.size(); ++i) {
    auto d = image::Digest::parse(parts[i]);
    if (!d) return false;
    digests.push_back(*d);
  }
  return true;
}

}  // namespace

ImageHistory::ImageHistory(std::string path) : path_(std::move(path)) {
  auto text = readFile(path_);
  if (!text) return;
  for (auto line : splitLines(*text)) {
    if (trim(line).empty()) continue;
    std::string env;
    std::vector<image::Digest> digests;
    if (!parseLine(trim(line), env, digests)) {
      log::warn("dropping an unreadable line of the image history", {{"path", path_}});
      continue;
    }
    envs_[env] = std::move(digests);
  }
}

void ImageHistory::observe(const std::map<std::string, std::set<image::Digest>>& plan) {
  std::lock_guard lock(mu_);
  std::map<std::string, std::vector<image::Digest>> next;
  for (const auto& [env, used] : plan) {
    const auto old = envs_.find(env);
    const std::vector<image::Digest> before =
        old == envs_.end() ? std::vector<image::Digest>{} : old->second;
    std::vector<image::Digest> list;
    // New to this env: the newest (a deploy or a rollback in progress).
    for (const auto& d : used) {
      if (std::find(before.begin(), before.end(), d) == before.end()) list.push_back(d);
    }
    for (const auto& d : before) list.push_back(d);
    // Keep kKeepPerEnv, and every digest the plan still uses.
    std::vector<image::Digest> kept;
    for (const auto& d : list) {
      if (kept.size() < kKeepPerEnv || used.count(d) != 0) kept.push_back(d);
    }
    next[env] = std::move(kept);
  }
  if (next == envs_) return;
  envs_ = std::move(next);
  saveLocked();
}

std::set<image::Digest> ImageHistory::keep() const {
  std::lock_guard lock(mu_);
  std::set<image::Digest> out;
  for (const auto& [env, digests] : envs_) out.insert(digests.begin(), digests.end());
  return out;
}

std::map<std::string, std::vector<image::Digest>> ImageHistory::snapshot() const {
  std::lock_guard lock(mu_);
  return envs_;
}

void ImageHistory::saveLocked() const {
  std::string text;
  for (const auto& [env, digests] : envs_) {
    text += env;
    for (const auto& d : digests) text += " " + d.str();
    text += "\n";
  }
  if (auto r = writeFileAtomic(path_, text); !r) {
    log::warn("saving the image history failed", {{"error", r.error().toString()}});
  }
}

Result<uint64_t> parseImageBudget(std::string_view text, uint64_t filesystem_bytes) {
  const auto bad = [&] {
    return Error(errc::kInvalidArgument,
                 "expected a size like \"20GiB\" or \"512MiB\", or a share of the cache's "
                 "filesystem like \"50%\"")
        .with("field", "image-cache-budget");
  };
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits])) != 0) {
    ++digits;
  }
  if (digits == 0 || digits > 18) return bad();
  uint64_t n = 0;
  for (size_t i = 0; i < digits; ++i) n = n * 10 + static_cast<uint64_t>(text[i] - '0');
  const std::string_view unit = text.substr(digits);
  if (unit == "%") {
    if (n < 1 || n > 100) return bad();
    if (filesystem_bytes == 0) {
      return Error(errc::kFailedPrecondition,
                   "the size of the image cache's filesystem is unknown: give "
                   "--image-cache-budget as a size");
    }
    return filesystem_bytes / 100 * n;
  }
  static const std::pair<std::string_view, int> kUnits[] = {
      {"", 0},    {"K", 1},   {"M", 2},   {"G", 3},   {"T", 4},
      {"KiB", 1}, {"MiB", 2}, {"GiB", 3}, {"TiB", 4},
  };
  for (const auto& [name, shift] : kUnits) {
    if (unit != name) continue;
    const int bits = 10 * shift;
    if (bits > 0 && n > (std::numeric_limits<uint64_t>::max() >> bits)) return bad();
    return n << bits;
  }
  return bad();
}

uint64_t filesystemBytes(const std::string& dir) {
  struct statvfs st {};
  if (::statvfs(dir.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.f_blocks) * st.f_frsize;
}

}  // namespace plfm::agent
