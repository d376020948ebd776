// The control plane's log relay (docs/specs/runtime/logs.md): merges the
// pages each node agent's log endpoint returned for an env's instances into
// one stream in (ts, instance_id, per-instance sequence) order, and keeps a
// per-instance cursor so `vt logs -f` resumes exactly after what it showed.
//
//   RelayCursor cursor = *decodeCursor(req_cursor);   // {} on the first call
//   auto lines = mergeLogPages(pages, 1000, /*tail=*/false, cursor);
//   body["cursor"] = encodeCursor(cursor);
//
// Pure functions: the HTTP fan-out lives in api_logs.cc.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/clock.h"
#include "plfm/core/json.h"
#include "plfm/core/result.h"

namespace plfm::cp {

// An agent cursor (the agent's log_reader.h): lines after `ts`, skipping the
// first `skip` lines with exactly that ts.
struct InstanceCursor {
  std::string ts;
  int64_t skip = 0;
  bool operator==(const InstanceCursor&) const = default;
};
using RelayCursor = std::map<std::string, InstanceCursor>;  // by instance id

// Opaque, URL-safe (hex of a small JSON object). Decoding checks every part
// that goes into an agent URL: instance ids are [a-z0-9_]{1,64}, each ts is
// empty or exactly the agent's form (validCursorTs), skips are 0..10^9.
[[nodiscard]] std::string encodeCursor(const RelayCursor& cursor);
[[nodiscard]] Result<RelayCursor> decodeCursor(std::string_view text);

// "YYYY-MM-DDTHH:MM:SS.uuuuuuZ", digits where digits go: the only ts form an
// agent writes, so nothing else is ever put into a relay URL.
[[nodiscard]] bool validCursorTs(std::string_view ts);

// What one agent answered for one instance.
struct InstancePage {
  std::string instance_id;
  std::string process_type;
  std::vector<json::Json> lines;  // {"ts","stream","line",...} in the agent's order
  InstanceCursor start;           // the cursor the request carried
  InstanceCursor next;            // the agent's cursor after its last line
};

struct RelayLine {
  std::string ts;
  std::string instance_id;
  std::string process_type;
  std::string stream;
  std::string line;
  int64_t seq = 0;  // position in its instance's page
};

// Merges `pages` in (ts, instance_id, seq) order and keeps the first `limit`
// lines (the last `limit` when `tail`). `cursor` is advanced for every
// instance past exactly the lines returned (with `tail`, past each page).
[[nodiscard]] std::vector<RelayLine> mergeLogPages(const std::vector<InstancePage>& pages,
                                                   size_t limit, bool tail, RelayCursor& cursor);

[[nodiscard]] json::Json relayLineJson(const RelayLine& l);

// "10m", "2h", "30s", "1d" before `now`, or an RFC 3339 time, as the agent's
// timestamp form "YYYY-MM-DDTHH:MM:SS.uuuuuuZ"; invalid_query otherwise.
// (UTC only: "2026-12-03T06:30:00Z" or with fractional seconds).
[[nodiscard]] Result<std::string> parseSince(std::string_view since, Clock::WallTime now);

// How many `logs?follow=true` requests each org holds at once: each holds a
// server thread and polls agents until a line comes, so one org must not
// take them all. Thread-safe.
class FollowerSlots : public std::enable_shared_from_this<FollowerSlots> {
 public:
  explicit FollowerSlots(int max_per_org) : max_(max_per_org) {}

  // Releases its slot when destroyed.
  class Lease {
   public:
    Lease(std::shared_ptr<FollowerSlots> slots, std::string org)
        : slots_(std::move(slots)), org_(std::move(org)) {}
    Lease(Lease&&) = default;
    Lease& operator=(Lease&& o) noexcept {
      std::swap(slots_, o.slots_);
      std::swap(org_, o.org_);
      return *this;
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();

   private:
    std::shared_ptr<FollowerSlots> slots_;
    std::string org_;
  };

  // A slot for `org`, or nullopt when it already holds max_per_org.
  [[nodiscard]] std::optional<Lease> tryAcquire(const std::string& org);
  [[nodiscard]] int held(const std::string& org) const;
  [[nodiscard]] int max() const { return max_; }

 private:
  const int max_;
  mutable std::mutex mu_;
  std::map<std::string, int> held_;
};

}  // namespace plfm::cp
