// FakeRuntime: a MicroVmRuntime for unit tests, with no VMM and no VM. start()
// listens on a Unix socket at RUN_DIR/ch.sock (the VmHandle's
// channel_socket, where GuestChannel::connect looks) and runs a FakeGuest on
// a thread: it speaks libs/guest-proto like vt-init (HELLO, CONFIG, READY,
// EXIT, PONG, STATUS, SHUTDOWN, and exec sessions that exit at once) with knobs for the ways a
// guest goes wrong.
//
//   FakeRuntime rt;
//   rt.guest().exit_after = 100ms;          // the next VM's guest
//   InstanceWorker worker(host, record);    // host.runtime() returns rt
//   ... rt.starts(), rt.vm(id)->shutdowns, rt.requestStops(), rt.kills()
//
// "Alive" is a flag: the guest powering off (EXIT, an ERROR frame, SHUTDOWN)
// or kill() clears it. The VmHandle's pid is above the kernel's PID_MAX_LIMIT,
// so nothing that acts on it (cgroup placement) can touch a real process; no
// process is started. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/microvm_runtime.h"

namespace plfm::agent::testing {

struct FakeGuestOptions {
  // HELLO's exec_revision (0: a guest without exec sessions).
  uint32_t exec_revision = 0;
  // HELLO's volume_revision (0: a guest without online resize and freeze).
  uint32_t volume_revision = 0;
  // RESIZE_VOLUME is answered VOLUME_FAILED with this message (empty:
  // VOLUME_RESIZED with the requested size).
  std::string resize_error;
  // Takes CONFIG and then never says READY.
  bool never_ready = false;
  // Answers CONFIG with an ERROR frame carrying this message, then EXIT
  // (exited, 1) as vt-init does, and powers off.
  std::string boot_error;
  // After READY: sends EXIT (exited, exit_code) after this long and powers off.
  std::optional<std::chrono::milliseconds> exit_after;
  int exit_code = 0;
  // After READY: stops reading the channel and floods it with PINGs, so the
  // agent's PONGs back up until its sends miss their deadline.
  bool stall_after_ready = false;
  // Ignores SHUTDOWN (a hung workload); otherwise it answers EXIT
  // (killed by signal 15) and powers off.
  bool ignore_shutdown = false;
  // Each EXEC_OPEN (exec_revision != 0) is answered at once: exec_output on
  // stdout (when not empty), then EXEC_EXIT exited with exec_exit_code.
  std::string exec_output;
  int exec_exit_code = 0;
  // Ignores the runtime's requestStop (a guest that does not power off on
  // the ACPI button); otherwise requestStop powers it off.
  bool ignore_power_button = false;
};

// One started VM and what its guest saw.
struct FakeVm {
  FakeGuestOptions options;
  std::string instance_id;
  std::string channel_socket;
  std::vector<runtime::VmDrive> drives;   // the VmSpec's, as given
  std::atomic<size_t> config_volumes{0};  // CONFIG's volumes (set before configs counts it)
  std::string first_volume;               // "<mount> <serial>" of CONFIG's first volume, same
  std::atomic<bool> running{true};
  std::atomic<int> configs{0};    // CONFIG frames received
  std::atomic<int> shutdowns{0};  // SHUTDOWN frames received
  std::atomic<int> pongs{0};      // PONG frames received
  std::atomic<int> execs{0};      // EXEC_OPEN frames received
  std::atomic<bool> ready_sent{false};
  // "<serial> <size_bytes>" of each RESIZE_VOLUME (read once the guest answered).
  std::vector<std::string> resizes;
  std::atomic<int> freezes{0};  // FREEZE frames (answered FROZEN; THAW answered THAWED)
  std::atomic<int> listen_fd{-1};
  std::atomic<int> conn_fd{-1};
  std::atomic<bool> stop{false};
  pid_t pid = -1;
  std::thread guest;
};

class FakeRuntime final : public runtime::MicroVmRuntime {
 public:
  FakeRuntime() = default;
  ~FakeRuntime() override;
  FakeRuntime(const FakeRuntime&) = delete;
  FakeRuntime& operator=(const FakeRuntime&) = delete;

  // The guest options the next started VM gets.
  FakeGuestOptions& guest() { return next_guest_; }
  // When set, start() fails with this message (nothing started).
  void failStarts(std::string message) { start_error_ = std::move(message); }

  [[nodiscard]] std::string_view name() const override { return "fake"; }
  [[nodiscard]] Result<runtime::VmHandle> start(const runtime::VmSpec& spec) override;
  [[nodiscard]] bool alive(const runtime::VmHandle& vm) const override;
  [[nodiscard]] Result<void> requestStop(const runtime::VmHandle& vm) override;
  [[nodiscard]] Result<void> kill(const runtime::VmHandle& vm) override;
  // Records "<drive id> <size>" (driveResizes()).
  [[nodiscard]] Result<void> resizeDrive(const runtime::VmHandle& vm, const runtime::VmDrive& drive,
                                         uint64_t size_bytes) override;
  [[nodiscard]] std::vector<std::string> driveResizes() const;

  [[nodiscard]] int starts() const { return starts_.load(); }
  [[nodiscard]] int requestStops() const { return request_stops_.load(); }
  [[nodiscard]] int kills() const { return kills_.load(); }
  // The VM started n-th (0-based), or nullptr.
  [[nodiscard]] std::shared_ptr<FakeVm> vm(int n) const;

 private:
  [[nodiscard]] std::shared_ptr<FakeVm> find(const runtime::VmHandle& vm) const;
  static void powerOff(FakeVm& vm);
  static void runGuest(FakeVm& vm);

  FakeGuestOptions next_guest_;
  std::string start_error_;
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<FakeVm>> vms_;  // guarded by mu_; in start order
  std::atomic<int> starts_{0};
  std::atomic<int> request_stops_{0};
  std::atomic<int> kills_{0};
  std::vector<std::string> drive_resizes_;  // guarded by mu_
};

}  // namespace plfm::agent::testing
