#include "plfm/testing/leak_scan.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "plfm/core/json.h"

namespace plfm::testing {
namespace {

std::string randomHex(size_t bytes) {
  std::random_device rd;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes; ++i) {
    const auto b = static_cast<unsigned>(rd()) & 0xffU;
    out += kHex[b >> 4];
    out += kHex[b & 0xfU];
  }
  return out;
}

}  // namespace

std::string LeakScanner::addCanary(std::string_view label) {
  const std::string core = randomHex(16);
  std::string value = "cnry-" + std::string(label) + "-" + core + R"(-"q"=\n$x)";
  Canary c{std::string(label), {}};
  c.forms.push_back(value);
  c.forms.push_back(json::dump(json::Json(value)).substr(1));  // JSON-escaped, no opening quote
  c.forms.push_back(core);
  canaries_.push_back(std::move(c));
  return value;
}

void LeakScanner::addCanaryValue(std::string_view label, std::string value) {
  EXPECT_GE(value.size(), 16U) << "canary " << label << " is too short to be distinctive";
  Canary c{std::string(label), {}};
  c.forms.push_back(json::dump(json::Json(value)).substr(1));
  c.forms.push_back(std::move(value));
  canaries_.push_back(std::move(c));
}

void LeakScanner::scanText(std::string_view where, std::string_view text) {
  ++scanned_;
  for (const auto& c : canaries_) {
    for (const auto& form : c.forms) {
      if (text.find(form) != std::string_view::npos) {
        findings_.push_back({std::string(where), c.label});
        break;
      }
    }
  }
}

void LeakScanner::scanFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "cannot read " << path << " to scan it";
    return;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  scanText("file " + path, ss.str());
}

void LeakScanner::scanDir(const std::string& dir) {
  std::error_code ec;
  namespace fs = std::filesystem;
  // A live directory (a database's) may lose files while it is walked: those
  // are skipped, anything else that cannot be read fails the test.
  const auto opts = fs::directory_options::skip_permission_denied;
  for (auto it = fs::recursive_directory_iterator(dir, opts, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    std::error_code fec;
    if (!it->is_regular_file(fec) || it->is_symlink(fec)) continue;
    std::ifstream in(it->path(), std::ios::binary);
    if (!in) {
      EXPECT_FALSE(fs::exists(it->path(), fec)) << "cannot read " << it->path() << " to scan it";
      continue;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    scanText("file " + it->path().string(), ss.str());
  }
  EXPECT_TRUE(!ec || ec == std::errc::no_such_file_or_directory)
      << "scanning " << dir << ": " << ec.message();
}

std::vector<std::string> LeakScanner::scanDatabase(pg::Connection& conn,
                                                   const std::set<std::string>& exclude) {
  std::vector<std::string> tables;
  auto rs = conn.exec(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND "
      "table_type = 'BASE TABLE' ORDER BY table_name");
  if (!rs) {
    ADD_FAILURE() << "listing tables: " << rs.error().toString();
    return tables;
  }
  for (int i = 0; i < rs->rows(); ++i) {
    const std::string table(rs->text(i, 0));
    if (exclude.contains(table)) continue;
    // A table name from the catalog, quoted as an identifier.
    auto rows = conn.exec("SELECT t::text FROM \"" + table + "\" t");
    if (!rows) {
      ADD_FAILURE() << "reading " << table << ": " << rows.error().toString();
      continue;
    }
    std::string text;
    for (int r = 0; r < rows->rows(); ++r) text.append(rows->text(r, 0)).append("\n");
    scanText("table " + table, text);
    tables.push_back(table);
  }
  return tables;
}

void LeakScanner::expectClean() const {
  EXPECT_FALSE(canaries_.empty()) << "no canaries registered";
  for (const auto& f : findings_) {
    ADD_FAILURE() << "canary " << f.label << " leaked into " << f.where;
  }
}

}  // namespace plfm::testing
