#include "probe_dns.h"

#include <cstring>

namespace plfm::hello {
namespace {

constexpr size_t kHeader = 12;

Error malformed(const std::string& what) {
  return Error(errc::kInvalidArgument, "malformed DNS answer: " + what);
}

uint16_t u16(const std::vector<uint8_t>& b, size_t at) {
  return static_cast<uint16_t>((b[at] << 8) | b[at + 1]);
}

// Skips an encoded name at `at` (labels, ending with a zero byte or a
// compression pointer); returns the offset after it.
Result<size_t> skipName(const std::vector<uint8_t>& b, size_t at) {
  for (int labels = 0; labels < 128; ++labels) {
    if (at >= b.size()) return malformed("name runs past the end");
    const uint8_t len = b[at];
    if ((len & 0xC0) == 0xC0) {
      if (at + 2 > b.size()) return malformed("truncated pointer");
      return at + 2;
    }
    if ((len & 0xC0) != 0) return malformed("bad label type");
    if (len == 0) return at + 1;
    at += 1 + len;
  }
  return malformed("too many labels");
}

}  // namespace

Result<std::vector<uint8_t>> buildAaaaQuery(uint16_t id, std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) {
    return Error(errc::kInvalidArgument, "name: expected 1 to 253 bytes");
  }
  std::vector<uint8_t> q = {static_cast<uint8_t>(id >> 8),
                            static_cast<uint8_t>(id & 0xFF),
                            0x01,
                            0x00,  // RD
                            0,
                            1,
                            0,
                            0,
                            0,
                            0,
                            0,
                            0};
  for (size_t start = 0; start <= name.size();) {
    size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    const size_t len = dot - start;
    if (len == 0 || len > 63) {
      return Error(errc::kInvalidArgument, "name: each label must be 1 to 63 bytes");
    }
    q.push_back(static_cast<uint8_t>(len));
    q.insert(q.end(), name.begin() + static_cast<std::ptrdiff_t>(start),
             name.begin() + static_cast<std::ptrdiff_t>(dot));
    start = dot + 1;
  }
  q.push_back(0);
  q.insert(q.end(), {0, kDnsTypeAaaa, 0, kDnsClassIn});
  return q;
}

Result<AaaaAnswer> parseAaaaAnswer(uint16_t id, const std::vector<uint8_t>& b) {
  if (b.size() < kHeader) return malformed("shorter than its header");
  if (u16(b, 0) != id) return malformed("another query's id");
  if ((b[2] & 0x80) == 0) return malformed("not a response");
  AaaaAnswer out;
  out.truncated = (b[2] & 0x02) != 0;
  out.rcode = b[3] & 0x0F;
  const uint16_t questions = u16(b, 4);
  const uint16_t answers = u16(b, 6);
  size_t at = kHeader;
  for (uint16_t i = 0; i < questions; ++i) {
    PLFM_ASSIGN_OR_RETURN(at, skipName(b, at));
    if (at + 4 > b.size()) return malformed("truncated question");
    at += 4;
  }
  for (uint16_t i = 0; i < answers; ++i) {
    PLFM_ASSIGN_OR_RETURN(at, skipName(b, at));
    if (at + 10 > b.size()) return malformed("truncated record");
    const uint16_t type = u16(b, at);
    const uint16_t klass = u16(b, at + 2);
    const uint16_t rdlength = u16(b, at + 8);
    at += 10;
    if (at + rdlength > b.size()) return malformed("record data runs past the end");
    if (type == kDnsTypeAaaa && klass == kDnsClassIn) {
      if (rdlength != 16)
        return malformed("an AAAA record of " + std::to_string(rdlength) + " bytes");
      std::array<uint8_t, 16> a{};
      std::memcpy(a.data(), b.data() + at, a.size());
      out.addresses.push_back(a);
    }
    at += rdlength;
  }
  return out;
}

std::string firstNameserver(std::string_view text) {
  while (!text.empty()) {
    size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    constexpr std::string_view kKey = "nameserver";
    if (line.substr(0, kKey.size()) != kKey || line.size() == kKey.size()) continue;
    if (line[kKey.size()] != ' ' && line[kKey.size()] != '\t') continue;
    line.remove_prefix(kKey.size());
    const size_t start = line.find_first_not_of(" \t");
    if (start == std::string_view::npos) continue;
    line.remove_prefix(start);
    return std::string(line.substr(0, line.find_first_of(" \t\r#;")));
  }
  return "";
}

}  // namespace plfm::hello
