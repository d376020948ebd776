// See volume_reports.h.
#include "volume_reports.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>
#include <optional>
#include <vector>

#include "api.h"
#include "plfm/core/hex.h"

namespace plfm::cp {
namespace {

Result<int64_t> requireInt(const json::Json& body, std::string_view field, int64_t lo, int64_t hi) {
  auto it = body.find(field);
  if (it == body.end() || !it->is_number_integer() || it->get<int64_t>() < lo ||
      it->get<int64_t>() > hi) {
    return invalidField(field,
                        "must be an integer " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  return it->get<int64_t>();
}

Result<bool> requireBool(const json::Json& body, std::string_view field) {
  auto it = body.find(field);
  if (it == body.end() || !it->is_boolean()) return invalidField(field, "must be true or false");
  return it->get<bool>();
}

// One of `allowed`, named in the error.
Result<std::string> requireOneOf(const json::Json& body, std::string_view field,
                                 std::initializer_list<std::string_view> allowed) {
  PLFM_ASSIGN_OR_RETURN(auto v, requireString(body, field));
  if (std::find(allowed.begin(), allowed.end(), v) != allowed.end()) return v;
  std::string names;
  for (auto a : allowed) names += (names.empty() ? "" : ", ") + std::string(a);
  return invalidField(field, "must be one of " + names);
}

Result<std::string> requireHex64(const json::Json& body, std::string_view field) {
  PLFM_ASSIGN_OR_RETURN(auto v, requireString(body, field));
  if (!isLowerHex64(v)) return invalidField(field, "must be 64 lowercase hex characters");
  return v;
}

// The agent's words: at most 512 printable ASCII bytes (spaces included), `fallback` when
// empty or absent.
Result<std::string> reasonOf(const json::Json& body, std::string_view fallback) {
  PLFM_ASSIGN_OR_RETURN(auto reason, optionalString(body, "reason"));
  std::string r = reason.value_or("");
  if (!isVolumeReason(r)) return invalidField("reason", "must be at most 512 printable characters");
  if (r.empty()) r = fallback;
  return r;
}

// The fields of each snapshot state; any other is refused, so a report says one thing.
const std::map<std::string, std::vector<std::string_view>, std::less<>>& snapshotFields() {
  static const std::map<std::string, std::vector<std::string_view>, std::less<>> m = {
      {"taken",
       {"state", "origin", "method", "consistent", "freeze_ms", "size_bytes", "sha256",
        "taken_at"}},
      {"failed", {"state", "reason"}},
      {"backed_up", {"state", "backup_id", "bytes_added", "duration_ms"}},
      {"expired", {"state", "local", "backup"}},
  };
  return m;
}

Result<void> onlyFieldsOf(const json::Json& body, std::string_view what,
                          const std::vector<std::string_view>& allowed) {
  for (const auto& [k, unused] : body.items()) {
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      return invalidField(k, "is not part of " + std::string(what));
    }
  }
  return ok();
}

}  // namespace

bool isRfc3339Utc(std::string_view s) {
  auto num = [&](size_t at, size_t len, int lo, int hi) -> std::optional<int> {
    int v = 0;
    if (at + len > s.size()) return std::nullopt;
    for (size_t i = at; i < at + len; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
    }
    std::from_chars(s.data() + at, s.data() + at + len, v);
    if (v < lo || v > hi) return std::nullopt;
    return v;
  };
  if (s.size() < 20 || s.size() > 30 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
      s[13] != ':' || s[16] != ':' || s.back() != 'Z') {
    return false;
  }
  auto y = num(0, 4, 2000, 9999);
  auto m = num(5, 2, 1, 12);
  auto d = num(8, 2, 1, 31);
  if (!y || !m || !d || !num(11, 2, 0, 23) || !num(14, 2, 0, 59) || !num(17, 2, 0, 59)) {
    return false;
  }
  const std::chrono::year_month_day date{std::chrono::year{*y},
                                         std::chrono::month{static_cast<unsigned>(*m)},
                                         std::chrono::day{static_cast<unsigned>(*d)}};
  if (!date.ok()) return false;
  const std::string_view rest = s.substr(19, s.size() - 20);
  if (rest.empty()) return true;
  return rest.size() >= 2 && rest.size() <= 10 && rest[0] == '.' &&
         std::all_of(rest.begin() + 1, rest.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool isVolumeReason(std::string_view s) {
  return s.size() <= kMaxVolumeReason &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= 32 && c < 127; });
}

Result<VolumeReport> parseVolumeReport(const json::Json& body) {
  VolumeReport r;
  PLFM_ASSIGN_OR_RETURN(r.state, requireOneOf(body, "state", {"ready", "failed", "deleted"}));
  if (r.state == "ready" || body.contains("size_bytes")) {
    PLFM_ASSIGN_OR_RETURN(r.size_bytes, requireInt(body, "size_bytes", 0, kMaxVolumeBytes));
  }
  PLFM_ASSIGN_OR_RETURN(r.reason, reasonOf(body, ""));
  if (!r.reason.empty() && r.state != "failed") {
    return invalidField("reason", "is only for state 'failed'");
  }
  if (r.state == "failed" && r.reason.empty()) r.reason = "the node could not create the volume";
  return r;
}

Result<SnapshotReport> parseSnapshotReport(const json::Json& body) {
  SnapshotReport r;
  PLFM_ASSIGN_OR_RETURN(r.state,
                        requireOneOf(body, "state", {"taken", "failed", "backed_up", "expired"}));
  PLFM_TRY(onlyFieldsOf(body, "a '" + r.state + "' report", snapshotFields().at(r.state)));
  if (r.state == "taken") {
    PLFM_ASSIGN_OR_RETURN(r.origin, requireOneOf(body, "origin", {"api", "schedule"}));
    PLFM_ASSIGN_OR_RETURN(r.method,
                          requireOneOf(body, "method", {"reflink", "blockdev-backup", "copy"}));
    PLFM_ASSIGN_OR_RETURN(r.consistent, requireBool(body, "consistent"));
    PLFM_ASSIGN_OR_RETURN(r.freeze_ms, requireInt(body, "freeze_ms", -1, kMaxVolumeOpMs));
    PLFM_ASSIGN_OR_RETURN(r.size_bytes, requireInt(body, "size_bytes", 0, kMaxVolumeBytes));
    PLFM_ASSIGN_OR_RETURN(r.sha256, requireHex64(body, "sha256"));
    PLFM_ASSIGN_OR_RETURN(r.taken_at, requireString(body, "taken_at"));
    if (!isRfc3339Utc(r.taken_at)) {
      return invalidField("taken_at", "must be RFC 3339 UTC, e.g. 2026-12-06T10:00:00Z");
    }
  } else if (r.state == "failed") {
    PLFM_ASSIGN_OR_RETURN(r.reason, reasonOf(body, "the node could not take the snapshot"));
  } else if (r.state == "backed_up") {
    PLFM_ASSIGN_OR_RETURN(r.backup_id, requireHex64(body, "backup_id"));
    PLFM_ASSIGN_OR_RETURN(r.bytes_added, requireInt(body, "bytes_added", 0, kMaxVolumeBytes));
    PLFM_ASSIGN_OR_RETURN(r.duration_ms, requireInt(body, "duration_ms", 0, kMaxVolumeOpMs));
  } else {
    PLFM_ASSIGN_OR_RETURN(r.local, requireBool(body, "local"));
    PLFM_ASSIGN_OR_RETURN(r.backup, requireBool(body, "backup"));
  }
  return r;
}

Result<OpReport> parseOpReport(const json::Json& body) {
  OpReport r;
  PLFM_ASSIGN_OR_RETURN(r.kind, requireOneOf(body, "kind", {"restore", "verify"}));
  PLFM_TRY(onlyFieldsOf(body, "a '" + r.kind + "' report",
                        r.kind == "restore"
                            ? std::vector<std::string_view>{"kind", "volume_id", "snapshot_id",
                                                            "ok", "reason", "sha256"}
                            : std::vector<std::string_view>{"kind", "volume_id", "snapshot_id",
                                                            "ok", "reason", "duration_ms"}));
  PLFM_ASSIGN_OR_RETURN(auto volume, bodyId<VolumeId>(body, "volume_id"));
  r.volume_id = volume.str();
  PLFM_ASSIGN_OR_RETURN(auto snapshot, bodyId<SnapshotId>(body, "snapshot_id"));
  r.snapshot_id = snapshot.str();
  PLFM_ASSIGN_OR_RETURN(r.ok, requireBool(body, "ok"));
  PLFM_ASSIGN_OR_RETURN(r.reason,
                        reasonOf(body, r.ok ? "" : "the node could not " + r.kind + " it"));
  if (r.kind == "restore") {
    // A failed restore may have no file to hash.
    if (r.ok || body.contains("sha256")) {
      PLFM_ASSIGN_OR_RETURN(r.sha256, requireHex64(body, "sha256"));
    }
  } else {
    PLFM_ASSIGN_OR_RETURN(r.duration_ms, requireInt(body, "duration_ms", 0, kMaxVolumeOpMs));
  }
  return r;
}

}  // namespace plfm::cp
