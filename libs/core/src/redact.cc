#include "plfm/core/redact.h"

#include <algorithm>
#include <mutex>

#include "plfm/core/strings.h"

namespace plfm {

Redactor::Handle& Redactor::Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    owner_ = o.owner_;
    value_ = std::move(o.value_);
    o.owner_ = nullptr;
  }
  return *this;
}

void Redactor::Handle::reset() {
  if (owner_ != nullptr) {
    owner_->remove(value_);
    owner_ = nullptr;
    // Overwrite our copy of the secret before the memory is released.
    std::fill(value_.begin(), value_.end(), '\0');
    value_.clear();
  }
}

Redactor::Handle Redactor::add(std::string_view secret) {
  if (secret.empty()) return Handle();
  std::unique_lock lock(mu_);
  if (refs_[std::string(secret)]++ == 0) rebuildLocked();
  return Handle(this, std::string(secret));
}

void Redactor::remove(const std::string& secret) {
  std::unique_lock lock(mu_);
  auto it = refs_.find(secret);
  if (it == refs_.end()) return;
  if (--it->second == 0) {
    refs_.erase(it);
    rebuildLocked();
  }
}

void Redactor::rebuildLocked() {
  for (auto& p : patterns_) std::fill(p.begin(), p.end(), '\0');
  patterns_.clear();
  for (const auto& [value, _] : refs_) {
    patterns_.push_back(value);
    std::string escaped = jsonEscape(value);
    if (escaped != value) patterns_.push_back(std::move(escaped));
  }
  std::sort(patterns_.begin(), patterns_.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() > b.size() : a < b;
  });
  first_byte_.fill(false);
  for (const auto& p : patterns_) first_byte_[static_cast<unsigned char>(p[0])] = true;
  count_.store(refs_.size(), std::memory_order_release);
}

bool Redactor::redactInto(std::string_view text, std::string& out) const {
  if (empty()) return false;
  std::shared_lock lock(mu_);
  bool matched = false;
  size_t copied = 0;  // text[0, copied) is already in `out`
  size_t i = 0;
  while (i < text.size()) {
    if (first_byte_[static_cast<unsigned char>(text[i])]) {
      const std::string* hit = nullptr;
      for (const auto& p : patterns_) {  // longest first
        if (text.compare(i, p.size(), p) == 0) {
          hit = &p;
          break;
        }
      }
      if (hit != nullptr) {
        if (!matched) {
          out.clear();
          out.reserve(text.size());
          matched = true;
        }
        out.append(text.substr(copied, i - copied));
        out.append(kMask);
        i += hit->size();
        copied = i;
        continue;
      }
    }
    ++i;
  }
  if (matched) out.append(text.substr(copied));
  return matched;
}

std::string Redactor::redact(std::string_view text) const {
  std::string out;
  if (!redactInto(text, out)) return std::string(text);
  return out;
}

Redactor& Redactor::global() {
  static Redactor r;
  return r;
}

}  // namespace plfm
