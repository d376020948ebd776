// Signed relay requests (docs/specs/runtime/logs.md, "Authentication").
//
// The control plane reads an instance's logs from the agent of its node. It
// holds no credential that opens an agent: it signs each request it relays
// with its Ed25519 key, for one method, one target (path and query), one
// node, one instance and a short expiry. The agent learns the public key when
// it enrolls, pins it, and verifies every request against its own node id and
// the instance named in the path.
//
//   // control plane
//   PLFM_ASSIGN_OR_RETURN(auto key, relay::SigningKey::loadOrCreate(path));
//   relay::SignedRequest s{"GET", target, node_id, instance_id, now + relay::kTtl};
//   headers.set(relay::kExpiresHeader, std::to_string(s.expires_unix));
//   headers.set(relay::kSignatureHeader, key.sign(s));
//   // agent
//   PLFM_TRY(relay::verify(pinned, s_from_request, signature_header, now_unix));
//
// Nothing here logs or returns key material; errors name what failed only.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "plfm/core/result.h"

namespace plfm::relay {

inline constexpr std::string_view kExpiresHeader = "X-Plfm-Relay-Expires";
inline constexpr std::string_view kSignatureHeader = "X-Plfm-Relay-Signature";
// How long a signature is good for, and the clock skew the agent tolerates
// on either side of it.
inline constexpr int64_t kTtlSeconds = 30;
inline constexpr int64_t kSkewSeconds = 5;
// "ed25519:" and 64 lowercase hex digits.
inline constexpr std::string_view kPublicKeyPrefix = "ed25519:";

// What one signature covers.
struct SignedRequest {
  std::string method;       // "GET"
  std::string target;       // path and query exactly as sent: "/v1/instances/inst_x/logs?limit=5"
  std::string node_id;      // the node whose agent must accept it
  std::string instance_id;  // the instance the path names
  int64_t expires_unix = 0;
};

// The bytes that are signed: a domain tag, then each field on its own line.
// Fields never hold a newline (the verifier refuses them before this).
[[nodiscard]] std::string signingInput(const SignedRequest& r);

class PublicKey {
 public:
  // "ed25519:<64 hex>".
  [[nodiscard]] static Result<PublicKey> parse(std::string_view text);
  [[nodiscard]] std::string text() const;
  [[nodiscard]] const std::array<unsigned char, 32>& bytes() const { return bytes_; }
  bool operator==(const PublicKey&) const = default;

 private:
  std::array<unsigned char, 32> bytes_{};
};

// The control plane's signing key. Move-only; wipes its secret on destruction.
class SigningKey {
 public:
  // Loads the 32-byte seed at `path`, or creates it (random, mode 0600, the
  // file and its directory fsynced) when it does not exist. An existing file
  // that is not a regular file of this user with mode 0600 (or stricter), or
  // not 32 bytes, is refused with the reason.
  [[nodiscard]] static Result<SigningKey> loadOrCreate(const std::string& path);
  // From a 32-byte seed (tests).
  [[nodiscard]] static Result<SigningKey> fromSeed(std::string_view seed);

  SigningKey(SigningKey&& o) noexcept;
  SigningKey& operator=(SigningKey&& o) noexcept;
  SigningKey(const SigningKey&) = delete;
  SigningKey& operator=(const SigningKey&) = delete;
  ~SigningKey();

  [[nodiscard]] const PublicKey& publicKey() const { return public_; }
  // The detached signature of signingInput(r), 128 lowercase hex digits.
  [[nodiscard]] std::string sign(const SignedRequest& r) const;

 private:
  SigningKey() = default;
  std::array<unsigned char, 64> secret_{};  // libsodium's seed || public key
  PublicKey public_;
};

// Checks a request against the pinned key: the signature over exactly `r`,
// and that `r.expires_unix` lies within [now - skew, now + ttl + skew]. The
// error (errc::kUnauthenticated) says which check failed, never any key.
[[nodiscard]] Result<void> verify(const PublicKey& key, const SignedRequest& r,
                                  std::string_view signature_hex, int64_t now_unix);

}  // namespace plfm::relay
