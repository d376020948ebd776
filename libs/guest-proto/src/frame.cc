#include "plfm/guest_proto/frame.h"

#include <cstdio>
#include <utility>

#include "wire.h"

namespace plfm::guest_proto {

std::string_view codeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOversized:
      return "guest_proto.oversized";
    case ErrorCode::kUnknownFrameType:
      return "guest_proto.unknown_frame_type";
    case ErrorCode::kBadHeader:
      return "guest_proto.bad_header";
    case ErrorCode::kMalformed:
      return "guest_proto.malformed";
    case ErrorCode::kMissingField:
      return "guest_proto.missing_field";
    case ErrorCode::kDuplicateField:
      return "guest_proto.duplicate_field";
    case ErrorCode::kUnknownField:
      return "guest_proto.unknown_field";
    case ErrorCode::kInvalidValue:
      return "guest_proto.invalid_value";
    case ErrorCode::kUnsupportedVersion:
      return "guest_proto.unsupported_version";
  }
  return "guest_proto.unknown";
}

std::string Error::toString() const {
  std::string out(codeName(code));
  out += ": ";
  out += message;
  return out;
}

namespace {

enum class StreamRule { kControl, kWorkload, kExec };

struct TypeInfo {
  std::string_view name;
  StreamRule stream;
  size_t max_payload;
};

// host-channel.md §Frame types: which stream each type travels on and its
// payload limit. Undefined types return nullptr.
const TypeInfo* typeInfo(uint8_t type) {
  static constexpr TypeInfo kHello{"HELLO", StreamRule::kControl, kMaxHelloBytes};
  static constexpr TypeInfo kConfig{"CONFIG", StreamRule::kControl, kMaxPayloadBytes};
  static constexpr TypeInfo kReady{"READY", StreamRule::kControl, kReadyStagesBytes};
  static constexpr TypeInfo kLog{"LOG", StreamRule::kWorkload, kLogHeaderBytes + kMaxLogDataBytes};
  static constexpr TypeInfo kExit{"EXIT", StreamRule::kControl, kExitBytes};
  static constexpr TypeInfo kShutdown{"SHUTDOWN", StreamRule::kControl, kShutdownBytes};
  static constexpr TypeInfo kPing{"PING", StreamRule::kControl, kPingBytes};
  static constexpr TypeInfo kPong{"PONG", StreamRule::kControl, kPingBytes};
  static constexpr TypeInfo kError{"ERROR", StreamRule::kControl, kMaxErrorBytes};
  static constexpr TypeInfo kStatus{"STATUS", StreamRule::kControl, 0};
  static constexpr TypeInfo kResizeVolume{"RESIZE_VOLUME", StreamRule::kControl,
                                          kResizeVolumeHeaderBytes + kMaxVolumeSerialBytes};
  static constexpr TypeInfo kVolumeResized{"VOLUME_RESIZED", StreamRule::kControl,
                                           kVolumeResizedBytes};
  static constexpr TypeInfo kVolumeFailed{"VOLUME_FAILED", StreamRule::kControl,
                                          kVolumeOpHeaderBytes + kMaxVolumeFailureBytes};
  static constexpr TypeInfo kFreeze{"FREEZE", StreamRule::kControl,
                                    kVolumeOpHeaderBytes + kMaxVolumeSerialBytes};
  static constexpr TypeInfo kFrozen{"FROZEN", StreamRule::kControl, kVolumeOpHeaderBytes};
  static constexpr TypeInfo kThaw{"THAW", StreamRule::kControl, kVolumeOpHeaderBytes};
  static constexpr TypeInfo kThawed{"THAWED", StreamRule::kControl, kThawedBytes};
  static constexpr TypeInfo kExecOpen{"EXEC_OPEN", StreamRule::kExec, kMaxExecOpenBytes};
  static constexpr TypeInfo kExecData{"EXEC_DATA", StreamRule::kExec,
                                      kExecDataHeaderBytes + kMaxExecDataBytes};
  static constexpr TypeInfo kExecResize{"EXEC_RESIZE", StreamRule::kExec, kExecResizeBytes};
  static constexpr TypeInfo kExecSignal{"EXEC_SIGNAL", StreamRule::kExec, kExecSignalBytes};
  static constexpr TypeInfo kExecExit{"EXEC_EXIT", StreamRule::kExec,
                                      kExecExitHeaderBytes + kMaxExecMessageBytes};
  static constexpr TypeInfo kExecClose{"EXEC_CLOSE", StreamRule::kExec, kExecCloseBytes};
  static constexpr TypeInfo kExecWindow{"EXEC_WINDOW", StreamRule::kExec, kExecWindowBytes};
  switch (static_cast<FrameType>(type)) {
    case FrameType::kHello:
      return &kHello;
    case FrameType::kConfig:
      return &kConfig;
    case FrameType::kReady:
      return &kReady;
    case FrameType::kLog:
      return &kLog;
    case FrameType::kExit:
      return &kExit;
    case FrameType::kShutdown:
      return &kShutdown;
    case FrameType::kPing:
      return &kPing;
    case FrameType::kPong:
      return &kPong;
    case FrameType::kError:
      return &kError;
    case FrameType::kStatus:
      return &kStatus;
    case FrameType::kResizeVolume:
      return &kResizeVolume;
    case FrameType::kVolumeResized:
      return &kVolumeResized;
    case FrameType::kVolumeFailed:
      return &kVolumeFailed;
    case FrameType::kFreeze:
      return &kFreeze;
    case FrameType::kFrozen:
      return &kFrozen;
    case FrameType::kThaw:
      return &kThaw;
    case FrameType::kThawed:
      return &kThawed;
    case FrameType::kExecOpen:
      return &kExecOpen;
    case FrameType::kExecData:
      return &kExecData;
    case FrameType::kExecResize:
      return &kExecResize;
    case FrameType::kExecSignal:
      return &kExecSignal;
    case FrameType::kExecExit:
      return &kExecExit;
    case FrameType::kExecClose:
      return &kExecClose;
    case FrameType::kExecWindow:
      return &kExecWindow;
  }
  return nullptr;
}

std::string hexByte(uint8_t v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", v);
  return buf;
}

}  // namespace

std::string frameTypeName(FrameType type) {
  const TypeInfo* info = typeInfo(static_cast<uint8_t>(type));
  return info != nullptr ? std::string(info->name) : hexByte(static_cast<uint8_t>(type));
}

size_t maxPayloadFor(FrameType type) {
  const TypeInfo* info = typeInfo(static_cast<uint8_t>(type));
  return info != nullptr ? info->max_payload : 0;
}

Result<void> checkHeader(uint8_t type, uint8_t flags, uint16_t stream, uint32_t length) {
  const TypeInfo* info = typeInfo(type);
  if (info == nullptr) {
    return makeError(ErrorCode::kUnknownFrameType, "unknown frame type " + hexByte(type));
  }
  const std::string name(info->name);
  if (flags != 0) {
    return makeError(ErrorCode::kBadHeader,
                     name + " frame has flags " + hexByte(flags) + "; none are defined");
  }
  bool stream_ok = false;
  switch (info->stream) {
    case StreamRule::kControl:
      stream_ok = stream == kControlStream;
      break;
    case StreamRule::kWorkload:
      stream_ok = stream == kWorkloadStream;
      break;
    case StreamRule::kExec:
      stream_ok = stream >= kFirstExecStream && stream <= kLastExecStream;
      break;
  }
  if (!stream_ok) {
    return makeError(ErrorCode::kBadHeader,
                     name + " frame on stream " + std::to_string(stream) + " is not allowed");
  }
  if (length > info->max_payload) {
    return makeError(ErrorCode::kOversized, name + " frame of " + std::to_string(length) +
                                                " bytes exceeds its limit of " +
                                                std::to_string(info->max_payload));
  }
  return {};
}

Result<std::string> encodeFrame(FrameType type, uint16_t stream, std::string_view payload) {
  if (payload.size() > kMaxPayloadBytes) {
    return makeError(ErrorCode::kOversized, frameTypeName(type) + " payload of " +
                                                std::to_string(payload.size()) +
                                                " bytes exceeds the frame limit");
  }
  auto checked =
      checkHeader(static_cast<uint8_t>(type), 0, stream, static_cast<uint32_t>(payload.size()));
  if (!checked) return tl::unexpected(std::move(checked).error());
  std::string out;
  out.reserve(kHeaderBytes + payload.size());
  internal::putU8(out, static_cast<uint8_t>(type));
  internal::putU8(out, 0);
  internal::putU16(out, stream);
  internal::putU32(out, static_cast<uint32_t>(payload.size()));
  out.append(payload);
  return out;
}

void Decoder::feed(std::string_view bytes) {
  if (error_) return;
  // Compact once the consumed prefix dominates, so a long-lived stream does
  // not grow the buffer without bound.
  if (offset_ > 0 && offset_ >= buffer_.size() / 2) {
    buffer_.erase(0, offset_);
    offset_ = 0;
  }
  buffer_.append(bytes);
}

Result<std::optional<Frame>> Decoder::next() {
  if (error_) return tl::unexpected(*error_);
  const std::string_view pending = std::string_view(buffer_).substr(offset_);
  if (pending.size() < kHeaderBytes) return std::optional<Frame>();
  const uint8_t type = internal::getU8(pending, 0);
  const uint8_t flags = internal::getU8(pending, 1);
  const uint16_t stream = internal::getU16(pending, 2);
  const uint32_t length = internal::getU32(pending, 4);
  auto checked = checkHeader(type, flags, stream, length);
  if (!checked) {
    error_ = checked.error();
    buffer_.clear();
    offset_ = 0;
    return tl::unexpected(*error_);
  }
  if (pending.size() - kHeaderBytes < length) return std::optional<Frame>();
  Frame frame;
  frame.type = static_cast<FrameType>(type);
  frame.stream = stream;
  frame.payload.assign(pending.substr(kHeaderBytes, length));
  offset_ += kHeaderBytes + length;
  if (offset_ == buffer_.size()) {
    buffer_.clear();
    offset_ = 0;
  }
  return std::optional<Frame>(std::move(frame));
}

}  // namespace plfm::guest_proto
