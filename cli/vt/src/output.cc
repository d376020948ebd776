#include "output.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <ostream>

namespace plfm::vt {

Output::Output(std::ostream& out, std::ostream& err, Format format, bool quiet, bool color,
               bool err_color)
    : out_(out), err_(err), format_(format), quiet_(quiet), color_(color), err_color_(err_color) {}

bool colorAllowed(int fd) {
  const char* no_color = std::getenv("NO_COLOR");  // NOLINT(concurrency-mt-unsafe)
  if (no_color != nullptr && *no_color != '\0') return false;
  const char* term = std::getenv("TERM");  // NOLINT(concurrency-mt-unsafe)
  if (term != nullptr && std::string_view(term) == "dumb") return false;
  return ::isatty(fd) == 1;
}

std::string Output::paint(const std::string& text, const char* code) const {
  if (!color_) return text;
  return std::string("\033[") + code + "m" + text + "\033[0m";
}

void Output::table(const std::vector<std::string>& headers,
                   const std::vector<std::vector<std::string>>& rows) {
  if (quiet_) {
    for (const auto& row : rows) {
      if (!row.empty()) out_ << row[0] << "\n";
    }
    return;
  }
  std::vector<size_t> width(headers.size(), 0);
  for (size_t i = 0; i < headers.size(); ++i) width[i] = headers[i].size();
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  }
  auto emit = [&](const std::vector<std::string>& row, bool header) {
    std::string line;
    for (size_t i = 0; i < headers.size(); ++i) {
      std::string v = i < row.size() ? row[i] : "";
      bool last = i + 1 == headers.size();
      if (!last) v += std::string(width[i] - v.size() + 2, ' ');
      line += v;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out_ << (header ? paint(line, "1") : line) << "\n";
  };
  emit(headers, true);
  for (const auto& row : rows) emit(row, false);
}

void Output::fields(const std::vector<std::pair<std::string, std::string>>& kv) {
  size_t width = 0;
  for (const auto& [k, v] : kv) width = std::max(width, k.size());
  for (const auto& [k, v] : kv) {
    out_ << paint(k + ":", "1") << std::string(width - k.size() + 2, ' ') << v << "\n";
  }
}

void Output::json(const nlohmann::json& value) { out_ << value.dump(2) << "\n"; }

void Output::line(const std::string& text) {
  if (!quiet_) out_ << text << "\n";
}

void Output::receipt(const Receipt& r, const nlohmann::json& result, bool ok) {
  if (format_ == Format::kJson) {
    nlohmann::json j = {{"action", r.action}, {"message", r.message}, {"ids", r.ids},
                        {"notes", r.notes},   {"next", r.next},       {"result", result}};
    out_ << j.dump(2) << "\n";
    return;
  }
  if (quiet_) {
    for (const auto& id : r.ids) out_ << id << "\n";
    return;
  }
  out_ << (ok ? paint("✓", "32") : paint("✗", "31")) << " " << r.message << "\n";
  for (const auto& note : r.notes) out_ << "  " << note << "\n";
  if (!r.next.empty()) {
    out_ << "\nNext:\n";
    for (const auto& n : r.next) out_ << "  " << n << "\n";
  }
}

void Output::progress(const std::string& text) {
  if (!quiet_) err_ << text << "\n" << std::flush;
}

void Output::warn(const std::string& text) {
  err_ << (err_color_ ? "\033[33mwarning:\033[0m " : "warning: ") << text << "\n";
}

void Output::error(const std::string& message, const std::string& hint) {
  err_ << (err_color_ ? "\033[31merror:\033[0m " : "error: ") << message << "\n";
  if (!hint.empty()) err_ << "hint: " << hint << "\n";
}

const nlohmann::json& field(const nlohmann::json& j, std::string_view key) {
  static const nlohmann::json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

std::string cell(const nlohmann::json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    return s.empty() ? "-" : s;
  }
  return v.dump();
}

std::string shortTime(const nlohmann::json& v) {
  if (!v.is_string()) return "-";
  std::string s = v.get<std::string>();
  if (s.size() < 19) return s;
  s = s.substr(0, 19);
  s[10] = ' ';
  return s;
}

int64_t parseDuration(const std::string& s) {
  if (s.empty() || s.size() > 8) return -1;
  int64_t unit = 1;
  std::string digits = s;
  switch (s.back()) {
    case 's':
      digits.pop_back();
      break;
    case 'm':
      unit = 60;
      digits.pop_back();
      break;
    case 'h':
      unit = 3600;
      digits.pop_back();
      break;
    case 'd':
      unit = 86'400;
      digits.pop_back();
      break;
    default:
      break;
  }
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c)) != 0;
      })) {
    return -1;
  }
  return std::stoll(digits) * unit;
}

}  // namespace plfm::vt
