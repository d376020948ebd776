#include "plfm/core/sha256.h"

#include <openssl/evp.h>

#include "plfm/core/assert.h"
#include "plfm/core/strings.h"

namespace plfm {

namespace {

// The digest's implementation, fetched once. EVP_sha256() makes every init
// look it up again (OpenSSL 3), which showed as a tenth of the control
// plane's CPU with a hash per request.
const EVP_MD* sha256Md() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA2-256", nullptr);
  PLFM_ASSERT(md != nullptr, "EVP_MD_fetch(SHA2-256)");
  return md;
}

}  // namespace

struct Sha256::Impl {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  Impl() {
    PLFM_ASSERT(ctx != nullptr, "EVP_MD_CTX_new");
    reset();
  }
  ~Impl() { EVP_MD_CTX_free(ctx); }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  void reset() { PLFM_ASSERT(EVP_DigestInit_ex(ctx, sha256Md(), nullptr) == 1, "sha256 init"); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(const void* data, size_t len) {
  PLFM_ASSERT(EVP_DigestUpdate(impl_->ctx, data, len) == 1, "sha256 update");
}

void Sha256::update(std::string_view data) { update(data.data(), data.size()); }

std::string Sha256::hexDigest() {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  PLFM_ASSERT(EVP_DigestFinal_ex(impl_->ctx, md.data(), &len) == 1, "sha256 final");
  impl_->reset();
  return hexEncode(std::string_view(reinterpret_cast<const char*>(md.data()), len));
}

std::string Sha256::hex(std::string_view data) {
  // One context per thread, reset by each digest: no allocation per call.
  thread_local Sha256 h;
  h.update(data);
  return h.hexDigest();
}

}  // namespace plfm
