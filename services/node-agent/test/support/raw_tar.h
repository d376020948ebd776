// Tar bytes written by hand (POSIX.1-2001 ustar headers and pax extended
// headers), for tests and the fuzz target: unlike libarchive's writer, these
// can carry any bytes in a pax key (a NUL, a newline, an 8 KiB name).
// Header-only so that the fuzz target needs no other test library.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace plfm::image::testing {

// One pax record: "LEN key=value\n", where LEN counts itself.
inline std::string paxRecord(std::string_view key, std::string_view value) {
  const size_t body = 1 + key.size() + 1 + value.size() + 1;
  size_t len = body + 1;
  while (std::to_string(len).size() + body != len) len = std::to_string(len).size() + body;
  return std::to_string(len) + " " + std::string(key) + "=" + std::string(value) + "\n";
}

// A 512-byte ustar header (POSIX.1-2001 ustar, with its checksum).
inline std::string ustarHeader(std::string_view name, char type, uint64_t size, uint32_t mode) {
  std::string h(512, '\0');
  auto put = [&](size_t at, std::string_view v) { h.replace(at, v.size(), v); };
  auto octal = [](uint64_t v, int width) {
    char buf[24];
    std::snprintf(buf, sizeof(buf), "%0*llo", width - 1, static_cast<unsigned long long>(v));
    return std::string(buf);
  };
  put(0, name.substr(0, 99));
  put(100, octal(mode, 8));
  put(108, octal(0, 8));
  put(116, octal(0, 8));
  put(124, octal(size, 12));
  put(136, octal(1'700'000'000, 12));
  h[156] = type;
  put(257, std::string_view("ustar\0", 6));
  put(263, "00");
  h.replace(148, 8, 8, ' ');
  unsigned sum = 0;
  for (const char c : h) sum += static_cast<unsigned char>(c);
  char ck[8];
  std::snprintf(ck, sizeof(ck), "%06o", sum);
  h.replace(148, 7, std::string(ck, 6) + '\0');
  return h;
}

inline std::string padded(std::string data) {
  data.resize((data.size() + 511) / 512 * 512, '\0');
  return data;
}

struct RawEntry {
  std::string name;
  char type = '0';
  std::string content;
  std::vector<std::string> pax;  // records, each from paxRecord()
};

inline std::string rawTar(const std::vector<RawEntry>& entries) {
  std::string out;
  for (const auto& e : entries) {
    if (!e.pax.empty()) {
      std::string records;
      for (const auto& r : e.pax) records += r;
      out += ustarHeader("PaxHeaders/x", 'x', records.size(), 0644) + padded(records);
    }
    out += ustarHeader(e.name, e.type, e.content.size(), e.type == '5' ? 0755 : 0644);
    out += padded(e.content);
  }
  out += std::string(1024, '\0');
  return out;
}

}  // namespace plfm::image::testing
