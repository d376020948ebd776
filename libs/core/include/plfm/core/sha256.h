// SHA-256, one-shot and streaming (OpenSSL EVP underneath). Used for content
// addressing (blobs, initramfs, migrations) and request hashing.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace plfm {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(std::string_view data);
  void update(const void* data, size_t len);
  // Finishes and returns the lowercase hex digest; the object resets.
  [[nodiscard]] std::string hexDigest();

  [[nodiscard]] static std::string hex(std::string_view data);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace plfm
