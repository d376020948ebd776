// vt-init's side of the volume operations on a running guest
// (docs/specs/runtime/host-channel.md §Volume operations): RESIZE_VOLUME
// grows a mounted filesystem once its disk shows the new size; FREEZE syncs
// and freezes one for a snapshot and THAW thaws it, and a freeze ends by
// itself after kFreezeLimitMs whatever the host does, so a host that dies
// mid-snapshot cannot wedge the workload's writes.
//
// VolumeOps makes the decisions; the syscalls are behind VolumeSys so that
// unit tests drive it with fakes and a fake clock (volumes.cc has the real
// one, realVolumeSys()). Single-threaded: PID 1's loop calls onFrame() for
// each volume frame, and onTick() when nextTimeoutMs() says so.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "plan.h"
#include "plfm/guest_proto/guest_proto.h"

namespace plfm::init {

struct VolumeSys {
  // The size of the disk with `serial` (BLKGETSIZE64).
  std::function<Result<uint64_t>(const std::string& serial)> disk_bytes;
  // Grows the filesystem mounted at `mount` on the disk `serial` to the whole
  // disk; returns its size in bytes afterwards.
  std::function<Result<uint64_t>(const std::string& serial, const std::string& mount)> grow;
  // syncfs + FIFREEZE of the filesystem at `mount`; returns an fd that thaw takes.
  std::function<Result<int>(const std::string& mount)> freeze;
  // FITHAW through that fd, then closes it.
  std::function<Result<void>(int fd)> thaw;
};

// The syscalls (volumes.cc).
[[nodiscard]] VolumeSys realVolumeSys();

// The freezes in progress, and the ids of those the limit ended (the last
// few, so that a late THAW is answered THAWED kind 2).
class FreezeTable {
 public:
  struct Entry {
    uint32_t id = 0;
    std::string serial;
    int fd = -1;
    uint64_t thaw_at_ms = 0;
  };
  [[nodiscard]] bool frozen(const std::string& serial) const;
  void add(Entry entry);
  // For THAW `id`: the active freeze, removed (the caller thaws it), or
  // nullopt. `expired` turns true when the limit had already ended it.
  [[nodiscard]] std::optional<Entry> take(uint32_t id, bool& expired);
  // Removes and returns the freezes whose limit is at or before `now_ms`;
  // their ids are remembered as expired.
  [[nodiscard]] std::vector<Entry> expire(uint64_t now_ms);
  // Every active freeze, removed (shutdown thaws them all).
  [[nodiscard]] std::vector<Entry> takeAll();
  // Ms until the next limit, -1 when nothing is frozen.
  [[nodiscard]] int nextTimeoutMs(uint64_t now_ms) const;

  static constexpr size_t kRememberedExpiries = 16;

 private:
  std::vector<Entry> active_;
  std::deque<uint32_t> expired_;
};

class VolumeOps {
 public:
  // How long a RESIZE_VOLUME waits for the disk to show its new size.
  static constexpr uint64_t kResizeWaitMs = 5000;
  static constexpr int kResizePollMs = 20;

  VolumeOps(std::vector<guest_proto::VolumeMount> volumes, VolumeSys sys,
            std::function<void(const std::string&)> send, std::function<uint64_t()> now_ms);

  // RESIZE_VOLUME, FREEZE or THAW; anything else is ignored.
  void onFrame(const guest_proto::Frame& frame);
  // Thaws freezes past their limit and retries resizes waiting for the disk.
  void onTick();
  // Ms until onTick() has something to do; -1: nothing pending.
  [[nodiscard]] int nextTimeoutMs() const;
  // Thaws everything (before the workload is stopped and the VM powers off).
  void thawAll();

 private:
  struct PendingResize {
    guest_proto::ResizeVolume request;
    std::string mount;
    uint64_t give_up_ms = 0;
  };
  void onResize(const guest_proto::ResizeVolume& r);
  void onFreeze(const guest_proto::Freeze& f);
  void onThaw(uint32_t id);
  // True when it answered (grown, or failed for good).
  bool tryResize(const PendingResize& p);
  void failed(uint32_t id, const std::string& message);
  [[nodiscard]] const std::string* mountOf(const std::string& serial) const;

  std::vector<guest_proto::VolumeMount> volumes_;
  VolumeSys sys_;
  std::function<void(const std::string&)> send_;
  std::function<uint64_t()> now_ms_;
  FreezeTable freezes_;
  std::vector<PendingResize> resizes_;
};

}  // namespace plfm::init
