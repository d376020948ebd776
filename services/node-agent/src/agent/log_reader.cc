#include "agent/log_reader.h"

#include <deque>
#include <fstream>
#include <utility>

namespace plfm::agent {

void advanceCursor(LogCursor& cursor, const std::string& ts) {
  if (ts == cursor.ts) {
    ++cursor.skip;
  } else {
    cursor.ts = ts;
    cursor.skip = 1;
  }
}

Result<LogPage> readInstanceLog(const std::string& log_path, const LogCursor& after,
                                const LogReadOptions& options) {
  LogPage page;
  page.next = after;
  // Each kept line with its cursor: (ts, its rank in the run of lines with
  // that ts). Ranks count runs of equal timestamps in file order, the same
  // way the filter below counts `skip`.
  std::deque<std::pair<nlohmann::json, LogCursor>> kept;
  LogCursor run;
  bool stop = false;
  for (const std::string& path : {log_path + ".1", log_path}) {
    std::ifstream in(path, std::ios::binary);
    if (!in) continue;
    std::string text;
    while (!stop && std::getline(in, text)) {
      if (in.eof()) break;  // no '\n' yet: the writer is mid-line
      auto j = nlohmann::json::parse(text, nullptr, false);
      if (!j.is_object() || !j.contains("ts") || !j["ts"].is_string()) continue;
      advanceCursor(run, j["ts"].get<std::string>());
      if (run.ts < after.ts || (run.ts == after.ts && run.skip <= after.skip)) continue;
      kept.emplace_back(std::move(j), run);
      if (kept.size() > options.limit) {
        page.more = true;
        if (options.tail) {
          kept.pop_front();
        } else {
          kept.pop_back();
          stop = true;
        }
      }
    }
  }
  if (!kept.empty()) page.next = kept.back().second;
  page.lines.reserve(kept.size());
  for (auto& [j, cursor] : kept) page.lines.push_back(std::move(j));
  return page;
}

}  // namespace plfm::agent
