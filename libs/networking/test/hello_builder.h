// Builds ClientHello byte strings for tests: the body, extensions and the
// record framing can each be bent to produce one specific defect.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace plfm::net::testing {

using Bytes = std::vector<uint8_t>;

inline void put16(Bytes& b, size_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

inline void append(Bytes& b, const Bytes& more) { b.insert(b.end(), more.begin(), more.end()); }

inline void append(Bytes& b, std::string_view s) { b.insert(b.end(), s.begin(), s.end()); }

inline Bytes extension(uint16_t type, const Bytes& data) {
  Bytes b;
  put16(b, type);
  put16(b, data.size());
  append(b, data);
  return b;
}

inline Bytes sniExtension(std::string_view host) {
  Bytes entry = {0};  // host_name
  put16(entry, host.size());
  append(entry, host);
  Bytes data;
  put16(data, entry.size());
  append(data, entry);
  return extension(0, data);
}

inline Bytes alpnExtension(const std::vector<std::string>& names) {
  Bytes list;
  for (const auto& n : names) {
    list.push_back(static_cast<uint8_t>(n.size()));
    append(list, n);
  }
  Bytes data;
  put16(data, list.size());
  append(data, list);
  return extension(16, data);
}

inline Bytes versionsExtension(const std::vector<uint16_t>& versions) {
  Bytes data = {static_cast<uint8_t>(versions.size() * 2)};
  for (uint16_t v : versions) put16(data, v);
  return extension(43, data);
}

struct HelloSpec {
  uint16_t legacy_version = 0x0303;
  size_t session_id_bytes = 32;
  size_t cipher_suite_bytes = 4;
  size_t compression_bytes = 1;
  bool has_extensions = true;
  std::vector<Bytes> extensions;
};

// The handshake message: type(1) length(3) body.
inline Bytes handshake(const HelloSpec& spec, uint8_t type = 1) {
  Bytes body;
  put16(body, spec.legacy_version);
  body.insert(body.end(), 32, 0x42);  // random
  body.push_back(static_cast<uint8_t>(spec.session_id_bytes));
  body.insert(body.end(), spec.session_id_bytes, 0x11);
  put16(body, spec.cipher_suite_bytes);
  for (size_t i = 0; i < spec.cipher_suite_bytes; ++i) body.push_back(i % 2 == 0 ? 0x13 : 0x01);
  body.push_back(static_cast<uint8_t>(spec.compression_bytes));
  body.insert(body.end(), spec.compression_bytes, 0);
  if (spec.has_extensions) {
    Bytes exts;
    for (const auto& e : spec.extensions) append(exts, e);
    put16(body, exts.size());
    append(body, exts);
  }
  Bytes msg = {type, static_cast<uint8_t>(body.size() >> 16),
               static_cast<uint8_t>(body.size() >> 8), static_cast<uint8_t>(body.size())};
  append(msg, body);
  return msg;
}

// Frames `payload` into handshake records of at most `chunk` bytes.
inline Bytes records(const Bytes& payload, size_t chunk = 16384, uint8_t type = 22,
                     uint16_t version = 0x0301) {
  Bytes out;
  for (size_t i = 0; i < payload.size(); i += chunk) {
    const size_t n = std::min(chunk, payload.size() - i);
    out.push_back(type);
    put16(out, version);
    put16(out, n);
    out.insert(out.end(), payload.begin() + static_cast<std::ptrdiff_t>(i),
               payload.begin() + static_cast<std::ptrdiff_t>(i + n));
  }
  return out;
}

inline Bytes simpleHello(std::string_view host = "a.example.com") {
  HelloSpec spec;
  spec.extensions = {sniExtension(host), alpnExtension({"h2", "http/1.1"}),
                     versionsExtension({0x0304, 0x0303})};
  return records(handshake(spec));
}

}  // namespace plfm::net::testing
