// Typed payloads of the host<->guest channel (docs/specs/runtime/
// host-channel.md §Messages). Each message has encode() returning a whole
// frame (header included, ready to write) and a decodeX() that parses a
// Frame's payload. Decoders validate as strictly as encoders: a CONFIG that
// decodes is one vt-init can act on (absolute workdir, sane MTU, ...).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/guest_proto/constants.h"
#include "plfm/guest_proto/error.h"
#include "plfm/guest_proto/frame.h"

namespace plfm::guest_proto {

using Ipv6Address = std::array<uint8_t, 16>;
using Ipv4Address = std::array<uint8_t, 4>;

// inet_pton/inet_ntop wrappers, for tests and for the agent's plan -> CONFIG.
[[nodiscard]] Result<Ipv6Address> parseIpv6(std::string_view text);
[[nodiscard]] Result<Ipv4Address> parseIpv4(std::string_view text);
[[nodiscard]] std::string formatIpv6(const Ipv6Address& address);
[[nodiscard]] std::string formatIpv4(const Ipv4Address& address);

// fe80::1, the gateway every guest routes through (DESIGN §5 Networking).
inline constexpr Ipv6Address kDefaultIpv6Gateway = {0xfe, 0x80, 0, 0, 0, 0, 0, 0,
                                                    0,    0,    0, 0, 0, 0, 0, 1};

struct Hello {
  uint32_t protocol_version = kProtocolVersion;
  std::string init_version;    // "vt-init 0.1.0"
  std::string kernel_release;  // uname -r
  uint64_t boot_ns = 0;        // CLOCK_BOOTTIME at the first HELLO
  uint32_t exec_revision = 0;  // kExecRevision when the guest serves exec; 0: no exec
  // kVolumeRevision when the guest serves RESIZE_VOLUME and FREEZE/THAW; 0: it does not.
  uint32_t volume_revision = 0;

  bool operator==(const Hello&) const = default;
};

struct Ipv4Config {
  Ipv4Address address{};
  uint8_t prefix_len = 32;
  std::optional<Ipv4Address> gateway;

  bool operator==(const Ipv4Config&) const = default;
};

struct NetworkConfig {
  Ipv6Address ipv6_address{};
  uint8_t ipv6_prefix_len = 128;
  Ipv6Address ipv6_gateway = kDefaultIpv6Gateway;  // link-local, via eth0
  uint32_t mtu = kDefaultMtu;
  std::optional<Ipv4Config> ipv4;

  bool operator==(const NetworkConfig&) const = default;
};

// A disk to mount after the switch root (volume-mounts.md §vt-init): the
// virtio-blk disk whose serial is `serial`, at `mount`, holding `fs`.
struct VolumeMount {
  std::string serial;  // "vol-<i>" (i = 0..15), or 1..20 digits (Firecracker's disk id)
  std::string mount;   // absolute, normalized, not / and not under /proc, /sys, /dev, /run
  std::string fs = "ext4";

  bool operator==(const VolumeMount&) const = default;
};

// The rules of a volume's mount path (also the agent's, for WorkloadSpec
// volumes): absolute, normalized (no "//", ".", ".." or trailing '/'),
// printable ASCII without NUL, at most 4096 bytes, not "/", not /proc, /sys,
// /dev or /run or below them. Empty when valid, else why not.
[[nodiscard]] std::string volumeMountProblem(std::string_view mount);
// A CONFIG volume serial: "vol-0" .. "vol-15" (QEMU: the drive id) or 1 to
// 20 digits (Firecracker: the disk file's st_dev, st_rdev and st_ino).
[[nodiscard]] bool validVolumeSerial(std::string_view serial);

struct Config {
  std::string instance_id;
  std::vector<std::string> argv;  // argv[0] is the program (PATH-searched in env's PATH)
  std::vector<std::string> env;   // "KEY=VALUE"
  std::string workdir = "/";
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;             // supplementary groups
  std::string hostname;                     // empty: leave the kernel's ("(none)")
  std::optional<NetworkConfig> network;     // absent: no eth0 configuration
  std::optional<std::string> secrets_file;  // libs/secrets-format bytes
  bool secrets_as_env = false;
  uint32_t shutdown_grace_ms = kDefaultShutdownGraceMs;
  std::string rootfs_device = std::string(kDefaultRootfsDevice);
  std::string scratch_device = std::string(kDefaultScratchDevice);
  // The host's CLOCK_REALTIME in ns when it sent CONFIG; vt-init sets the
  // guest clock from it (the RTC is only good to a second or so, and LOG
  // timestamps come from that clock). 0: leave the clock alone.
  uint64_t host_time_ns = 0;
  // Resolver addresses for /etc/resolv.conf, IPv6 or IPv4 text; empty: keep
  // the image's file.
  std::vector<std::string> nameservers;
  // At most kMaxVolumes, distinct serials and mounts.
  std::vector<VolumeMount> volumes;

  bool operator==(const Config&) const = default;
};

// Where the guest's boot time went (host-channel.md §READY): CLOCK_BOOTTIME
// in ns at the end of each stage, in order, each at most READY's boot_ns.
struct BootStages {
  uint64_t init_ns = 0;     // the kernel handed over to vt-init
  uint64_t modules_ns = 0;  // modules loaded (none with the minimal kernel)
  uint64_t mounts_ns = 0;   // the early mounts done
  uint64_t config_ns = 0;   // CONFIG received

  bool operator==(const BootStages&) const = default;
};

struct Ready {
  uint32_t pid = 0;      // the workload's pid in the guest
  uint64_t boot_ns = 0;  // CLOCK_BOOTTIME when the workload was spawned
  // Absent in a 16-byte READY (a guest that does not time its stages).
  std::optional<BootStages> stages;

  bool operator==(const Ready&) const = default;
};

struct Log {
  LogSource source = LogSource::kStdout;
  uint64_t timestamp_ns = 0;  // guest CLOCK_REALTIME, ns since the epoch
  std::string data;           // at most kMaxLogDataBytes; arbitrary bytes

  bool operator==(const Log&) const = default;
};

struct Exit {
  ExitKind kind = ExitKind::kExited;
  int32_t code = 0;  // exit status, or the signal number when kSignaled

  bool operator==(const Exit&) const = default;
};

struct Shutdown {
  uint32_t grace_ms = 0;  // 0: use CONFIG's shutdown_grace_ms

  bool operator==(const Shutdown&) const = default;
};

struct Ping {
  uint64_t nonce = 0;

  bool operator==(const Ping&) const = default;
};

// A fatal guest-side error (mount failed, workload binary missing, bad
// secrets file) sent before vt-init powers the VM off. UTF-8, no secrets.
struct BootError {
  std::string message;

  bool operator==(const BootError&) const = default;
};

// Checks the rules of §CONFIG validation; decodeConfig applies the same.
[[nodiscard]] Result<void> validateConfig(const Config& config);

// Whole frames (header + payload).
[[nodiscard]] Result<std::string> encode(const Hello& hello);
[[nodiscard]] Result<std::string> encode(const Config& config);
[[nodiscard]] std::string encode(const Ready& ready);
// Splits nothing: callers chunk output into kMaxLogDataBytes pieces
// (fails with kOversized above that).
[[nodiscard]] Result<std::string> encode(const Log& log);
[[nodiscard]] std::string encode(const Exit& exit);
[[nodiscard]] std::string encode(const Shutdown& shutdown);
[[nodiscard]] std::string encodePing(const Ping& ping);
[[nodiscard]] std::string encodePong(const Ping& pong);
[[nodiscard]] Result<std::string> encode(const BootError& error);
// STATUS has no payload; the guest answers READY (running), EXIT (exited)
// or HELLO (not configured yet).
[[nodiscard]] std::string encodeStatus();

// Payload parsers; the frame's type and stream were checked by the Decoder.
[[nodiscard]] Result<Hello> decodeHello(std::string_view payload);
[[nodiscard]] Result<Config> decodeConfig(std::string_view payload);
[[nodiscard]] Result<Ready> decodeReady(std::string_view payload);
[[nodiscard]] Result<Log> decodeLog(std::string_view payload);
[[nodiscard]] Result<Exit> decodeExit(std::string_view payload);
[[nodiscard]] Result<Shutdown> decodeShutdown(std::string_view payload);
[[nodiscard]] Result<Ping> decodePing(std::string_view payload);  // PING and PONG
[[nodiscard]] Result<BootError> decodeBootError(std::string_view payload);

}  // namespace plfm::guest_proto
