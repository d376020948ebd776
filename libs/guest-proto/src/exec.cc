// Exec payload codecs, host-channel.md §Exec.
#include "plfm/guest_proto/exec.h"

#include <utility>

#include "plfm/guest_proto/frame.h"
#include "wire.h"

namespace plfm::guest_proto {

using internal::exactSize;
using internal::Field;
using internal::getU16;
using internal::getU32;
using internal::getU8;
using internal::hasNul;
using internal::putTlv;
using internal::putTlvU32;
using internal::putTlvU8;
using internal::putU16;
using internal::putU32;
using internal::putU8;
using internal::splitTlv;

namespace {

Error invalid(std::string_view what, std::string_view problem) {
  return makeError(ErrorCode::kInvalidValue, std::string(what) + ": " + std::string(problem));
}

Result<void> zeroReserved(std::string_view what, std::string_view payload, size_t from, size_t to) {
  for (size_t i = from; i < to; ++i) {
    if (payload[i] != 0) return invalid(what, "reserved bytes must be 0");
  }
  return {};
}

bool validWindow(uint32_t window) { return window >= kMinExecWindow && window <= kMaxExecWindow; }

uint16_t tag(ExecOpenTag t) { return static_cast<uint16_t>(t); }

void putTlvU16(std::string& out, uint16_t t, uint16_t v) {
  std::string value;
  putU16(value, v);
  putTlv(out, t, value);
}

Result<uint32_t> fieldU32(const Field& f) {
  if (f.value.size() != 4) return invalid("EXEC_OPEN field " + std::to_string(f.tag), "4 bytes");
  return getU32(f.value, 0);
}
Result<uint16_t> fieldU16(const Field& f) {
  if (f.value.size() != 2) return invalid("EXEC_OPEN field " + std::to_string(f.tag), "2 bytes");
  return getU16(f.value, 0);
}

// Applies one EXEC_OPEN field; `seen` tracks the tags that may appear once.
Result<void> applyOpenField(ExecOpen& o, const Field& f, uint32_t& seen) {
  constexpr std::string_view kWhat = "EXEC_OPEN";
  if (f.tag == 0 || f.tag > tag(ExecOpenTag::kTimeoutMs)) {
    return makeError(ErrorCode::kUnknownField,
                     std::string(kWhat) + ": unknown field " + std::to_string(f.tag));
  }
  const uint32_t bit = uint32_t{1} << f.tag;
  const bool repeated = f.tag == tag(ExecOpenTag::kArgv) || f.tag == tag(ExecOpenTag::kEnv);
  if (!repeated && (seen & bit) != 0) {
    return makeError(ErrorCode::kDuplicateField,
                     std::string(kWhat) + ": field " + std::to_string(f.tag) + " appears twice");
  }
  seen |= bit;
  switch (static_cast<ExecOpenTag>(f.tag)) {
    case ExecOpenTag::kArgv:
      if (o.argv.size() == kMaxArgs) return makeError(ErrorCode::kOversized, "too many argv");
      o.argv.emplace_back(f.value);
      return {};
    case ExecOpenTag::kEnv:
      if (o.env.size() == kMaxEnv) return makeError(ErrorCode::kOversized, "too many env");
      o.env.emplace_back(f.value);
      return {};
    case ExecOpenTag::kUser:
      o.user.emplace(f.value);
      return {};
    case ExecOpenTag::kWorkdir:
      o.workdir.emplace(f.value);
      return {};
    case ExecOpenTag::kTty: {
      if (f.value.size() != 1 || getU8(f.value, 0) > 1) return invalid(kWhat, "tty must be 0 or 1");
      o.tty = getU8(f.value, 0) == 1;
      return {};
    }
    case ExecOpenTag::kRows: {
      auto v = fieldU16(f);
      if (!v) return v.error();
      o.rows = *v;
      return {};
    }
    case ExecOpenTag::kCols: {
      auto v = fieldU16(f);
      if (!v) return v.error();
      o.cols = *v;
      return {};
    }
    case ExecOpenTag::kWindow: {
      auto v = fieldU32(f);
      if (!v) return v.error();
      o.window = *v;
      return {};
    }
    case ExecOpenTag::kTimeoutMs: {
      auto v = fieldU32(f);
      if (!v) return v.error();
      o.timeout_ms = *v;
      return {};
    }
  }
  return {};
}

bool validExitCode(ExecExitKind kind, int32_t code) {
  switch (kind) {
    case ExecExitKind::kExited:
      return code >= 0 && code <= 255;
    case ExecExitKind::kNotStarted:
      return code >= 1 && code <= 255;
    case ExecExitKind::kSignaled:
    case ExecExitKind::kTimedOut:
      return code >= 1 && code <= kMaxSignal;
  }
  return false;
}

Result<void> validateExit(const ExecExit& e) {
  constexpr std::string_view kWhat = "EXEC_EXIT";
  const auto kind = static_cast<uint8_t>(e.kind);
  if (kind < 1 || kind > 4) return invalid(kWhat, "unknown kind " + std::to_string(kind));
  if (!validExitCode(e.kind, e.code)) {
    return invalid(kWhat, "code " + std::to_string(e.code) + " is out of range for its kind");
  }
  if (e.message.size() > kMaxExecMessageBytes) {
    return makeError(ErrorCode::kOversized, "EXEC_EXIT message exceeds 1024 bytes");
  }
  if ((e.kind == ExecExitKind::kNotStarted) == e.message.empty()) {
    return invalid(kWhat, "a message is required for not_started and only there");
  }
  return {};
}

Result<void> validateData(const ExecData& d) {
  if (static_cast<uint8_t>(d.fd) > 2) return invalid("EXEC_DATA", "fd must be 0, 1 or 2");
  if (d.data.empty()) return makeError(ErrorCode::kMalformed, "EXEC_DATA carries no bytes");
  if (d.data.size() > kMaxExecDataBytes) {
    return makeError(ErrorCode::kOversized, "EXEC_DATA of " + std::to_string(d.data.size()) +
                                                " bytes exceeds " +
                                                std::to_string(kMaxExecDataBytes));
  }
  return {};
}

}  // namespace

int ExecExit::status() const {
  return kind == ExecExitKind::kSignaled || kind == ExecExitKind::kTimedOut ? 128 + code : code;
}

Result<void> validateExecOpen(const ExecOpen& o) {
  constexpr std::string_view kWhat = "EXEC_OPEN";
  if (o.argv.empty()) return makeError(ErrorCode::kMissingField, "EXEC_OPEN has no argv");
  if (o.argv.size() > kMaxArgs) return makeError(ErrorCode::kOversized, "too many argv entries");
  if (o.env.size() > kMaxEnv) return makeError(ErrorCode::kOversized, "too many env entries");
  if (o.argv[0].empty()) return invalid(kWhat, "argv[0] is empty");
  for (size_t i = 0; i < o.argv.size(); ++i) {
    if (hasNul(o.argv[i])) return invalid(kWhat, "argv[" + std::to_string(i) + "] contains NUL");
  }
  for (size_t i = 0; i < o.env.size(); ++i) {
    const std::string& e = o.env[i];
    const size_t eq = e.find('=');
    if (eq == std::string::npos || eq == 0 || hasNul(e)) {
      return invalid(kWhat, "env[" + std::to_string(i) + "] is not KEY=VALUE");
    }
  }
  if (o.user && (o.user->empty() || o.user->size() > kMaxExecUserBytes || hasNul(*o.user))) {
    return invalid(kWhat, "user must be 1..256 bytes without NUL");
  }
  if (o.workdir && (o.workdir->empty() || (*o.workdir)[0] != '/' ||
                    o.workdir->size() > kMaxPathBytes || hasNul(*o.workdir))) {
    return invalid(kWhat, "workdir must be an absolute path");
  }
  if (o.rows == 0 || o.cols == 0) return invalid(kWhat, "rows and cols must be at least 1");
  if (!o.tty && (o.rows != kDefaultExecRows || o.cols != kDefaultExecCols)) {
    return invalid(kWhat, "rows and cols need tty");
  }
  if (!validWindow(o.window)) return invalid(kWhat, "window must be 16 KiB..1 MiB");
  return {};
}

Result<std::string> encode(const ExecOpen& o, uint16_t stream) {
  auto valid = validateExecOpen(o);
  if (!valid) return valid.error();
  std::string p;
  for (const auto& a : o.argv) putTlv(p, tag(ExecOpenTag::kArgv), a);
  for (const auto& e : o.env) putTlv(p, tag(ExecOpenTag::kEnv), e);
  if (o.user) putTlv(p, tag(ExecOpenTag::kUser), *o.user);
  if (o.workdir) putTlv(p, tag(ExecOpenTag::kWorkdir), *o.workdir);
  if (o.tty) putTlvU8(p, tag(ExecOpenTag::kTty), 1);
  if (o.rows != kDefaultExecRows) putTlvU16(p, tag(ExecOpenTag::kRows), o.rows);
  if (o.cols != kDefaultExecCols) putTlvU16(p, tag(ExecOpenTag::kCols), o.cols);
  if (o.window != kExecInitialWindow) putTlvU32(p, tag(ExecOpenTag::kWindow), o.window);
  if (o.timeout_ms != 0) putTlvU32(p, tag(ExecOpenTag::kTimeoutMs), o.timeout_ms);
  if (p.size() > kMaxExecOpenBytes) {
    return makeError(ErrorCode::kOversized, "EXEC_OPEN payload of " + std::to_string(p.size()) +
                                                " bytes exceeds its limit of 65536");
  }
  return encodeFrame(FrameType::kExecOpen, stream, p);
}

Result<ExecOpen> decodeExecOpen(std::string_view payload) {
  auto fields = splitTlv(payload, "EXEC_OPEN");
  if (!fields) return fields.error();
  ExecOpen o;
  uint32_t seen = 0;
  for (const Field& f : *fields) {
    auto applied = applyOpenField(o, f, seen);
    if (!applied) return applied.error();
  }
  auto valid = validateExecOpen(o);
  if (!valid) return valid.error();
  return o;
}

Result<std::string> encode(const ExecData& d, uint16_t stream) {
  auto valid = validateData(d);
  if (!valid) return valid.error();
  std::string p;
  p.reserve(kExecDataHeaderBytes + d.data.size());
  putU8(p, static_cast<uint8_t>(d.fd));
  p.append(3, '\0');
  p.append(d.data);
  return encodeFrame(FrameType::kExecData, stream, p);
}

Result<ExecData> decodeExecData(std::string_view payload) {
  if (payload.size() < kExecDataHeaderBytes) {
    return makeError(ErrorCode::kMalformed, "EXEC_DATA payload is shorter than its header");
  }
  auto reserved = zeroReserved("EXEC_DATA", payload, 1, kExecDataHeaderBytes);
  if (!reserved) return reserved.error();
  ExecData d{static_cast<ExecFd>(getU8(payload, 0)),
             std::string(payload.substr(kExecDataHeaderBytes))};
  auto valid = validateData(d);
  if (!valid) return valid.error();
  return d;
}

Result<std::string> encode(const ExecResize& r, uint16_t stream) {
  if (r.rows == 0 || r.cols == 0) return invalid("EXEC_RESIZE", "rows and cols must be >= 1");
  std::string p;
  putU16(p, r.rows);
  putU16(p, r.cols);
  return encodeFrame(FrameType::kExecResize, stream, p);
}

Result<ExecResize> decodeExecResize(std::string_view payload) {
  auto size = exactSize("EXEC_RESIZE", payload, kExecResizeBytes);
  if (!size) return size.error();
  ExecResize r{getU16(payload, 0), getU16(payload, 2)};
  if (r.rows == 0 || r.cols == 0) return invalid("EXEC_RESIZE", "rows and cols must be >= 1");
  return r;
}

Result<std::string> encode(const ExecSignal& s, uint16_t stream) {
  if (s.signal < 1 || s.signal > kMaxSignal) return invalid("EXEC_SIGNAL", "signal must be 1..64");
  std::string p;
  putU32(p, static_cast<uint32_t>(s.signal));
  return encodeFrame(FrameType::kExecSignal, stream, p);
}

Result<ExecSignal> decodeExecSignal(std::string_view payload) {
  auto size = exactSize("EXEC_SIGNAL", payload, kExecSignalBytes);
  if (!size) return size.error();
  const uint32_t sig = getU32(payload, 0);
  if (sig < 1 || sig > kMaxSignal) return invalid("EXEC_SIGNAL", "signal must be 1..64");
  return ExecSignal{static_cast<int32_t>(sig)};
}

Result<std::string> encode(const ExecExit& e, uint16_t stream) {
  auto valid = validateExit(e);
  if (!valid) return valid.error();
  std::string p;
  putU8(p, static_cast<uint8_t>(e.kind));
  p.append(3, '\0');
  putU32(p, static_cast<uint32_t>(e.code));
  p.append(e.message);
  return encodeFrame(FrameType::kExecExit, stream, p);
}

Result<ExecExit> decodeExecExit(std::string_view payload) {
  if (payload.size() < kExecExitHeaderBytes) {
    return makeError(ErrorCode::kMalformed, "EXEC_EXIT payload is shorter than its header");
  }
  auto reserved = zeroReserved("EXEC_EXIT", payload, 1, 4);
  if (!reserved) return reserved.error();
  ExecExit e{static_cast<ExecExitKind>(getU8(payload, 0)), static_cast<int32_t>(getU32(payload, 4)),
             std::string(payload.substr(kExecExitHeaderBytes))};
  auto valid = validateExit(e);
  if (!valid) return valid.error();
  return e;
}

Result<std::string> encode(const ExecClose& c, uint16_t stream) {
  const auto kind = static_cast<uint8_t>(c.kind);
  if (kind < 1 || kind > 2) return invalid("EXEC_CLOSE", "kind must be 1 or 2");
  std::string p;
  putU8(p, kind);
  return encodeFrame(FrameType::kExecClose, stream, p);
}

Result<ExecClose> decodeExecClose(std::string_view payload) {
  auto size = exactSize("EXEC_CLOSE", payload, kExecCloseBytes);
  if (!size) return size.error();
  const uint8_t kind = getU8(payload, 0);
  if (kind < 1 || kind > 2) return invalid("EXEC_CLOSE", "kind must be 1 or 2");
  return ExecClose{static_cast<ExecCloseKind>(kind)};
}

Result<std::string> encode(const ExecWindow& w, uint16_t stream) {
  if (w.increment == 0 || w.increment > kMaxExecCredit) {
    return invalid("EXEC_WINDOW", "increment must be 1..2^31-1");
  }
  std::string p;
  putU32(p, w.increment);
  return encodeFrame(FrameType::kExecWindow, stream, p);
}

Result<ExecWindow> decodeExecWindow(std::string_view payload) {
  auto size = exactSize("EXEC_WINDOW", payload, kExecWindowBytes);
  if (!size) return size.error();
  const uint32_t inc = getU32(payload, 0);
  if (inc == 0 || inc > kMaxExecCredit)
    return invalid("EXEC_WINDOW", "increment must be 1..2^31-1");
  return ExecWindow{inc};
}

}  // namespace plfm::guest_proto
