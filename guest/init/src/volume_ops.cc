#include "volume_ops.h"

#include <algorithm>
#include <utility>

#include "sys.h"

namespace plfm::init {

namespace gp = guest_proto;

bool FreezeTable::frozen(const std::string& serial) const {
  return std::any_of(active_.begin(), active_.end(),
                     [&](const Entry& e) { return e.serial == serial; });
}

void FreezeTable::add(Entry entry) { active_.push_back(std::move(entry)); }

std::optional<FreezeTable::Entry> FreezeTable::take(uint32_t id, bool& expired) {
  expired = std::find(expired_.begin(), expired_.end(), id) != expired_.end();
  if (expired) std::erase(expired_, id);
  auto it =
      std::find_if(active_.begin(), active_.end(), [&](const Entry& e) { return e.id == id; });
  if (it == active_.end()) return std::nullopt;
  Entry e = std::move(*it);
  active_.erase(it);
  return e;
}

std::vector<FreezeTable::Entry> FreezeTable::expire(uint64_t now_ms) {
  std::vector<Entry> out;
  for (auto it = active_.begin(); it != active_.end();) {
    if (it->thaw_at_ms > now_ms) {
      ++it;
      continue;
    }
    expired_.push_back(it->id);
    if (expired_.size() > kRememberedExpiries) expired_.pop_front();
    out.push_back(std::move(*it));
    it = active_.erase(it);
  }
  return out;
}

std::vector<FreezeTable::Entry> FreezeTable::takeAll() { return std::exchange(active_, {}); }

int FreezeTable::nextTimeoutMs(uint64_t now_ms) const {
  int next = -1;
  for (const Entry& e : active_) {
    const int ms = e.thaw_at_ms <= now_ms ? 0 : static_cast<int>(e.thaw_at_ms - now_ms);
    if (next < 0 || ms < next) next = ms;
  }
  return next;
}

VolumeOps::VolumeOps(std::vector<gp::VolumeMount> volumes, VolumeSys sys,
                     std::function<void(const std::string&)> send, std::function<uint64_t()> now_ms)
    : volumes_(std::move(volumes)),
      sys_(std::move(sys)),
      send_(std::move(send)),
      now_ms_(std::move(now_ms)) {}

const std::string* VolumeOps::mountOf(const std::string& serial) const {
  for (const auto& v : volumes_) {
    if (v.serial == serial) return &v.mount;
  }
  return nullptr;
}

void VolumeOps::failed(uint32_t id, const std::string& message) {
  logLine("volume operation " + std::to_string(id) + " failed: " + message);
  auto frame = gp::encode(gp::VolumeFailed{id, message.substr(0, gp::kMaxVolumeFailureBytes)});
  if (frame) send_(*frame);
}

void VolumeOps::onFrame(const gp::Frame& frame) {
  switch (frame.type) {
    case gp::FrameType::kResizeVolume: {
      auto r = gp::decodeResizeVolume(frame.payload);
      if (!r) {
        logLine("RESIZE_VOLUME: " + r.error().toString());
        return;
      }
      onResize(*r);
      return;
    }
    case gp::FrameType::kFreeze: {
      auto f = gp::decodeFreeze(frame.payload);
      if (!f) {
        logLine("FREEZE: " + f.error().toString());
        return;
      }
      onFreeze(*f);
      return;
    }
    case gp::FrameType::kThaw: {
      auto t = gp::decodeVolumeOpId(frame.payload);
      if (!t) {
        logLine("THAW: " + t.error().toString());
        return;
      }
      onThaw(t->id);
      return;
    }
    default:
      return;
  }
}

void VolumeOps::onResize(const gp::ResizeVolume& r) {
  const std::string* mount = mountOf(r.serial);
  if (mount == nullptr) return failed(r.id, "no volume has serial " + r.serial);
  if (freezes_.frozen(r.serial)) return failed(r.id, "volume " + *mount + " is frozen");
  PendingResize p{r, *mount, now_ms_() + kResizeWaitMs};
  if (!tryResize(p)) resizes_.push_back(std::move(p));
}

bool VolumeOps::tryResize(const PendingResize& p) {
  auto disk = sys_.disk_bytes(p.request.serial);
  if (!disk) {
    failed(p.request.id, "volume " + p.mount + ": " + disk.error());
    return true;
  }
  if (*disk < p.request.size_bytes) {
    if (now_ms_() < p.give_up_ms) return false;
    failed(p.request.id, "volume " + p.mount + ": the disk is " + std::to_string(*disk) +
                             " bytes, not the " + std::to_string(p.request.size_bytes) +
                             " the host set");
    return true;
  }
  auto grown = sys_.grow(p.request.serial, p.mount);
  if (!grown) {
    failed(p.request.id, "volume " + p.mount + ": " + grown.error());
    return true;
  }
  logLine("volume " + p.mount + " is " + std::to_string(*grown) + " bytes");
  send_(gp::encode(gp::VolumeResized{p.request.id, *grown}));
  return true;
}

void VolumeOps::onFreeze(const gp::Freeze& f) {
  const std::string* mount = mountOf(f.serial);
  if (mount == nullptr) return failed(f.id, "no volume has serial " + f.serial);
  if (freezes_.frozen(f.serial)) return failed(f.id, "volume " + *mount + " is already frozen");
  auto fd = sys_.freeze(*mount);
  if (!fd) return failed(f.id, "volume " + *mount + ": " + fd.error());
  freezes_.add({f.id, f.serial, *fd, now_ms_() + gp::kFreezeLimitMs});
  send_(gp::encodeFrozen(gp::VolumeOpId{f.id}));
}

void VolumeOps::onThaw(uint32_t id) {
  bool expired = false;
  auto entry = freezes_.take(id, expired);
  if (!entry) {
    if (expired) {
      send_(gp::encode(gp::Thawed{id, gp::ThawKind::kTimeout}));
    } else {
      failed(id, "no freeze has id " + std::to_string(id));
    }
    return;
  }
  if (auto r = sys_.thaw(entry->fd); !r) return failed(id, "thaw: " + r.error());
  send_(gp::encode(gp::Thawed{id, gp::ThawKind::kOnThaw}));
}

void VolumeOps::onTick() {
  for (const auto& e : freezes_.expire(now_ms_())) {
    logLine("volume freeze " + std::to_string(e.id) + " reached its " +
            std::to_string(gp::kFreezeLimitMs) + " ms limit: thawing");
    if (auto r = sys_.thaw(e.fd); !r) logLine("thaw: " + r.error());
  }
  std::erase_if(resizes_, [&](const PendingResize& p) { return tryResize(p); });
}

int VolumeOps::nextTimeoutMs() const {
  int next = freezes_.nextTimeoutMs(now_ms_());
  if (!resizes_.empty() && (next < 0 || next > kResizePollMs)) next = kResizePollMs;
  return next;
}

void VolumeOps::thawAll() {
  for (const auto& e : freezes_.takeAll()) {
    if (auto r = sys_.thaw(e.fd); !r) logLine("thaw: " + r.error());
  }
}

}  // namespace plfm::init
