#include "plfm/core/id.h"

#include <sys/random.h>

#include <cerrno>

#include "plfm/core/assert.h"

namespace plfm {
namespace id_internal {
namespace {

constexpr std::string_view kAlphabet = "0123456789abcdefghjkmnpqrstvwxyz";

// Maps a character to its 5-bit value, or -1 when it is outside the alphabet.
constexpr std::array<int8_t, 256> makeDecodeTable() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (size_t i = 0; i < kAlphabet.size(); ++i) {
    t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
  }
  return t;
}
constexpr auto kDecode = makeDecodeTable();

}  // namespace

Result<void> validate(std::string_view prefix, std::string_view text) {
  auto fail = [&](const std::string& why) {
    return Error(errc::kInvalidArgument, "invalid " + std::string(prefix) + " id '" +
                                             std::string(text.substr(0, 64)) + "': " + why)
        .with("expected_prefix", std::string(prefix) + "_");
  };
  const size_t want = prefix.size() + 1 + kBodyLen;
  if (text.size() < prefix.size() + 1 || text.substr(0, prefix.size()) != prefix ||
      text[prefix.size()] != '_') {
    return fail("must start with '" + std::string(prefix) + "_'");
  }
  if (text.size() != want) {
    return fail("must be " + std::to_string(want) + " characters long, got " +
                std::to_string(text.size()));
  }
  std::string_view body = text.substr(prefix.size() + 1);
  for (size_t i = 0; i < body.size(); ++i) {
    if (kDecode[static_cast<unsigned char>(body[i])] < 0) {
      return fail("character " + std::to_string(prefix.size() + 1 + i + 1) +
                  " is outside the id alphabet [0-9a-z without i, l, o, u]");
    }
  }
  // 26 characters carry 130 bits; the top two must be zero for a 128-bit ULID.
  if (kDecode[static_cast<unsigned char>(body[0])] > 7) {
    return fail("timestamp overflows 48 bits");
  }
  return ok();
}

std::string encodeBody(uint64_t ms, const std::array<uint8_t, 10>& random) {
  // 128-bit big-endian value: 6 bytes timestamp, 10 bytes random.
  std::array<uint8_t, 16> bytes{};
  for (int i = 0; i < 6; ++i) bytes[i] = static_cast<uint8_t>(ms >> (8 * (5 - i)));
  for (int i = 0; i < 10; ++i) bytes[6 + i] = random[i];
  std::string out(kBodyLen, '0');
  // Emit 5 bits at a time from the top, with 2 leading zero bits (130 bits).
  unsigned bitpos = 0;  // position in the 130-bit stream
  for (size_t c = 0; c < kBodyLen; ++c) {
    unsigned v = 0;
    for (int b = 0; b < 5; ++b, ++bitpos) {
      unsigned bit = 0;
      if (bitpos >= 2) {
        unsigned p = bitpos - 2;
        bit = (bytes[p / 8] >> (7 - p % 8)) & 1U;
      }
      v = (v << 1) | bit;
    }
    out[c] = kAlphabet[v];
  }
  return out;
}

uint64_t decodeTimestampMs(std::string_view body) {
  // The first 10 characters carry 50 bits: 2 zero bits and 48 bits of ms.
  uint64_t v = 0;
  for (size_t i = 0; i < 10 && i < body.size(); ++i) {
    v = (v << 5) | static_cast<uint64_t>(kDecode[static_cast<unsigned char>(body[i])]);
  }
  return v & ((uint64_t{1} << 48) - 1);
}

}  // namespace id_internal

namespace {
void osRandom(uint8_t* out, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = getrandom(out + got, len - got, 0);
    if (n < 0 && errno == EINTR) continue;
    PLFM_ASSERT(n > 0, "getrandom failed");
    got += static_cast<size_t>(n);
  }
}
}  // namespace

IdGenerator::IdGenerator(const Clock& clock, RandomFn random)
    : clock_(clock), random_(random ? std::move(random) : RandomFn(osRandom)) {}

std::string IdGenerator::nextBody() {
  const auto ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now().time_since_epoch())
          .count());
  std::lock_guard lock(mu_);
  if (ms > last_ms_) {
    last_ms_ = ms;
    random_(last_random_.data(), last_random_.size());
  } else {
    // Same millisecond (or the clock went back): keep the last timestamp and
    // increment the random part so IDs stay strictly increasing.
    int i = static_cast<int>(last_random_.size()) - 1;
    while (i >= 0 && ++last_random_[static_cast<size_t>(i)] == 0) --i;
    if (i < 0) ++last_ms_;  // 80-bit overflow: borrow the next millisecond
  }
  return id_internal::encodeBody(last_ms_, last_random_);
}

IdGenerator& IdGenerator::global() {
  static IdGenerator gen(RealClock::instance());
  return gen;
}

}  // namespace plfm
