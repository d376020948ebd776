// InstanceLog stores one instance's workload output as JSON lines under
// STATE/logs/<instance_id>.log, bounded: past max_bytes the file rotates to
// .log.1 (one generation kept), so a chatty workload can never fill the disk.
//
//   {"ts":"2026-12-03T06:30:00.123456Z","instance_id":"inst_...","stream":"stdout","line":"..."}
//
// LOG frames carry chunks, not lines: a partial line waits for the rest (up to
// 16 KiB, then it is written as is). Values registered with mask() (this
// instance's secrets) are replaced by "[redacted]" before anything is written.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::agent {

class InstanceLog {
 public:
  InstanceLog(std::string path, std::string instance_id, uint64_t max_bytes);

  void mask(std::vector<std::string> values);
  // `stream` is "stdout", "stderr" or "platform" (the agent's own notes).
  void append(std::string_view stream, uint64_t timestamp_ns, std::string_view data);
  void flush();  // writes pending partial lines
  // `text` with every masked value replaced, for text that leaves the node
  // by another way than the log (a status reason).
  [[nodiscard]] std::string masked(std::string_view text);

  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  void writeLine(std::string_view stream, uint64_t timestamp_ns, std::string_view line);
  std::string redact(std::string_view text) const;

  std::string path_;
  std::string instance_id_;
  uint64_t max_bytes_;
  std::mutex mu_;
  std::vector<std::string> masks_;
  std::map<std::string, std::pair<uint64_t, std::string>, std::less<>> partial_;
};

// RFC 3339 with microseconds, UTC.
[[nodiscard]] std::string formatTimestampNs(uint64_t ns);

}  // namespace plfm::agent
