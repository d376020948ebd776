#include "log_relay.h"

#include <algorithm>
#include <cctype>

#include "api.h"
#include "plfm/core/strings.h"

namespace plfm::cp {
namespace {

Error badQuery(std::string_view field, const std::string& why) {
  return Error(apierr::kInvalidQuery, "query parameter '" + std::string(field) + "' " + why)
      .with("field", std::string(field));
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool validCursorKey(std::string_view id) {
  return !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

}  // namespace

bool validCursorTs(std::string_view ts) {
  constexpr std::string_view kForm = "dddd-dd-ddTdd:dd:dd.ddddddZ";
  if (ts.size() != kForm.size()) return false;
  for (size_t i = 0; i < ts.size(); ++i) {
    const bool ok =
        kForm[i] == 'd' ? std::isdigit(static_cast<unsigned char>(ts[i])) != 0 : ts[i] == kForm[i];
    if (!ok) return false;
  }
  return true;
}

std::string encodeCursor(const RelayCursor& cursor) {
  json::Json j = json::Json::object();
  for (const auto& [id, c] : cursor) j[id] = json::Json::array({c.ts, c.skip});
  return hexEncode(json::dump(j));
}

Result<RelayCursor> decodeCursor(std::string_view text) {
  RelayCursor out;
  if (text.empty()) return out;
  const auto bad = [] { return badQuery("cursor", "is not a cursor this API returned"); };
  if (text.size() % 2 != 0 || text.size() > size_t{64} * 1024) return bad();
  std::string raw;
  raw.reserve(text.size() / 2);
  for (size_t i = 0; i < text.size(); i += 2) {
    const int hi = hexValue(text[i]);
    const int lo = hexValue(text[i + 1]);
    if (hi < 0 || lo < 0) return bad();
    raw.push_back(static_cast<char>(hi * 16 + lo));
  }
  auto j = json::parse(raw);
  if (!j || !j->is_object()) return bad();
  for (const auto& [id, v] : j->items()) {
    if (!validCursorKey(id) || !v.is_array() || v.size() != 2 || !v[0].is_string() ||
        !v[1].is_number_integer() || v[1].get<int64_t>() < 0 ||
        v[1].get<int64_t>() > 1'000'000'000) {
      return bad();
    }
    const auto& ts = v[0].get_ref<const std::string&>();
    if (!ts.empty() && !validCursorTs(ts)) return bad();
    out[id] = InstanceCursor{v[0].get<std::string>(), v[1].get<int64_t>()};
  }
  return out;
}

std::vector<RelayLine> mergeLogPages(const std::vector<InstancePage>& pages, size_t limit,
                                     bool tail, RelayCursor& cursor) {
  std::vector<RelayLine> all;
  for (const auto& p : pages) {
    int64_t seq = 0;
    for (const auto& j : p.lines) {
      RelayLine l;
      l.ts = j.value("ts", "");
      l.instance_id = p.instance_id;
      l.process_type = p.process_type;
      l.stream = j.value("stream", "");
      l.line = j.value("line", "");
      l.seq = seq++;
      all.push_back(std::move(l));
    }
  }
  std::sort(all.begin(), all.end(), [](const RelayLine& a, const RelayLine& b) {
    return std::tie(a.ts, a.instance_id, a.seq) < std::tie(b.ts, b.instance_id, b.seq);
  });
  if (all.size() > limit) {
    if (tail) {
      all.erase(all.begin(), all.end() - static_cast<std::ptrdiff_t>(limit));
    } else {
      all.resize(limit);
    }
  }
  // Per instance: how many of its lines, in its own order, were delivered
  // without a gap (only a gap-free prefix can be resumed after).
  std::map<std::string, std::vector<bool>> delivered;
  for (const auto& p : pages) delivered[p.instance_id].assign(p.lines.size(), false);
  for (const auto& l : all) delivered[l.instance_id][static_cast<size_t>(l.seq)] = true;
  for (const auto& p : pages) {
    const auto& d = delivered[p.instance_id];
    if (tail || std::all_of(d.begin(), d.end(), [](bool b) { return b; })) {
      cursor[p.instance_id] = p.next;
      continue;
    }
    InstanceCursor c = p.start;
    for (size_t i = 0; i < d.size() && d[i]; ++i) {
      const std::string ts = p.lines[i].value("ts", "");
      if (ts == c.ts) {
        ++c.skip;
      } else {
        c = InstanceCursor{ts, 1};
      }
    }
    cursor[p.instance_id] = c;
  }
  return all;
}

json::Json relayLineJson(const RelayLine& l) {
  return {{"ts", l.ts},
          {"instance_id", l.instance_id},
          {"process_type", l.process_type},
          {"stream", l.stream},
          {"line", l.line}};
}

Result<std::string> parseSince(std::string_view since, Clock::WallTime now) {
  if (since.empty()) return std::string();
  const char unit = since.back();
  const std::string_view digits = since.substr(0, since.size() - 1);
  const bool is_duration =
      !digits.empty() && digits.size() <= 9 &&
      std::all_of(digits.begin(), digits.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }) &&
      (unit == 's' || unit == 'm' || unit == 'h' || unit == 'd');
  if (is_duration) {
    int64_t n = std::stoll(std::string(digits));
    const int64_t mult = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : 86400;
    return toRfc3339(now - std::chrono::seconds(n * mult));
  }
  // "YYYY-MM-DDTHH:MM:SS[.f]Z": normalized to microseconds so it compares
  // as a string with the agent's timestamps.
  const auto bad = [] {
    return badQuery("since", "must be a duration (30s, 10m, 2h, 1d) or a UTC time like " +
                                 std::string("2026-12-03T06:30:00Z"));
  };
  if (since.size() < 20 || since.back() != 'Z' || since[4] != '-' || since[7] != '-' ||
      since[10] != 'T' || since[13] != ':' || since[16] != ':') {
    return bad();
  }
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18}) {
    if (std::isdigit(static_cast<unsigned char>(since[i])) == 0) return bad();
  }
  std::string frac;
  if (since.size() > 20) {
    if (since[19] != '.') return bad();
    frac = std::string(since.substr(20, since.size() - 21));
    if (frac.empty() || frac.size() > 9 || !std::all_of(frac.begin(), frac.end(), [](char c) {
          return std::isdigit(static_cast<unsigned char>(c)) != 0;
        })) {
      return bad();
    }
  } else if (since[19] != 'Z') {
    return bad();
  }
  frac.resize(6, '0');
  return std::string(since.substr(0, 19)) + "." + frac.substr(0, 6) + "Z";
}

FollowerSlots::Lease::~Lease() {
  if (!slots_) return;  // moved from
  std::lock_guard lock(slots_->mu_);
  auto it = slots_->held_.find(org_);
  if (it != slots_->held_.end() && --it->second <= 0) slots_->held_.erase(it);
}

std::optional<FollowerSlots::Lease> FollowerSlots::tryAcquire(const std::string& org) {
  std::lock_guard lock(mu_);
  int& n = held_[org];
  if (n >= max_) {
    if (n == 0) held_.erase(org);
    return std::nullopt;
  }
  ++n;
  return Lease(shared_from_this(), org);
}

int FollowerSlots::held(const std::string& org) const {
  std::lock_guard lock(mu_);
  auto it = held_.find(org);
  return it == held_.end() ? 0 : it->second;
}

}  // namespace plfm::cp
