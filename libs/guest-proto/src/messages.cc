// Payload codecs, host-channel.md §Messages.
#include "plfm/guest_proto/messages.h"

#include <arpa/inet.h>

#include <algorithm>
#include <utility>

#include "wire.h"

namespace plfm::guest_proto {

using internal::Field;
using internal::getU16;
using internal::getU32;
using internal::getU64;
using internal::getU8;
using internal::hasNul;
using internal::putTlv;
using internal::putTlvU32;
using internal::putTlvU64;
using internal::putTlvU8;
using internal::putU32;
using internal::putU64;
using internal::putU8;
using internal::splitTlv;

namespace {

Error fieldError(ErrorCode code, std::string_view what, uint16_t tag, std::string_view problem) {
  return makeError(
      code, std::string(what) + " field " + std::to_string(tag) + ": " + std::string(problem));
}

Result<uint32_t> fieldU32(std::string_view what, const Field& f) {
  if (f.value.size() != 4)
    return fieldError(ErrorCode::kMalformed, what, f.tag, "expected 4 bytes");
  return getU32(f.value, 0);
}
Result<uint64_t> fieldU64(std::string_view what, const Field& f) {
  if (f.value.size() != 8)
    return fieldError(ErrorCode::kMalformed, what, f.tag, "expected 8 bytes");
  return getU64(f.value, 0);
}
Result<uint8_t> fieldU8(std::string_view what, const Field& f) {
  if (f.value.size() != 1) return fieldError(ErrorCode::kMalformed, what, f.tag, "expected 1 byte");
  return getU8(f.value, 0);
}
template <size_t N>
Result<std::array<uint8_t, N>> fieldBytes(std::string_view what, const Field& f) {
  if (f.value.size() != N) {
    return fieldError(ErrorCode::kMalformed, what, f.tag,
                      "expected " + std::to_string(N) + " bytes");
  }
  std::array<uint8_t, N> out{};
  std::copy(f.value.begin(), f.value.end(), out.begin());
  return out;
}

bool validHostname(std::string_view name) {
  if (name.size() > kMaxHostnameBytes) return false;
  size_t label = 0;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (c == '.') {
      if (label == 0 || name[i - 1] == '-') return false;
      label = 0;
      continue;
    }
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && !(c == '-' && label > 0)) return false;
    if (++label > 63) return false;
  }
  return label > 0 && name.back() != '-';
}

bool validDevice(std::string_view path) {
  return path.size() > 5 && path.size() <= kMaxPathBytes && path.substr(0, 5) == "/dev/" &&
         !hasNul(path) && path.find("..") == std::string_view::npos;
}

bool allZero(const Ipv6Address& a) {
  return std::all_of(a.begin(), a.end(), [](uint8_t b) { return b == 0; });
}

Error invalid(std::string message) {
  return makeError(ErrorCode::kInvalidValue, std::move(message));
}

Result<std::string> frameOf(FrameType type, uint16_t stream, std::string_view payload) {
  return encodeFrame(type, stream, payload);
}

// Frames whose payload is below every limit by construction.
std::string fixedFrame(FrameType type, std::string_view payload) {
  auto frame = encodeFrame(type, kControlStream, payload);
  return frame ? std::move(*frame) : std::string();
}

bool allDigits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

Result<VolumeMount> decodeVolume(std::string_view value) {
  constexpr std::string_view kWhat = "CONFIG volume";
  auto fields = splitTlv(value, kWhat);
  if (!fields) return tl::unexpected(std::move(fields).error());
  VolumeMount v;
  v.fs.clear();
  uint32_t seen = 0;
  for (const Field& f : *fields) {
    if (f.tag >= 1 && f.tag <= 3) {
      if ((seen & (1U << f.tag)) != 0) {
        return fieldError(ErrorCode::kDuplicateField, kWhat, f.tag, "appears twice");
      }
      seen |= 1U << f.tag;
    }
    switch (static_cast<VolumeTag>(f.tag)) {
      case VolumeTag::kSerial:
        v.serial.assign(f.value);
        break;
      case VolumeTag::kMount:
        v.mount.assign(f.value);
        break;
      case VolumeTag::kFs:
        v.fs.assign(f.value);
        break;
      default:
        return fieldError(ErrorCode::kUnknownField, kWhat, f.tag, "unknown tag");
    }
  }
  if (seen != 0b1110) return makeError(ErrorCode::kMissingField, "CONFIG volume lacks a field");
  return v;
}

}  // namespace

// "vol-<i>" (QEMU: the drive id) or 1..20 digits (Firecracker: the disk
// file's st_dev, st_rdev and st_ino, cut to VIRTIO_BLK_ID_BYTES).
bool validVolumeSerial(std::string_view serial) {
  if (!serial.empty() && serial.size() <= 20 && allDigits(serial)) return true;
  if (serial.size() < 5 || serial.size() > 6 || serial.substr(0, 4) != "vol-") return false;
  const std::string_view n = serial.substr(4);
  if (!allDigits(n)) return false;
  if (n.size() == 1) return true;
  // Two digits: 10 .. 15 ("vol-07" is not "vol-7").
  return n[0] == '1' && size_t{10} + static_cast<size_t>(n[1] - '0') < kMaxVolumes;
}

std::string volumeMountProblem(std::string_view m) {
  if (m.empty() || m[0] != '/') return "is not an absolute path";
  if (m.size() > kMaxPathBytes) return "is longer than 4096 bytes";
  for (char c : m) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) return "holds a byte outside printable ASCII";
  }
  if (m == "/") return "is the root directory";
  if (m.back() == '/') return "ends with '/'";
  size_t at = 1;
  while (at <= m.size()) {
    size_t end = m.find('/', at);
    if (end == std::string_view::npos) end = m.size();
    const std::string_view part = m.substr(at, end - at);
    if (part.empty() || part == "." || part == "..") return "is not normalized";
    at = end + 1;
  }
  for (std::string_view reserved : {"/proc", "/sys", "/dev", "/run"}) {
    if (m == reserved || (m.starts_with(reserved) && m[reserved.size()] == '/')) {
      return "is " + std::string(reserved) + " or below it";
    }
  }
  return "";
}

Result<Ipv6Address> parseIpv6(std::string_view text) {
  const std::string s(text);
  Ipv6Address out{};
  if (inet_pton(AF_INET6, s.c_str(), out.data()) != 1) {
    return invalid("not an IPv6 address");
  }
  return out;
}

Result<Ipv4Address> parseIpv4(std::string_view text) {
  const std::string s(text);
  Ipv4Address out{};
  if (inet_pton(AF_INET, s.c_str(), out.data()) != 1) {
    return invalid("not an IPv4 address");
  }
  return out;
}

std::string formatIpv6(const Ipv6Address& address) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, address.data(), buf, sizeof buf);
  return buf;
}

std::string formatIpv4(const Ipv4Address& address) {
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, address.data(), buf, sizeof buf);
  return buf;
}

// ---- HELLO (§HELLO) ----

Result<std::string> encode(const Hello& hello) {
  std::string payload;
  putTlvU32(payload, static_cast<uint16_t>(HelloTag::kVersion), hello.protocol_version);
  putTlv(payload, static_cast<uint16_t>(HelloTag::kInitVersion), hello.init_version);
  putTlv(payload, static_cast<uint16_t>(HelloTag::kKernelRelease), hello.kernel_release);
  putTlvU64(payload, static_cast<uint16_t>(HelloTag::kBootNs), hello.boot_ns);
  if (hello.exec_revision != 0) {
    putTlvU32(payload, static_cast<uint16_t>(HelloTag::kExecRevision), hello.exec_revision);
  }
  if (hello.volume_revision != 0) {
    putTlvU32(payload, static_cast<uint16_t>(HelloTag::kVolumeRevision), hello.volume_revision);
  }
  return frameOf(FrameType::kHello, kControlStream, payload);
}

Result<Hello> decodeHello(std::string_view payload) {
  constexpr std::string_view kWhat = "HELLO";
  auto fields = splitTlv(payload, kWhat);
  if (!fields) return tl::unexpected(std::move(fields).error());
  Hello hello;
  bool have_version = false;
  // Unknown HELLO tags are skipped: HELLO is how a newer guest introduces
  // itself to an older host, so it must stay readable (§Versioning).
  for (const Field& f : *fields) {
    switch (static_cast<HelloTag>(f.tag)) {
      case HelloTag::kVersion: {
        auto v = fieldU32(kWhat, f);
        if (!v) return tl::unexpected(std::move(v).error());
        hello.protocol_version = *v;
        have_version = true;
        break;
      }
      case HelloTag::kInitVersion:
        hello.init_version.assign(f.value);
        break;
      case HelloTag::kKernelRelease:
        hello.kernel_release.assign(f.value);
        break;
      case HelloTag::kBootNs: {
        auto v = fieldU64(kWhat, f);
        if (!v) return tl::unexpected(std::move(v).error());
        hello.boot_ns = *v;
        break;
      }
      case HelloTag::kExecRevision: {
        auto v = fieldU32(kWhat, f);
        if (!v) return tl::unexpected(std::move(v).error());
        hello.exec_revision = *v;
        break;
      }
      case HelloTag::kVolumeRevision: {
        auto v = fieldU32(kWhat, f);
        if (!v) return tl::unexpected(std::move(v).error());
        hello.volume_revision = *v;
        break;
      }
    }
  }
  if (!have_version) return makeError(ErrorCode::kMissingField, "HELLO has no protocol version");
  return hello;
}

// ---- CONFIG (§CONFIG) ----

Result<void> validateConfig(const Config& c) {
  if (c.instance_id.size() > kMaxInstanceIdBytes) return invalid("instance id too long");
  for (char ch : c.instance_id) {
    if (ch <= 0x20 || ch >= 0x7f) return invalid("instance id must be printable ASCII");
  }
  if (c.argv.empty()) return makeError(ErrorCode::kMissingField, "CONFIG has no argv");
  if (c.argv.size() > kMaxArgs) return makeError(ErrorCode::kOversized, "too many argv entries");
  if (c.argv[0].empty()) return invalid("argv[0] is empty");
  for (size_t i = 0; i < c.argv.size(); ++i) {
    if (hasNul(c.argv[i])) return invalid("argv[" + std::to_string(i) + "] contains NUL");
  }
  if (c.env.size() > kMaxEnv) return makeError(ErrorCode::kOversized, "too many env entries");
  for (size_t i = 0; i < c.env.size(); ++i) {
    const std::string& e = c.env[i];
    const size_t eq = e.find('=');
    if (eq == std::string::npos || eq == 0 || hasNul(e)) {
      return invalid("env[" + std::to_string(i) + "] is not KEY=VALUE");
    }
  }
  if (c.workdir.empty() || c.workdir[0] != '/' || c.workdir.size() > kMaxPathBytes ||
      hasNul(c.workdir)) {
    return invalid("workdir must be an absolute path");
  }
  if (c.groups.size() > kMaxGroups) return makeError(ErrorCode::kOversized, "too many groups");
  if (!c.hostname.empty() && !validHostname(c.hostname)) {
    return invalid("hostname is not a valid RFC 1123 name of at most 64 bytes");
  }
  if (c.network) {
    const NetworkConfig& n = *c.network;
    if (allZero(n.ipv6_address) || n.ipv6_address[0] == 0xff) {
      return invalid("ipv6 address must be a unicast address");
    }
    if (n.ipv6_prefix_len == 0 || n.ipv6_prefix_len > 128) {
      return invalid("ipv6 prefix length must be 1..128");
    }
    if (allZero(n.ipv6_gateway)) return invalid("ipv6 gateway is unset");
    if (n.mtu < kMinMtu || n.mtu > kMaxMtu) {
      return invalid("mtu must be " + std::to_string(kMinMtu) + ".." + std::to_string(kMaxMtu));
    }
    if (n.ipv4 && (n.ipv4->prefix_len == 0 || n.ipv4->prefix_len > 32)) {
      return invalid("ipv4 prefix length must be 1..32");
    }
  }
  if (c.nameservers.size() > kMaxNameservers) {
    return makeError(ErrorCode::kOversized, "too many nameservers");
  }
  for (size_t i = 0; i < c.nameservers.size(); ++i) {
    if (!parseIpv6(c.nameservers[i]) && !parseIpv4(c.nameservers[i])) {
      return invalid("nameserver[" + std::to_string(i) + "] is not an IP address");
    }
  }
  if (c.volumes.size() > kMaxVolumes) return makeError(ErrorCode::kOversized, "too many volumes");
  for (size_t i = 0; i < c.volumes.size(); ++i) {
    const VolumeMount& v = c.volumes[i];
    const std::string which = "volume[" + std::to_string(i) + "]";
    if (!validVolumeSerial(v.serial)) {
      return invalid(which + " serial is not vol-0 .. vol-15 or 1 to 20 digits");
    }
    if (std::string why = volumeMountProblem(v.mount); !why.empty()) {
      return invalid(which + " mount " + std::move(why));
    }
    if (v.fs != "ext4") return invalid(which + " fs is not ext4");
    for (size_t j = 0; j < i; ++j) {
      if (c.volumes[j].serial == v.serial || c.volumes[j].mount == v.mount) {
        return invalid(which + " repeats the serial or mount of volume[" + std::to_string(j) + "]");
      }
    }
  }
  if (!validDevice(c.rootfs_device)) return invalid("rootfs device must be a /dev path");
  if (!validDevice(c.scratch_device)) return invalid("scratch device must be a /dev path");
  return {};
}

Result<std::string> encode(const Config& c) {
  auto valid = validateConfig(c);
  if (!valid) return tl::unexpected(std::move(valid).error());
  auto tag = [](ConfigTag t) { return static_cast<uint16_t>(t); };
  std::string p;
  size_t reserve = 256 + (c.secrets_file ? c.secrets_file->size() : 0);
  for (const auto& a : c.argv) reserve += kTlvHeaderBytes + a.size();
  for (const auto& e : c.env) reserve += kTlvHeaderBytes + e.size();
  // Sized up front so that no reallocation leaves a stray copy of the
  // secrets file in freed memory.
  p.reserve(reserve);
  if (!c.instance_id.empty()) putTlv(p, tag(ConfigTag::kInstanceId), c.instance_id);
  for (const auto& a : c.argv) putTlv(p, tag(ConfigTag::kArgv), a);
  for (const auto& e : c.env) putTlv(p, tag(ConfigTag::kEnv), e);
  putTlv(p, tag(ConfigTag::kWorkdir), c.workdir);
  putTlvU32(p, tag(ConfigTag::kUid), c.uid);
  putTlvU32(p, tag(ConfigTag::kGid), c.gid);
  for (uint32_t g : c.groups) putTlvU32(p, tag(ConfigTag::kGroup), g);
  if (!c.hostname.empty()) putTlv(p, tag(ConfigTag::kHostname), c.hostname);
  if (c.network) {
    const NetworkConfig& n = *c.network;
    auto bytes = [](const auto& a) {
      return std::string_view(reinterpret_cast<const char*>(a.data()), a.size());
    };
    putTlv(p, tag(ConfigTag::kIpv6Address), bytes(n.ipv6_address));
    putTlvU8(p, tag(ConfigTag::kIpv6PrefixLen), n.ipv6_prefix_len);
    putTlv(p, tag(ConfigTag::kIpv6Gateway), bytes(n.ipv6_gateway));
    putTlvU32(p, tag(ConfigTag::kMtu), n.mtu);
    if (n.ipv4) {
      putTlv(p, tag(ConfigTag::kIpv4Address), bytes(n.ipv4->address));
      putTlvU8(p, tag(ConfigTag::kIpv4PrefixLen), n.ipv4->prefix_len);
      if (n.ipv4->gateway) putTlv(p, tag(ConfigTag::kIpv4Gateway), bytes(*n.ipv4->gateway));
    }
  }
  if (c.secrets_file) putTlv(p, tag(ConfigTag::kSecretsFile), *c.secrets_file);
  if (c.secrets_as_env) putTlvU8(p, tag(ConfigTag::kSecretsAsEnv), 1);
  putTlvU32(p, tag(ConfigTag::kShutdownGraceMs), c.shutdown_grace_ms);
  putTlv(p, tag(ConfigTag::kRootfsDevice), c.rootfs_device);
  putTlv(p, tag(ConfigTag::kScratchDevice), c.scratch_device);
  if (c.host_time_ns != 0) putTlvU64(p, tag(ConfigTag::kHostTimeNs), c.host_time_ns);
  for (const auto& ns : c.nameservers) putTlv(p, tag(ConfigTag::kNameserver), ns);
  for (const auto& v : c.volumes) {
    std::string value;
    putTlv(value, static_cast<uint16_t>(VolumeTag::kSerial), v.serial);
    putTlv(value, static_cast<uint16_t>(VolumeTag::kMount), v.mount);
    putTlv(value, static_cast<uint16_t>(VolumeTag::kFs), v.fs);
    putTlv(p, tag(ConfigTag::kVolume), value);
  }
  auto frame = frameOf(FrameType::kConfig, kControlStream, p);
  std::fill(p.begin(), p.end(), '\0');
  return frame;
}

Result<Config> decodeConfig(std::string_view payload) {
  constexpr std::string_view kWhat = "CONFIG";
  auto fields = splitTlv(payload, kWhat);
  if (!fields) return tl::unexpected(std::move(fields).error());
  Config c;
  uint64_t seen = 0;  // bit per tag that may appear once
  bool any_network = false;
  bool have_ipv6 = false;
  NetworkConfig net;
  std::optional<Ipv4Address> ipv4_address;
  std::optional<uint8_t> ipv4_prefix;
  std::optional<Ipv4Address> ipv4_gateway;
  for (const Field& f : *fields) {
    const auto t = static_cast<ConfigTag>(f.tag);
    const bool repeated = t == ConfigTag::kArgv || t == ConfigTag::kEnv || t == ConfigTag::kGroup ||
                          t == ConfigTag::kNameserver || t == ConfigTag::kVolume;
    if (f.tag >= 1 && f.tag < 64 && !repeated) {
      const uint64_t bit = uint64_t{1} << f.tag;
      if ((seen & bit) != 0) {
        return fieldError(ErrorCode::kDuplicateField, kWhat, f.tag, "appears twice");
      }
      seen |= bit;
    }
// `var` names a declaration, so it cannot be parenthesized.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define PLFM_GP_GET(var, expr) \
  auto var = (expr);           \
  if (!(var)) return tl::unexpected(std::move(var).error())
    // NOLINTEND(bugprone-macro-parentheses)
    switch (t) {
      case ConfigTag::kInstanceId:
        c.instance_id.assign(f.value);
        break;
      case ConfigTag::kArgv:
        if (c.argv.size() == kMaxArgs) return makeError(ErrorCode::kOversized, "too many argv");
        c.argv.emplace_back(f.value);
        break;
      case ConfigTag::kEnv:
        if (c.env.size() == kMaxEnv) return makeError(ErrorCode::kOversized, "too many env");
        c.env.emplace_back(f.value);
        break;
      case ConfigTag::kWorkdir:
        c.workdir.assign(f.value);
        break;
      case ConfigTag::kUid: {
        PLFM_GP_GET(v, fieldU32(kWhat, f));
        c.uid = *v;
        break;
      }
      case ConfigTag::kGid: {
        PLFM_GP_GET(v, fieldU32(kWhat, f));
        c.gid = *v;
        break;
      }
      case ConfigTag::kGroup: {
        if (c.groups.size() == kMaxGroups)
          return makeError(ErrorCode::kOversized, "too many groups");
        PLFM_GP_GET(v, fieldU32(kWhat, f));
        c.groups.push_back(*v);
        break;
      }
      case ConfigTag::kHostname:
        c.hostname.assign(f.value);
        break;
      case ConfigTag::kIpv6Address: {
        PLFM_GP_GET(v, fieldBytes<16>(kWhat, f));
        net.ipv6_address = *v;
        have_ipv6 = any_network = true;
        break;
      }
      case ConfigTag::kIpv6PrefixLen: {
        PLFM_GP_GET(v, fieldU8(kWhat, f));
        net.ipv6_prefix_len = *v;
        any_network = true;
        break;
      }
      case ConfigTag::kIpv6Gateway: {
        PLFM_GP_GET(v, fieldBytes<16>(kWhat, f));
        net.ipv6_gateway = *v;
        any_network = true;
        break;
      }
      case ConfigTag::kMtu: {
        PLFM_GP_GET(v, fieldU32(kWhat, f));
        net.mtu = *v;
        any_network = true;
        break;
      }
      case ConfigTag::kIpv4Address: {
        PLFM_GP_GET(v, fieldBytes<4>(kWhat, f));
        ipv4_address = *v;
        break;
      }
      case ConfigTag::kIpv4PrefixLen: {
        PLFM_GP_GET(v, fieldU8(kWhat, f));
        ipv4_prefix = *v;
        break;
      }
      case ConfigTag::kIpv4Gateway: {
        PLFM_GP_GET(v, fieldBytes<4>(kWhat, f));
        ipv4_gateway = *v;
        break;
      }
      case ConfigTag::kSecretsFile:
        c.secrets_file.emplace(f.value);
        break;
      case ConfigTag::kSecretsAsEnv: {
        PLFM_GP_GET(v, fieldU8(kWhat, f));
        if (*v > 1) return fieldError(ErrorCode::kInvalidValue, kWhat, f.tag, "must be 0 or 1");
        c.secrets_as_env = *v == 1;
        break;
      }
      case ConfigTag::kShutdownGraceMs: {
        PLFM_GP_GET(v, fieldU32(kWhat, f));
        c.shutdown_grace_ms = *v;
        break;
      }
      case ConfigTag::kRootfsDevice:
        c.rootfs_device.assign(f.value);
        break;
      case ConfigTag::kScratchDevice:
        c.scratch_device.assign(f.value);
        break;
      case ConfigTag::kHostTimeNs: {
        PLFM_GP_GET(v, fieldU64(kWhat, f));
        c.host_time_ns = *v;
        break;
      }
      case ConfigTag::kNameserver:
        if (c.nameservers.size() == kMaxNameservers) {
          return makeError(ErrorCode::kOversized, "too many nameservers");
        }
        c.nameservers.emplace_back(f.value);
        break;
      case ConfigTag::kVolume: {
        if (c.volumes.size() == kMaxVolumes) {
          return makeError(ErrorCode::kOversized, "too many volumes");
        }
        PLFM_GP_GET(v, decodeVolume(f.value));
        c.volumes.push_back(std::move(*v));
        break;
      }
      default:
        // CONFIG is strict: the host knows the guest's version from HELLO and
        // must not send what the guest cannot act on (§Versioning).
        return fieldError(ErrorCode::kUnknownField, kWhat, f.tag, "unknown tag");
    }
#undef PLFM_GP_GET
  }
  if (any_network && !have_ipv6) {
    return makeError(ErrorCode::kMissingField, "CONFIG network fields without an ipv6 address");
  }
  if ((ipv4_prefix || ipv4_gateway) && !ipv4_address) {
    return makeError(ErrorCode::kMissingField, "CONFIG ipv4 fields without an ipv4 address");
  }
  if (ipv4_address) {
    if (!have_ipv6) {
      return makeError(ErrorCode::kMissingField, "CONFIG ipv4 without an ipv6 address");
    }
    net.ipv4 = Ipv4Config{*ipv4_address, ipv4_prefix.value_or(32), ipv4_gateway};
  }
  if (have_ipv6) c.network = net;
  auto valid = validateConfig(c);
  if (!valid) return tl::unexpected(std::move(valid).error());
  return c;
}

// ---- fixed-size frames ----

std::string encode(const Ready& ready) {
  std::string p;
  putU32(p, ready.pid);
  putU32(p, 0);
  putU64(p, ready.boot_ns);
  if (ready.stages) {
    for (uint64_t ns : {ready.stages->init_ns, ready.stages->modules_ns, ready.stages->mounts_ns,
                        ready.stages->config_ns}) {
      putU64(p, ns);
    }
  }
  return fixedFrame(FrameType::kReady, p);
}

Result<Ready> decodeReady(std::string_view payload) {
  if (payload.size() != kReadyBytes && payload.size() != kReadyStagesBytes) {
    return makeError(ErrorCode::kMalformed, "READY size");
  }
  if (getU32(payload, 4) != 0) return makeError(ErrorCode::kMalformed, "READY reserved bytes");
  Ready ready{getU32(payload, 0), getU64(payload, 8), std::nullopt};
  if (payload.size() == kReadyStagesBytes) {
    BootStages s{getU64(payload, 16), getU64(payload, 24), getU64(payload, 32),
                 getU64(payload, 40)};
    // The stages are instants on one clock, in the order they happen.
    if (s.init_ns > s.modules_ns || s.modules_ns > s.mounts_ns || s.mounts_ns > s.config_ns ||
        s.config_ns > ready.boot_ns) {
      return makeError(ErrorCode::kMalformed, "READY boot stages out of order");
    }
    ready.stages = s;
  }
  return ready;
}

Result<std::string> encode(const Log& log) {
  if (log.data.size() > kMaxLogDataBytes) {
    return makeError(ErrorCode::kOversized, "LOG data of " + std::to_string(log.data.size()) +
                                                " bytes exceeds " +
                                                std::to_string(kMaxLogDataBytes));
  }
  std::string p;
  p.reserve(kLogHeaderBytes + log.data.size());
  putU8(p, static_cast<uint8_t>(log.source));
  putU8(p, 0);
  putU8(p, 0);
  putU8(p, 0);
  putU64(p, log.timestamp_ns);
  p.append(log.data);
  return frameOf(FrameType::kLog, kWorkloadStream, p);
}

Result<Log> decodeLog(std::string_view payload) {
  if (payload.size() < kLogHeaderBytes) return makeError(ErrorCode::kMalformed, "LOG too short");
  const uint8_t source = getU8(payload, 0);
  if (source != static_cast<uint8_t>(LogSource::kStdout) &&
      source != static_cast<uint8_t>(LogSource::kStderr)) {
    return makeError(ErrorCode::kInvalidValue, "LOG source " + std::to_string(source));
  }
  if (getU8(payload, 1) != 0 || getU16(payload, 2) != 0) {
    return makeError(ErrorCode::kMalformed, "LOG reserved bytes");
  }
  if (payload.size() - kLogHeaderBytes > kMaxLogDataBytes) {
    return makeError(ErrorCode::kOversized, "LOG data too long");
  }
  Log log;
  log.source = static_cast<LogSource>(source);
  log.timestamp_ns = getU64(payload, 4);
  log.data.assign(payload.substr(kLogHeaderBytes));
  return log;
}

std::string encode(const Exit& exit) {
  std::string p;
  putU8(p, static_cast<uint8_t>(exit.kind));
  putU8(p, 0);
  putU8(p, 0);
  putU8(p, 0);
  putU32(p, static_cast<uint32_t>(exit.code));
  return fixedFrame(FrameType::kExit, p);
}

Result<Exit> decodeExit(std::string_view payload) {
  if (payload.size() != kExitBytes) return makeError(ErrorCode::kMalformed, "EXIT size");
  const uint8_t kind = getU8(payload, 0);
  if (kind != static_cast<uint8_t>(ExitKind::kExited) &&
      kind != static_cast<uint8_t>(ExitKind::kSignaled)) {
    return makeError(ErrorCode::kInvalidValue, "EXIT kind " + std::to_string(kind));
  }
  if (getU8(payload, 1) != 0 || getU16(payload, 2) != 0) {
    return makeError(ErrorCode::kMalformed, "EXIT reserved bytes");
  }
  return Exit{static_cast<ExitKind>(kind), static_cast<int32_t>(getU32(payload, 4))};
}

std::string encode(const Shutdown& shutdown) {
  std::string p;
  putU32(p, shutdown.grace_ms);
  return fixedFrame(FrameType::kShutdown, p);
}

Result<Shutdown> decodeShutdown(std::string_view payload) {
  if (payload.size() != kShutdownBytes) return makeError(ErrorCode::kMalformed, "SHUTDOWN size");
  return Shutdown{getU32(payload, 0)};
}

std::string encodeStatus() { return fixedFrame(FrameType::kStatus, {}); }

std::string encodePing(const Ping& ping) {
  std::string p;
  putU64(p, ping.nonce);
  return fixedFrame(FrameType::kPing, p);
}

std::string encodePong(const Ping& pong) {
  std::string p;
  putU64(p, pong.nonce);
  return fixedFrame(FrameType::kPong, p);
}

Result<Ping> decodePing(std::string_view payload) {
  if (payload.size() != kPingBytes) return makeError(ErrorCode::kMalformed, "PING/PONG size");
  return Ping{getU64(payload, 0)};
}

Result<std::string> encode(const BootError& error) {
  std::string_view message = error.message;
  // Truncated rather than refused: a fatal error must always get through.
  if (message.size() > kMaxErrorBytes) message = message.substr(0, kMaxErrorBytes);
  return frameOf(FrameType::kError, kControlStream, message);
}

Result<BootError> decodeBootError(std::string_view payload) {
  if (payload.size() > kMaxErrorBytes) return makeError(ErrorCode::kOversized, "ERROR too long");
  return BootError{std::string(payload)};
}

}  // namespace plfm::guest_proto
