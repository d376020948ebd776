// Redactor masks registered secret values in text. Every log sink built by
// plfm::log runs its output through the global Redactor, so a secret that
// reaches a log line by accident is written as "[REDACTED]" instead.
//
// Register a value for as long as it is live in the process:
//   auto guard = Redactor::global().add(value);   // masked until guard dies
//
// Both the raw value and its JSON-escaped form are masked, because log lines
// are JSON and a value containing quotes or newlines appears escaped there.
// Masking is a last line of defence: code must still never log secrets.
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace plfm {

class Redactor {
 public:
  static constexpr std::string_view kMask = "[REDACTED]";

  // Unregisters its value on destruction. Move-only.
  class Handle {
   public:
    Handle() = default;
    Handle(Handle&& o) noexcept : owner_(o.owner_), value_(std::move(o.value_)) {
      o.owner_ = nullptr;
    }
    Handle& operator=(Handle&& o) noexcept;
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() { reset(); }
    void reset();

   private:
    friend class Redactor;
    Handle(Redactor* owner, std::string value) : owner_(owner), value_(std::move(value)) {}
    Redactor* owner_ = nullptr;
    std::string value_;
  };

  Redactor() = default;
  Redactor(const Redactor&) = delete;
  Redactor& operator=(const Redactor&) = delete;

  // Registers `secret` (ignored when empty). The same value may be
  // registered several times; it stays masked until every handle is gone.
  [[nodiscard]] Handle add(std::string_view secret);

  // Returns `text` with every registered value replaced by kMask. Longer
  // values win where registered values overlap.
  [[nodiscard]] std::string redact(std::string_view text) const;
  // Like redact(), but returns false without copying when nothing matched.
  bool redactInto(std::string_view text, std::string& out) const;

  [[nodiscard]] bool empty() const { return count_.load(std::memory_order_acquire) == 0; }

  static Redactor& global();

 private:
  void remove(const std::string& secret);
  void rebuildLocked();

  mutable std::shared_mutex mu_;
  std::map<std::string, int> refs_;    // value -> registrations
  std::vector<std::string> patterns_;  // raw + escaped forms, longest first
  std::array<bool, 256> first_byte_{};
  std::atomic<size_t> count_{0};
};

}  // namespace plfm
