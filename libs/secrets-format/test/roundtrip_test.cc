// Property tests: random maps round-trip through encode/decode, canonical
// files re-encode to themselves, and mutated files either fail or are still
// canonical. The PRNG is seeded, so every run checks the same cases.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

#include "plfm/secrets/dotenv.h"
#include "plfm/secrets/format.h"

namespace plfm::secrets {
namespace {

class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}

  size_t below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

  std::string key() {
    static constexpr std::string_view kStart = "ABCDEFGHIJKLMNOPQRSTUVWXYZ_";
    static constexpr std::string_view kRest = "ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789";
    std::string k(1, kStart[below(kStart.size())]);
    const size_t len = below(4) == 0 ? below(kMaxKeyBytes) : below(12);
    for (size_t i = 0; i < len; ++i) k.push_back(kRest[below(kRest.size())]);
    return k;
  }

  // Values mix every kind of byte the escaping treats differently.
  std::string value() {
    std::string v;
    const size_t len = below(8) == 0 ? 0 : below(4) == 0 ? below(2000) : below(40);
    const size_t style = below(4);
    while (v.size() < len) {
      switch (style == 3 ? below(3) : style) {
        case 0:  // any byte
          v.push_back(static_cast<char>(below(256)));
          break;
        case 1: {  // the bytes with escapes, and ASCII
          static constexpr std::string_view kSpecial = "\\\"$`\n\r\t=#' \x01\x7f";
          v.push_back(below(2) == 0 ? kSpecial[below(kSpecial.size())]
                                    : static_cast<char>(0x20 + below(0x5f)));
          break;
        }
        default:  // a code point as UTF-8, or a fragment of one
          appendCodePoint(v, below(5) == 0);
          break;
      }
    }
    return v;
  }

  SecretMap map() {
    SecretMap m;
    const size_t n = below(6) == 0 ? 0 : below(20);
    for (size_t i = 0; i < n; ++i) m[key()] = value();
    return m;
  }

 private:
  void appendCodePoint(std::string& v, bool truncate) {
    uint32_t cp = 0;
    do {
      cp = static_cast<uint32_t>(below(4) == 0 ? below(0x110000) : below(0x800));
    } while (cp >= 0xD800 && cp <= 0xDFFF);
    std::string enc;
    if (cp < 0x80) {
      enc.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      enc.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      enc.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      enc.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      enc.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      enc.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      enc.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      enc.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      enc.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      enc.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    if (truncate && enc.size() > 1) enc.resize(1 + below(enc.size() - 1));
    v += enc;
  }

  std::mt19937_64 rng_;
};

// Independent of the library's own check: decode each code point and reject
// overlongs, surrogates and values above U+10FFFF.
bool wellFormedUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? b : b & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c >> 6) != 2) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

TEST(SecretsRoundTripTest, RandomMapsRoundTrip) {
  Gen gen(20240611);
  for (int i = 0; i < 2000; ++i) {
    const SecretMap m = gen.map();
    auto encoded = encode(m);
    ASSERT_TRUE(encoded) << encoded.error().toString();
    auto decoded = decode(*encoded);
    ASSERT_TRUE(decoded) << "case " << i << ": " << decoded.error().toString();
    ASSERT_EQ(*decoded, m) << "case " << i;
    auto again = encode(*decoded);
    ASSERT_TRUE(again);
    ASSERT_EQ(*again, *encoded);
  }
}

TEST(SecretsRoundTripTest, EveryByteRoundTripsAlone) {
  for (int b = 0; b < 256; ++b) {
    const SecretMap m = {{"B", std::string(1, static_cast<char>(b))}};
    auto encoded = encode(m);
    ASSERT_TRUE(encoded);
    auto decoded = decode(*encoded);
    ASSERT_TRUE(decoded) << b << ": " << decoded.error().toString();
    EXPECT_EQ(*decoded, m) << b;
  }
}

TEST(SecretsRoundTripTest, EncodedFilesAreValidUtf8Text) {
  Gen gen(7);
  for (int i = 0; i < 500; ++i) {
    auto encoded = encode(gen.map());
    ASSERT_TRUE(encoded);
    // No control byte but the line feeds, and well-formed UTF-8 (an
    // all-bytes value would otherwise show up here).
    for (unsigned char c : *encoded) {
      ASSERT_TRUE(c == '\n' || (c >= 0x20 && c != 0x7F)) << static_cast<int>(c);
    }
    ASSERT_TRUE(wellFormedUtf8(*encoded));
  }
}

TEST(SecretsRoundTripTest, MutatedFilesFailOrStayCanonical) {
  Gen gen(99);
  for (int i = 0; i < 3000; ++i) {
    auto encoded = encode(gen.map());
    ASSERT_TRUE(encoded);
    std::string file = *encoded;
    const size_t edits = 1 + gen.below(3);
    for (size_t e = 0; e < edits && !file.empty(); ++e) {
      const size_t at = gen.below(file.size());
      switch (gen.below(3)) {
        case 0:
          file[at] = static_cast<char>(gen.below(256));
          break;
        case 1:
          file.erase(at, 1);
          break;
        default:
          file.insert(at, 1, static_cast<char>(gen.below(256)));
          break;
      }
    }
    auto decoded = decode(file);
    if (!decoded) {
      EXPECT_GE(decoded.error().line, 1U);
      EXPECT_GE(decoded.error().column, 1U);
      continue;
    }
    auto again = encode(*decoded);
    ASSERT_TRUE(again);
    ASSERT_EQ(*again, file) << "case " << i;
  }
}

TEST(SecretsRoundTripTest, SecretsFilesImportAsDotenv) {
  // A platform secrets file is valid dotenv, so `vt secrets import` reads
  // back exactly what encode() wrote.
  Gen gen(31337);
  for (int i = 0; i < 1000; ++i) {
    const SecretMap m = gen.map();
    auto encoded = encode(m);
    ASSERT_TRUE(encoded);
    auto imported = parseDotenv(*encoded);
    ASSERT_TRUE(imported) << "case " << i << ": " << imported.error().toString();
    ASSERT_EQ(*imported, m) << "case " << i;
  }
}

}  // namespace
}  // namespace plfm::secrets
