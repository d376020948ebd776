// Reads an instance's bounded log files (instance_log.h: <id>.log.1, the
// rotated generation, then <id>.log) for the agent's log endpoint
// (docs/specs/runtime/logs.md). The files are already masked.
//
//   LogCursor after{"2026-12-03T06:30:00.123456Z", 2};  // 2 lines at that ts seen
//   auto page = readInstanceLog(agent.logPathFor(id), after, {.limit = 500});
//   // page->lines, and page->next to resume from
//
// A cursor is (ts, skip): every line with a later ts, and the lines with
// exactly `ts` after the first `skip` of them. Lines are JSON objects
// {"ts","instance_id","stream","line"} in file order; a trailing line
// without '\n' is still being written and waits for the next read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::agent {

struct LogCursor {
  std::string ts;    // RFC 3339 with microseconds; empty: from the start
  int64_t skip = 0;  // lines with exactly `ts` already seen
};

struct LogReadOptions {
  size_t limit = 1000;  // at most this many lines
  bool tail = false;    // the last `limit` lines after the cursor, not the first
};

struct LogPage {
  std::vector<nlohmann::json> lines;  // file order
  LogCursor next;                     // resume after the last line returned
  bool more = false;                  // lines were left out by `limit`
};

// `log_path` is STATE/logs/<id>.log; a missing file is an empty page.
[[nodiscard]] Result<LogPage> readInstanceLog(const std::string& log_path, const LogCursor& after,
                                              const LogReadOptions& options);

// Advances `cursor` past `ts` (one more line delivered).
void advanceCursor(LogCursor& cursor, const std::string& ts);

}  // namespace plfm::agent
