#include "agent/instance_log.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "plfm/core/strings.h"

namespace plfm::agent {
namespace {
constexpr size_t kMaxPartial = size_t{16} * 1024;
constexpr std::string_view kRedacted = "[redacted]";
}  // namespace

std::string formatTimestampNs(uint64_t ns) {
  auto secs = static_cast<time_t>(ns / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<unsigned>((ns % 1'000'000'000) / 1000));
  return buf;
}

InstanceLog::InstanceLog(std::string path, std::string instance_id, uint64_t max_bytes)
    : path_(std::move(path)), instance_id_(std::move(instance_id)), max_bytes_(max_bytes) {}

void InstanceLog::mask(std::vector<std::string> values) {
  std::lock_guard lock(mu_);
  values.erase(std::remove_if(values.begin(), values.end(),
                              [](const std::string& v) { return v.size() < 4; }),
               values.end());
  // Longest first, so a value containing another is masked whole.
  std::sort(values.begin(), values.end(),
            [](const auto& a, const auto& b) { return a.size() > b.size(); });
  masks_ = std::move(values);
}

std::string InstanceLog::masked(std::string_view text) {
  std::lock_guard lock(mu_);
  return redact(text);
}

std::string InstanceLog::redact(std::string_view text) const {
  std::string out(text);
  for (const auto& m : masks_) {
    size_t pos = 0;
    while ((pos = out.find(m, pos)) != std::string::npos) {
      out.replace(pos, m.size(), kRedacted);
      pos += kRedacted.size();
    }
  }
  return out;
}

void InstanceLog::writeLine(std::string_view stream, uint64_t timestamp_ns, std::string_view line) {
  std::string text = R"({"ts":")" + formatTimestampNs(timestamp_ns) + R"(","instance_id":")" +
                     instance_id_ + R"(","stream":")" + std::string(stream) + R"(","line":")";
  appendJsonEscaped(text, redact(line));
  text += "\"}\n";
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0 &&
      static_cast<uint64_t>(st.st_size) + text.size() > max_bytes_) {
    std::error_code ec;
    std::filesystem::rename(path_, path_ + ".1", ec);
  }
  std::ofstream out(path_, std::ios::app | std::ios::binary);
  out << text;
}

void InstanceLog::append(std::string_view stream, uint64_t timestamp_ns, std::string_view data) {
  std::lock_guard lock(mu_);
  auto& [ts, pending] = partial_[std::string(stream)];
  if (pending.empty()) ts = timestamp_ns;
  pending.append(data);
  size_t start = 0;
  while (true) {
    size_t nl = pending.find('\n', start);
    if (nl == std::string::npos) break;
    std::string_view line(pending.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    writeLine(stream, ts, line);
    ts = timestamp_ns;
    start = nl + 1;
  }
  pending.erase(0, start);
  if (pending.size() > kMaxPartial) {
    writeLine(stream, ts, pending);
    pending.clear();
  }
}

void InstanceLog::flush() {
  std::lock_guard lock(mu_);
  for (auto& [stream, entry] : partial_) {
    if (!entry.second.empty()) writeLine(stream, entry.first, entry.second);
    entry.second.clear();
  }
}

}  // namespace plfm::agent
