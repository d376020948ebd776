#include "plfm/relay_auth/relay_auth.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "plfm/core/process.h"

namespace plfm::relay {
namespace {

static_assert(crypto_sign_PUBLICKEYBYTES == 32);
static_assert(crypto_sign_SECRETKEYBYTES == 64);
static_assert(crypto_sign_SEEDBYTES == 32);
static_assert(crypto_sign_BYTES == 64);

Result<void> sodiumReady() {
  if (sodium_init() < 0) return Error(errc::kInternal, "libsodium failed to initialize");
  return ok();
}

std::string hex(const unsigned char* p, size_t n) {
  std::string out(n * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), p, n);
  out.pop_back();
  return out;
}

// Exactly 2*n lowercase hex digits into `out`.
bool unhex(std::string_view text, unsigned char* out, size_t n) {
  if (text.size() != n * 2) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  size_t got = 0;
  return sodium_hex2bin(out, n, text.data(), text.size(), nullptr, &got, nullptr) == 0 && got == n;
}

Error keyFileError(const std::string& path, const std::string& why) {
  return Error(errc::kFailedPrecondition, "relay signing key file " + path + ": " + why)
      .with("field", "relay_signing_key_file");
}

struct Fd {
  int fd = -1;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Reads the seed of an existing key file, refusing anything another user
// could have read or planted.
Result<std::string> readSeedFile(const std::string& path) {
  const Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (f.fd < 0) {
    const int err = errno;
    if (err == ELOOP) return keyFileError(path, "is a symbolic link; name the file itself");
    return keyFileError(path, std::string("cannot be opened: ") + std::strerror(err));
  }
  struct stat st {};
  if (::fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return keyFileError(path, "is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return keyFileError(path, std::string("has mode ") + mode + "; it must be 0600 (chmod 600)");
  }
  if (st.st_uid != ::geteuid()) {
    return keyFileError(path, "is owned by uid " + std::to_string(st.st_uid) +
                                  ", not by the user running the control plane");
  }
  if (st.st_size != static_cast<off_t>(crypto_sign_SEEDBYTES)) {
    return keyFileError(path, "holds " + std::to_string(st.st_size) +
                                  " bytes; a relay signing key is 32 random bytes");
  }
  std::string seed(crypto_sign_SEEDBYTES, '\0');
  if (::read(f.fd, seed.data(), seed.size()) != static_cast<ssize_t>(seed.size())) {
    sodium_memzero(seed.data(), seed.size());
    return keyFileError(path, "could not be read in full");
  }
  return seed;
}

bool oneLine(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

}  // namespace

std::string signingInput(const SignedRequest& r) {
  return "plfm-relay/v1\n" + r.method + "\n" + r.target + "\n" + r.node_id + "\n" + r.instance_id +
         "\n" + std::to_string(r.expires_unix);
}

Result<PublicKey> PublicKey::parse(std::string_view text) {
  PublicKey k;
  if (!text.starts_with(kPublicKeyPrefix) ||
      !unhex(text.substr(kPublicKeyPrefix.size()), k.bytes_.data(), k.bytes_.size())) {
    return Error(errc::kInvalidArgument, "not a relay public key (ed25519: and 64 hex digits)");
  }
  return k;
}

std::string PublicKey::text() const {
  return std::string(kPublicKeyPrefix) + hex(bytes_.data(), bytes_.size());
}

Result<SigningKey> SigningKey::fromSeed(std::string_view seed) {
  PLFM_TRY(sodiumReady());
  if (seed.size() != crypto_sign_SEEDBYTES) {
    return Error(errc::kInvalidArgument, "a relay signing key seed is 32 bytes");
  }
  SigningKey k;
  std::array<unsigned char, 32> pk{};
  crypto_sign_seed_keypair(pk.data(), k.secret_.data(),
                           reinterpret_cast<const unsigned char*>(seed.data()));
  PLFM_ASSIGN_OR_RETURN(
      k.public_, PublicKey::parse(std::string(kPublicKeyPrefix) + hex(pk.data(), pk.size())));
  return k;
}

Result<SigningKey> SigningKey::loadOrCreate(const std::string& path) {
  PLFM_TRY(sodiumReady());
  std::string seed;
  if (::access(path.c_str(), F_OK) == 0 || errno != ENOENT) {
    PLFM_ASSIGN_OR_RETURN(seed, readSeedFile(path));
  } else {
    seed.assign(crypto_sign_SEEDBYTES, '\0');
    randombytes_buf(seed.data(), seed.size());
    // writeFileAtomic fsyncs the file, then its directory: a power loss
    // never leaves agents pinned to a key the control plane lost.
    if (auto w = writeFileAtomic(path, seed, 0600); !w) {
      sodium_memzero(seed.data(), seed.size());
      return keyFileError(path, "cannot be created: " + w.error().message());
    }
  }
  auto key = fromSeed(seed);
  sodium_memzero(seed.data(), seed.size());
  return key;
}

SigningKey::SigningKey(SigningKey&& o) noexcept : secret_(o.secret_), public_(o.public_) {
  sodium_memzero(o.secret_.data(), o.secret_.size());
}

SigningKey& SigningKey::operator=(SigningKey&& o) noexcept {
  if (this != &o) {
    secret_ = o.secret_;
    public_ = o.public_;
    sodium_memzero(o.secret_.data(), o.secret_.size());
  }
  return *this;
}

SigningKey::~SigningKey() { sodium_memzero(secret_.data(), secret_.size()); }

std::string SigningKey::sign(const SignedRequest& r) const {
  const std::string input = signingInput(r);
  std::array<unsigned char, crypto_sign_BYTES> sig{};
  crypto_sign_detached(sig.data(), nullptr, reinterpret_cast<const unsigned char*>(input.data()),
                       input.size(), secret_.data());
  return hex(sig.data(), sig.size());
}

Result<void> verify(const PublicKey& key, const SignedRequest& r, std::string_view signature_hex,
                    int64_t now_unix) {
  PLFM_TRY(sodiumReady());
  auto refuse = [](const std::string& why) {
    return Error(errc::kUnauthenticated, "relay request refused: " + why);
  };
  if (!oneLine(r.method) || !oneLine(r.target) || !oneLine(r.node_id) || !oneLine(r.instance_id) ||
      r.node_id.empty() || r.instance_id.empty()) {
    return refuse("malformed request");
  }
  std::array<unsigned char, crypto_sign_BYTES> sig{};
  if (!unhex(signature_hex, sig.data(), sig.size())) {
    return refuse("missing or malformed signature");
  }
  const std::string input = signingInput(r);
  if (crypto_sign_verify_detached(sig.data(), reinterpret_cast<const unsigned char*>(input.data()),
                                  input.size(), key.bytes().data()) != 0) {
    return refuse("bad signature (another key, node, instance or path)");
  }
  if (r.expires_unix < now_unix - kSkewSeconds) return refuse("signature expired");
  if (r.expires_unix > now_unix + kTtlSeconds + kSkewSeconds) {
    return refuse("signature expires too far in the future");
  }
  return ok();
}

}  // namespace plfm::relay
