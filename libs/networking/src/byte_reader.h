// A bounds-checked big-endian reader over untrusted bytes. Every read either
// succeeds or returns false and leaves the reader unusable (ok() == false),
// so a parser can chain reads and check once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace plfm::net::internal {

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> data) : data_(data) {}

  [[nodiscard]] bool ok() const { return ok_; }
  [[nodiscard]] size_t remaining() const { return ok_ ? data_.size() - pos_ : 0; }
  [[nodiscard]] bool empty() const { return remaining() == 0; }

  bool u8(uint8_t& out) { return readInt(1, out); }
  bool u16(uint16_t& out) { return readInt(2, out); }
  bool u24(uint32_t& out) { return readInt(3, out); }

  bool bytes(size_t n, std::span<const uint8_t>& out) {
    if (!ok_ || data_.size() - pos_ < n) return ok_ = false;
    out = data_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  bool skip(size_t n) {
    std::span<const uint8_t> ignored;
    return bytes(n, ignored);
  }
  // A vector with a `length_bytes`-byte length prefix (RFC 8446 §3.4).
  bool vec(size_t length_bytes, std::span<const uint8_t>& out) {
    uint32_t n = 0;
    if (!readInt(length_bytes, n)) return false;
    return bytes(n, out);
  }

 private:
  template <class T>
  bool readInt(size_t n, T& out) {
    if (!ok_ || data_.size() - pos_ < n) return ok_ = false;
    T v = 0;
    for (size_t i = 0; i < n; ++i) v = static_cast<T>((v << 8) | data_[pos_ + i]);
    pos_ += n;
    out = v;
    return true;
  }

  std::span<const uint8_t> data_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace plfm::net::internal
