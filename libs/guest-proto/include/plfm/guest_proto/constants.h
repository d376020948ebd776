// Every wire constant of the host<->guest channel, in one place
// (docs/specs/runtime/host-channel.md). The agent (host) and vt-init (guest)
// both include this; changing a value is a protocol version bump.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace plfm::guest_proto {

// Sent in HELLO; the host refuses a guest whose version it does not speak
// (host-channel.md §Versioning).
inline constexpr uint32_t kProtocolVersion = 1;

// §Frame header: type(1) flags(1) stream(2, BE) length(4, BE).
inline constexpr size_t kHeaderBytes = 8;
// Hard cap on any payload; the decoder refuses a bigger length before it
// buffers a single payload byte. CONFIG is the big frame (a secrets file of
// up to 1 MiB plus argv and env), so the cap is 2 MiB.
inline constexpr size_t kMaxPayloadBytes = size_t{2} * 1024 * 1024;

// §Frame types. Values are stable; 0x20-0x2f are reserved for exec.
enum class FrameType : uint8_t {
  kHello = 0x01,     // guest -> host, control stream
  kConfig = 0x02,    // host -> guest, control stream
  kReady = 0x03,     // guest -> host, control stream
  kLog = 0x04,       // guest -> host, workload stream
  kExit = 0x05,      // guest -> host, control stream
  kShutdown = 0x06,  // host -> guest, control stream
  kPing = 0x07,      // either way, control stream
  kPong = 0x08,      // either way, control stream
  kError = 0x09,     // guest -> host: a fatal boot error before power-off
  kStatus = 0x0a,    // host -> guest, control stream: "where are you?" (reattach)
  // Volume operations on a running guest (§Volume operations), control
  // stream, sent only to a guest whose HELLO has volume_revision; payloads
  // in volume_ops.h.
  kResizeVolume = 0x0b,   // host -> guest: grow the filesystem to its disk
  kVolumeResized = 0x0c,  // guest -> host: done, the filesystem's new size
  kVolumeFailed = 0x0d,   // guest -> host: a volume operation failed (the VM goes on)
  kFreeze = 0x0e,         // host -> guest: sync and FIFREEZE a volume
  kFrozen = 0x0f,         // guest -> host
  kThaw = 0x10,           // host -> guest: FITHAW
  kThawed = 0x11,         // guest -> host
  // Exec sessions (§Exec), one per exec stream; payloads in exec.h.
  kExecOpen = 0x20,
  kExecData = 0x21,
  kExecResize = 0x22,
  kExecSignal = 0x23,
  kExecExit = 0x24,
  kExecClose = 0x25,
  kExecWindow = 0x26,  // either way: flow-control credit (§EXEC_DATA and EXEC_WINDOW)
};

// §Streams.
inline constexpr uint16_t kControlStream = 0;
inline constexpr uint16_t kWorkloadStream = 1;  // LOG of the main workload
inline constexpr uint16_t kFirstExecStream = 0x0100;
inline constexpr uint16_t kLastExecStream = 0xfffe;

// §LOG.
enum class LogSource : uint8_t { kStdout = 1, kStderr = 2 };
inline constexpr size_t kLogHeaderBytes = 12;  // source(1) reserved(3) timestamp_ns(8)
inline constexpr size_t kMaxLogDataBytes = size_t{16} * 1024;

// §EXIT.
enum class ExitKind : uint8_t { kExited = 1, kSignaled = 2 };

// Fixed payload sizes (§READY, §EXIT, §SHUTDOWN, §PING).
inline constexpr size_t kReadyBytes = 16;  // pid(4) reserved(4) boot_ns(8)
// READY with the boot stage times: kReadyBytes + init_ns, modules_ns, mounts_ns,
// config_ns (8 each).
inline constexpr size_t kReadyStagesBytes = 48;
inline constexpr size_t kExitBytes = 8;      // kind(1) reserved(3) code(4)
inline constexpr size_t kShutdownBytes = 4;  // grace_ms(4), 0 = CONFIG's grace
inline constexpr size_t kPingBytes = 8;      // nonce(8), echoed in PONG
inline constexpr size_t kMaxHelloBytes = 4096;
inline constexpr size_t kMaxErrorBytes = 4096;

// §CONFIG tags (TLV: tag(2, BE) length(4, BE) value).
enum class ConfigTag : uint16_t {
  kInstanceId = 1,        // string
  kArgv = 2,              // string, repeated, at least once
  kEnv = 3,               // "KEY=VALUE", repeated
  kWorkdir = 4,           // absolute path
  kUid = 5,               // u32
  kGid = 6,               // u32
  kGroup = 7,             // u32, repeated: supplementary groups
  kHostname = 8,          // string
  kIpv6Address = 9,       // 16 bytes
  kIpv6PrefixLen = 10,    // u8
  kIpv6Gateway = 11,      // 16 bytes
  kMtu = 12,              // u32
  kIpv4Address = 13,      // 4 bytes
  kIpv4PrefixLen = 14,    // u8
  kIpv4Gateway = 15,      // 4 bytes
  kSecretsFile = 16,      // bytes: a libs/secrets-format file
  kSecretsAsEnv = 17,     // u8 0|1
  kShutdownGraceMs = 18,  // u32
  kRootfsDevice = 19,     // path
  kScratchDevice = 20,    // path
  kHostTimeNs = 21,       // u64: host CLOCK_REALTIME when CONFIG was encoded
  kNameserver = 22,       // string (IPv6 or IPv4 address), repeated: /etc/resolv.conf
  kVolume = 23,           // nested TLV (VolumeTag), repeated: a volume to mount
};

// §CONFIG tag 23: the fields of one volume, a TLV inside the volume field.
enum class VolumeTag : uint16_t {
  kSerial = 1,  // the virtio-blk serial of its disk: "vol-0" .. "vol-15", or 1..20 digits
  kMount = 2,   // absolute, normalized path in the guest
  kFs = 3,      // "ext4"
};
inline constexpr size_t kMaxVolumes = 16;

// §HELLO tags.
enum class HelloTag : uint16_t {
  kVersion = 1,         // u32: kProtocolVersion
  kInitVersion = 2,     // string, e.g. "vt-init 0.1.0"
  kKernelRelease = 3,   // string, uname -r
  kBootNs = 4,          // u64, CLOCK_BOOTTIME when HELLO was first sent
  kExecRevision = 5,    // u32: the guest serves exec (§Exec); absent or 0: it does not
  kVolumeRevision = 6,  // u32: the guest serves §Volume operations; absent or 0: it does not
};

// HELLO's exec_revision for host-channel.md §Exec as written.
inline constexpr uint32_t kExecRevision = 1;
// HELLO's volume_revision for host-channel.md §Volume operations as written.
inline constexpr uint32_t kVolumeRevision = 1;

// §Volume operations.
inline constexpr size_t kMaxVolumeSerialBytes = 20;     // a virtio-blk serial
inline constexpr size_t kVolumeOpHeaderBytes = 4;       // id(4)
inline constexpr size_t kResizeVolumeHeaderBytes = 16;  // id(4) reserved(4) size_bytes(8)
inline constexpr size_t kVolumeResizedBytes = 16;       // id(4) reserved(4) size_bytes(8)
inline constexpr size_t kMaxVolumeFailureBytes = 1024;
inline constexpr size_t kThawedBytes = 8;  // id(4) kind(1) reserved(3)
// vt-init thaws a frozen volume by itself this long after FROZEN, whatever
// the host does (volume-mounts.md §Snapshots).
inline constexpr uint32_t kFreezeLimitMs = 5000;
enum class ThawKind : uint8_t {
  kOnThaw = 1,   // thawed on the host's THAW
  kTimeout = 2,  // had thawed itself after kFreezeLimitMs: the copy may not be consistent
};

inline constexpr size_t kTlvHeaderBytes = 6;

// CONFIG limits (§CONFIG validation).
inline constexpr size_t kMaxArgs = 4096;
inline constexpr size_t kMaxEnv = 4096;
inline constexpr size_t kMaxGroups = 64;
inline constexpr size_t kMaxNameservers = 3;  // glibc's resolver reads three (MAXNS)
inline constexpr size_t kMaxHostnameBytes = 64;
inline constexpr size_t kMaxPathBytes = 4096;
inline constexpr size_t kMaxInstanceIdBytes = 128;
inline constexpr uint32_t kMinMtu = 1280;  // IPv6's minimum link MTU
inline constexpr uint32_t kMaxMtu = 65535;

// §Exec.
enum class ExecFd : uint8_t { kStdin = 0, kStdout = 1, kStderr = 2 };
enum class ExecExitKind : uint8_t { kExited = 1, kSignaled = 2, kNotStarted = 3, kTimedOut = 4 };
enum class ExecCloseKind : uint8_t { kStdinEof = 1, kAbort = 2 };
enum class ExecOpenTag : uint16_t {
  kArgv = 1,       // string, repeated, at least once
  kEnv = 2,        // "KEY=VALUE", repeated: overrides of the workload env
  kUser = 3,       // "UID", "UID:GID" or a name of the image's /etc/passwd
  kWorkdir = 4,    // absolute path
  kTty = 5,        // u8 0|1
  kRows = 6,       // u16, needs tty
  kCols = 7,       // u16, needs tty
  kWindow = 8,     // u32: the output credit the host grants
  kTimeoutMs = 9,  // u32, 0 = none
};
inline constexpr size_t kMaxExecOpenBytes = size_t{64} * 1024;
inline constexpr size_t kExecDataHeaderBytes = 4;  // fd(1) reserved(3)
inline constexpr size_t kMaxExecDataBytes = size_t{16} * 1024;
inline constexpr size_t kExecResizeBytes = 4;         // rows(2) cols(2)
inline constexpr size_t kExecSignalBytes = 4;         // signal(4)
inline constexpr size_t kExecExitHeaderBytes = 8;     // kind(1) reserved(3) code(4)
inline constexpr size_t kMaxExecMessageBytes = 1024;  // EXEC_EXIT's message
inline constexpr size_t kExecCloseBytes = 1;          // kind(1)
inline constexpr size_t kExecWindowBytes = 4;         // increment(4)
inline constexpr size_t kMaxExecUserBytes = 256;
inline constexpr uint32_t kExecInitialWindow = 256 * 1024;  // both directions' default credit
inline constexpr uint32_t kMinExecWindow = kMaxExecDataBytes;
inline constexpr uint32_t kMaxExecWindow = 1024 * 1024;
inline constexpr uint32_t kMaxExecCredit = 0x7fffffff;  // a credit above this is an error
inline constexpr uint16_t kDefaultExecRows = 24;
inline constexpr uint16_t kDefaultExecCols = 80;
inline constexpr int kMaxSignal = 64;

// Defaults a CONFIG may leave out.
inline constexpr std::string_view kDefaultRootfsDevice = "/dev/vda";
inline constexpr std::string_view kDefaultScratchDevice = "/dev/vdb";
inline constexpr uint32_t kDefaultShutdownGraceMs = 10'000;
inline constexpr uint32_t kDefaultMtu = 1500;

// Guest-side device paths and the vsock port (host-channel.md §Transports).
inline constexpr std::string_view kVirtioSerialPortName = "plfm";
inline constexpr std::string_view kVirtioSerialDevice = "/dev/vport0p1";
inline constexpr uint32_t kVsockPort = 1024;

}  // namespace plfm::guest_proto
