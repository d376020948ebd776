// Envelope encryption of secret bundles (ADR 0015,
// docs/specs/secrets/encryption.md).
//
// Every secrets version gets a fresh 256-bit data key. The version's
// plaintext (the fixed-format secrets file) is sealed with
// XChaCha20-Poly1305 under that data key, with the env id, version id and
// version number as associated data, so a ciphertext cannot be moved to
// another env or version. The data key is itself sealed (wrapped) under the
// master key, with the version id and the master key's id as associated
// data. Only the wrapped data key, the master key's id and the ciphertext are
// stored (table secret_versions).
//
// The master key is 32 raw bytes in a file that must be a regular file of
// mode 0600 (or stricter) owned by the process user. The Keyring holds the
// primary key (new wraps) and, during a rotation, the previous one
// (`<file>.previous`, unwrap only). It re-reads the files when it meets a key
// id it does not know and before each wrap when the primary file changed, so
// `plfm-control-plane secrets rotate-master-key` works under a running
// server.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "plfm/core/result.h"

namespace plfm::cp::crypto {

inline constexpr size_t kMasterKeyBytes = 32;
inline constexpr std::string_view kPreviousSuffix = ".previous";

// A key in memory that wipes itself. Move-only.
class KeyBytes {
 public:
  KeyBytes() = default;
  explicit KeyBytes(std::string bytes) : bytes_(std::move(bytes)) {}
  KeyBytes(KeyBytes&& o) noexcept : bytes_(std::move(o.bytes_)) { o.bytes_.clear(); }
  KeyBytes& operator=(KeyBytes&& o) noexcept;
  KeyBytes(const KeyBytes&) = delete;
  KeyBytes& operator=(const KeyBytes&) = delete;
  ~KeyBytes();

  [[nodiscard]] const unsigned char* data() const {
    return reinterpret_cast<const unsigned char*>(bytes_.data());
  }
  [[nodiscard]] size_t size() const { return bytes_.size(); }

 private:
  std::string bytes_;
};

struct MasterKey {
  std::string id;  // "mk_" + 16 hex digits, derived from the key (a KDF, not a hash of a secret)
  KeyBytes key;
};

// Reads and checks a master key file. The error says why it is refused:
// missing, not a regular file, permissions wider than 0600, not 32 bytes.
[[nodiscard]] Result<MasterKey> loadMasterKey(const std::string& path);

// Writes a new random master key to `path` (mode 0600, atomically; fails
// when the file exists). Returns its id.
[[nodiscard]] Result<std::string> generateMasterKeyFile(const std::string& path);

// Installs the key of `from` at `path` atomically (mode 0600).
[[nodiscard]] Result<void> installKeyFile(const std::string& from, const std::string& path);

// What a version stores beside its ciphertext.
struct Sealed {
  std::string key_id;       // the master key that wraps the data key
  std::string wrapped_key;  // nonce || AEAD(master, data key)
  std::string ciphertext;   // nonce || AEAD(data key, plaintext)
};

// The associated data of a version: binds its ciphertext to its place.
struct VersionRef {
  std::string env_id;
  std::string version_id;
  int64_t number = 0;
};

class Keyring {
 public:
  // Loads `<path>` (required) and `<path>.previous` (when present).
  [[nodiscard]] static Result<std::unique_ptr<Keyring>> load(std::string path);

  // Seals `plaintext` for `ref` under a fresh data key wrapped by the primary.
  [[nodiscard]] Result<Sealed> seal(std::string_view plaintext, const VersionRef& ref);
  // Opens a sealed version. The caller wipes the result (secrets::wipe).
  [[nodiscard]] Result<std::string> open(const Sealed& sealed, const VersionRef& ref);
  // Unwraps `sealed`'s data key and wraps it again under `to` (rotation).
  [[nodiscard]] Result<Sealed> rewrap(const Sealed& sealed, const VersionRef& ref,
                                      const MasterKey& to);

  // A keyed MAC (BLAKE2b under a key derived from the primary) of `text`,
  // hex. Idempotency records of secrets mutations store this instead of a
  // plain SHA-256 of the request, so no record allows offline guessing.
  [[nodiscard]] std::string fingerprint(std::string_view text);

  [[nodiscard]] std::string primaryId();

 private:
  explicit Keyring(std::string path) : path_(std::move(path)) {}
  Result<void> reloadLocked();
  Result<void> refreshIfChangedLocked();

  std::string path_;
  std::mutex mu_;
  std::string primary_id_;
  std::map<std::string, KeyBytes> keys_;  // by id; every key seen by this process
  ino_t primary_ino_ = 0;
  int64_t primary_mtime_ns_ = 0;
};

}  // namespace plfm::cp::crypto
