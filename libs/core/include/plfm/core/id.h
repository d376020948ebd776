// Typed, prefixed, time-sortable identifiers.
//
// An ID reads `<prefix>_<26 chars>`, e.g. `app_01jdq3v7k2m9x4c8r6t0w5y1zb`. The
// 26 characters are a ULID in lowercase Crockford base32: 48 bits of Unix
// milliseconds, then 80 random bits. IDs therefore sort by creation time as
// plain strings, and IDs made by one generator in the same millisecond are
// strictly increasing (the random part is incremented).
//
// Each resource has its own C++ type, so an AppId can never be passed where
// an EnvId is expected. Parsing is strict: it rejects a wrong prefix, a wrong
// length, uppercase, and characters outside the alphabet (i, l, o, u).
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "plfm/core/clock.h"
#include "plfm/core/result.h"

namespace plfm {

namespace id_internal {
inline constexpr size_t kBodyLen = 26;
// Validates `text` as `<prefix>_<body>`; the error names the reason.
Result<void> validate(std::string_view prefix, std::string_view text);
// Encodes 48-bit ms + 80-bit random as 26 base32 characters.
std::string encodeBody(uint64_t ms, const std::array<uint8_t, 10>& random);
uint64_t decodeTimestampMs(std::string_view body);
}  // namespace id_internal

// A source of ID bodies: time from a Clock, randomness from the OS (or a
// seeded generator in tests). Thread-safe and monotonic.
class IdGenerator {
 public:
  using RandomFn = std::function<void(uint8_t* out, size_t len)>;

  explicit IdGenerator(const Clock& clock, RandomFn random = {});

  // Returns the 26-character body of a fresh ID.
  std::string nextBody();

  // The process-wide generator (real clock, OS randomness).
  static IdGenerator& global();

 private:
  const Clock& clock_;
  RandomFn random_;
  std::mutex mu_;
  uint64_t last_ms_ = 0;
  std::array<uint8_t, 10> last_random_{};
};

template <class Tag>
class TypedId {
 public:
  static constexpr std::string_view kPrefix = Tag::kPrefix;

  TypedId() = default;  // empty; valid() is false

  [[nodiscard]] static Result<TypedId> parse(std::string_view text) {
    PLFM_TRY(id_internal::validate(kPrefix, text));
    return TypedId(std::string(text));
  }

  [[nodiscard]] static TypedId generate(IdGenerator& gen = IdGenerator::global()) {
    std::string s;
    s.reserve(kPrefix.size() + 1 + id_internal::kBodyLen);
    s.append(kPrefix).append("_").append(gen.nextBody());
    return TypedId(std::move(s));
  }

  [[nodiscard]] bool valid() const { return !value_.empty(); }
  [[nodiscard]] const std::string& str() const { return value_; }
  [[nodiscard]] uint64_t timestampMs() const {
    return id_internal::decodeTimestampMs(std::string_view(value_).substr(kPrefix.size() + 1));
  }

  auto operator<=>(const TypedId&) const = default;

 private:
  explicit TypedId(std::string v) : value_(std::move(v)) {}
  std::string value_;
};

// `Name` is declared, not evaluated, so it cannot be parenthesized.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define PLFM_DEFINE_ID(Name, prefix)                    \
  struct Name##Tag {                                    \
    static constexpr std::string_view kPrefix = prefix; \
  };                                                    \
  using Name = ::plfm::TypedId<Name##Tag>
// NOLINTEND(bugprone-macro-parentheses)

PLFM_DEFINE_ID(OrgId, "org");
PLFM_DEFINE_ID(UserId, "usr");
PLFM_DEFINE_ID(TokenId, "tok");
PLFM_DEFINE_ID(AppId, "app");
PLFM_DEFINE_ID(EnvId, "env");
PLFM_DEFINE_ID(ReleaseId, "rel");
PLFM_DEFINE_ID(DeployId, "dep");
PLFM_DEFINE_ID(NodeId, "node");
PLFM_DEFINE_ID(InstanceId, "inst");
PLFM_DEFINE_ID(RouteId, "route");
PLFM_DEFINE_ID(EventId, "evt");
PLFM_DEFINE_ID(RequestId, "req");
PLFM_DEFINE_ID(SecretVersionId, "sv");
PLFM_DEFINE_ID(VolumeId, "vol");
PLFM_DEFINE_ID(SnapshotId, "snap");  // a volume snapshot
PLFM_DEFINE_ID(VolumeOpId, "vop");   // a volume restore or verify op
PLFM_DEFINE_ID(ExecSessionId, "exec");
PLFM_DEFINE_ID(EnrollmentId, "enr");
PLFM_DEFINE_ID(DomainId, "dom");

}  // namespace plfm

template <class Tag>
struct std::hash<plfm::TypedId<Tag>> {
  size_t operator()(const plfm::TypedId<Tag>& id) const noexcept {
    return std::hash<std::string>()(id.str());
  }
};
