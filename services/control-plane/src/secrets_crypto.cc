#include "secrets_crypto.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <memory>

#include "plfm/core/process.h"

namespace plfm::cp::crypto {
namespace {

constexpr size_t kNonce = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTag = crypto_aead_xchacha20poly1305_ietf_ABYTES;
constexpr size_t kDataKey = crypto_aead_xchacha20poly1305_ietf_KEYBYTES;
static_assert(kDataKey == kMasterKeyBytes);
constexpr char kIdContext[crypto_kdf_CONTEXTBYTES + 1] = "plfmkid_";
constexpr char kMacContext[crypto_kdf_CONTEXTBYTES + 1] = "plfmidem";

Error keyError(const std::string& path, const std::string& why) {
  return Error(plfm::errc::kFailedPrecondition, "secrets master key file " + path + ": " + why)
      .with("field", "secrets_master_key_file");
}

Result<void> sodiumReady() {
  if (sodium_init() < 0) return Error(plfm::errc::kInternal, "libsodium failed to initialize");
  return ok();
}

std::string hex(const unsigned char* p, size_t n) {
  std::string out(n * 2, '\0');
  sodium_bin2hex(out.data(), out.size() + 1, p, n);
  return out;
}

std::string keyIdOf(const KeyBytes& key) {
  unsigned char sub[16];
  crypto_kdf_derive_from_key(sub, sizeof(sub), 1, kIdContext, key.data());
  std::string id = "mk_" + hex(sub, 8);
  sodium_memzero(sub, sizeof(sub));
  return id;
}

// nonce || AEAD(key, plaintext, ad)
std::string aeadSeal(const unsigned char* key, std::string_view plaintext, std::string_view ad) {
  std::string out(kNonce + plaintext.size() + kTag, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  randombytes_buf(o, kNonce);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
      o + kNonce, &clen, reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size(),
      reinterpret_cast<const unsigned char*>(ad.data()), ad.size(), nullptr, o, key);
  out.resize(kNonce + clen);
  return out;
}

Result<std::string> aeadOpen(const unsigned char* key, std::string_view sealed, std::string_view ad,
                             std::string_view what) {
  if (sealed.size() < kNonce + kTag) {
    return Error(plfm::errc::kInternal, std::string(what) + " is truncated");
  }
  std::string out(sealed.size() - kNonce - kTag, '\0');
  unsigned long long mlen = 0;
  const auto* s = reinterpret_cast<const unsigned char*>(sealed.data());
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(reinterpret_cast<unsigned char*>(out.data()),
                                                 &mlen, nullptr, s + kNonce, sealed.size() - kNonce,
                                                 reinterpret_cast<const unsigned char*>(ad.data()),
                                                 ad.size(), s, key) != 0) {
    sodium_memzero(out.data(), out.size());
    return Error(plfm::errc::kInternal,
                 std::string(what) + " failed authentication (wrong key or tampered data)");
  }
  out.resize(mlen);
  return out;
}

std::string contentAd(const VersionRef& r) {
  return "plfm-secrets/v1|" + r.env_id + "|" + r.version_id + "|" + std::to_string(r.number);
}

std::string wrapAd(const VersionRef& r, const std::string& key_id) {
  return "plfm-data-key/v1|" + r.version_id + "|" + key_id;
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Writes `bytes` to a fresh 0600 temp file beside `path` and renames it over.
Result<void> writeKeyAtomically(const std::string& path, const KeyBytes& key, bool exclusive) {
  if (exclusive && ::access(path.c_str(), F_OK) == 0) {
    return Error(plfm::errc::kAlreadyExists, path + " already exists; refusing to overwrite a key");
  }
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  Fd f{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)};
  if (f.fd < 0) return errnoError("create " + tmp, errno);
  if (::write(f.fd, key.data(), key.size()) != static_cast<ssize_t>(key.size()) ||
      ::fsync(f.fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return errnoError("write " + tmp, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return errnoError("rename " + tmp, err);
  }
  // The rename itself must survive a power loss too, or the node restarts
  // with no key for the secrets it already encrypted.
  return fsyncParentDir(path);
}

}  // namespace

KeyBytes& KeyBytes::operator=(KeyBytes&& o) noexcept {
  if (this != &o) {
    sodium_memzero(bytes_.data(), bytes_.size());
    bytes_ = std::move(o.bytes_);
    o.bytes_.clear();
  }
  return *this;
}

KeyBytes::~KeyBytes() { sodium_memzero(bytes_.data(), bytes_.size()); }

Result<MasterKey> loadMasterKey(const std::string& path) {
  PLFM_TRY(sodiumReady());
  if (path.empty()) return keyError("(none)", "no file is configured");
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)};
  if (f.fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      return keyError(path,
                      "does not exist; create one with `plfm-control-plane secrets generate-key "
                      "PATH`");
    }
    if (err == ELOOP) return keyError(path, "is a symbolic link; name the file itself");
    return keyError(path, std::string("cannot be opened: ") + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) return keyError(path, "cannot be inspected");
  if (!S_ISREG(st.st_mode)) return keyError(path, "is not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return keyError(path, std::string("has mode ") + mode +
                              "; it must not be readable or writable by group or others "
                              "(chmod 600)");
  }
  if (st.st_uid != ::geteuid()) {
    return keyError(path, "is owned by uid " + std::to_string(st.st_uid) +
                              ", not by the user running the control plane (uid " +
                              std::to_string(::geteuid()) + ")");
  }
  if (st.st_size != static_cast<off_t>(kMasterKeyBytes)) {
    return keyError(path, "holds " + std::to_string(st.st_size) + " bytes; a master key is " +
                              std::to_string(kMasterKeyBytes) + " random bytes");
  }
  std::string bytes(kMasterKeyBytes, '\0');
  if (::read(f.fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) {
    sodium_memzero(bytes.data(), bytes.size());
    return keyError(path, "could not be read in full");
  }
  MasterKey k;
  k.key = KeyBytes(std::move(bytes));
  k.id = keyIdOf(k.key);
  return k;
}

Result<std::string> generateMasterKeyFile(const std::string& path) {
  PLFM_TRY(sodiumReady());
  std::string bytes(kMasterKeyBytes, '\0');
  randombytes_buf(bytes.data(), bytes.size());
  KeyBytes key(std::move(bytes));
  PLFM_TRY(writeKeyAtomically(path, key, true));
  return keyIdOf(key);
}

Result<void> installKeyFile(const std::string& from, const std::string& path) {
  PLFM_ASSIGN_OR_RETURN(auto k, loadMasterKey(from));
  return writeKeyAtomically(path, k.key, false);
}

// ---- Keyring ----

Result<std::unique_ptr<Keyring>> Keyring::load(std::string path) {
  PLFM_TRY(sodiumReady());
  std::unique_ptr<Keyring> ring(new Keyring(std::move(path)));
  std::lock_guard lock(ring->mu_);
  PLFM_TRY(ring->reloadLocked());
  return ring;
}

Result<void> Keyring::reloadLocked() {
  PLFM_ASSIGN_OR_RETURN(auto primary, loadMasterKey(path_));
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0) {
    primary_ino_ = st.st_ino;
    primary_mtime_ns_ =
        static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  }
  const std::string previous = path_ + std::string(kPreviousSuffix);
  if (::access(previous.c_str(), F_OK) == 0) {
    PLFM_ASSIGN_OR_RETURN(auto prev, loadMasterKey(previous));
    keys_.try_emplace(prev.id, std::move(prev.key));
  }
  primary_id_ = primary.id;
  keys_.insert_or_assign(primary.id, std::move(primary.key));
  return ok();
}

Result<void> Keyring::refreshIfChangedLocked() {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) return ok();  // keep the key we have
  const int64_t mtime =
      static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  if (st.st_ino == primary_ino_ && mtime == primary_mtime_ns_) return ok();
  return reloadLocked();
}

std::string Keyring::primaryId() {
  std::lock_guard lock(mu_);
  (void)refreshIfChangedLocked();
  return primary_id_;
}

Result<Sealed> Keyring::seal(std::string_view plaintext, const VersionRef& ref) {
  std::lock_guard lock(mu_);
  PLFM_TRY(refreshIfChangedLocked());
  const KeyBytes& master = keys_.at(primary_id_);
  unsigned char dk[kDataKey];
  crypto_aead_xchacha20poly1305_ietf_keygen(dk);
  Sealed s;
  s.key_id = primary_id_;
  s.ciphertext = aeadSeal(dk, plaintext, contentAd(ref));
  s.wrapped_key =
      aeadSeal(master.data(), std::string_view(reinterpret_cast<const char*>(dk), sizeof(dk)),
               wrapAd(ref, s.key_id));
  sodium_memzero(dk, sizeof(dk));
  return s;
}

namespace {

Result<std::string> unwrapWith(const KeyBytes& master, const Sealed& sealed,
                               const VersionRef& ref) {
  PLFM_ASSIGN_OR_RETURN(auto dk, aeadOpen(master.data(), sealed.wrapped_key,
                                          wrapAd(ref, sealed.key_id), "the wrapped data key"));
  if (dk.size() != kDataKey) {
    sodium_memzero(dk.data(), dk.size());
    return Error(plfm::errc::kInternal, "the wrapped data key has the wrong size");
  }
  return dk;
}

}  // namespace

Result<std::string> Keyring::open(const Sealed& sealed, const VersionRef& ref) {
  std::string dk;
  {
    std::lock_guard lock(mu_);
    if (!keys_.contains(sealed.key_id)) PLFM_TRY(reloadLocked());
    auto it = keys_.find(sealed.key_id);
    if (it == keys_.end()) {
      return Error(plfm::errc::kInternal, "secrets version " + ref.version_id +
                                              " is wrapped by master key " + sealed.key_id +
                                              ", which this control plane does not have");
    }
    PLFM_ASSIGN_OR_RETURN(dk, unwrapWith(it->second, sealed, ref));
  }
  auto plain = aeadOpen(reinterpret_cast<const unsigned char*>(dk.data()), sealed.ciphertext,
                        contentAd(ref), "secrets version " + ref.version_id);
  sodium_memzero(dk.data(), dk.size());
  return plain;
}

Result<Sealed> Keyring::rewrap(const Sealed& sealed, const VersionRef& ref, const MasterKey& to) {
  std::string dk;
  {
    std::lock_guard lock(mu_);
    if (!keys_.contains(sealed.key_id)) PLFM_TRY(reloadLocked());
    auto it = keys_.find(sealed.key_id);
    if (it == keys_.end()) {
      return Error(plfm::errc::kFailedPrecondition,
                   "secrets version " + ref.version_id + " is wrapped by master key " +
                       sealed.key_id + ", which is neither the configured key nor its .previous");
    }
    PLFM_ASSIGN_OR_RETURN(dk, unwrapWith(it->second, sealed, ref));
  }
  Sealed out;
  out.key_id = to.id;
  out.ciphertext = sealed.ciphertext;
  out.wrapped_key = aeadSeal(to.key.data(), dk, wrapAd(ref, to.id));
  sodium_memzero(dk.data(), dk.size());
  return out;
}

std::string Keyring::fingerprint(std::string_view text) {
  std::lock_guard lock(mu_);
  (void)refreshIfChangedLocked();
  unsigned char sub[crypto_generichash_KEYBYTES];
  crypto_kdf_derive_from_key(sub, sizeof(sub), 2, kMacContext, keys_.at(primary_id_).data());
  unsigned char mac[32];
  crypto_generichash(mac, sizeof(mac), reinterpret_cast<const unsigned char*>(text.data()),
                     text.size(), sub, sizeof(sub));
  sodium_memzero(sub, sizeof(sub));
  return "mac:" + hex(mac, sizeof(mac));
}

}  // namespace plfm::cp::crypto
