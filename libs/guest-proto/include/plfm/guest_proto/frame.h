// Framing of the host<->guest channel (docs/specs/runtime/host-channel.md
// §Frame header): one byte stream per VM carrying frames of
//   type(1) flags(1) stream(2, BE) length(4, BE) payload(length)
// The Decoder is incremental: feed it whatever read() returned (a byte, half
// a header, three frames) and pull complete frames out. It checks every
// header as soon as its 8 bytes are in, so an oversized or unknown frame is
// refused before its payload is buffered. After an error the decoder stays
// failed: the stream has lost framing and the only recovery is a new
// connection (or a new VM).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "plfm/guest_proto/constants.h"
#include "plfm/guest_proto/error.h"

namespace plfm::guest_proto {

struct Frame {
  FrameType type = FrameType::kPing;
  uint16_t stream = kControlStream;
  std::string payload;  // raw bytes; decode with the messages.h functions

  bool operator==(const Frame&) const = default;
};

// "HELLO", "CONFIG", ...; "0x3f" for an undefined value.
[[nodiscard]] std::string frameTypeName(FrameType type);

// The largest payload a frame of `type` may carry (the per-type limit that
// the decoder enforces at header time); 0 for an undefined type.
[[nodiscard]] size_t maxPayloadFor(FrameType type);

// Checks a header's type, flags, stream and length without its payload.
[[nodiscard]] Result<void> checkHeader(uint8_t type, uint8_t flags, uint16_t stream,
                                       uint32_t length);

// Header plus payload; fails only when the frame would not pass checkHeader.
[[nodiscard]] Result<std::string> encodeFrame(FrameType type, uint16_t stream,
                                              std::string_view payload);

class Decoder {
 public:
  // Appends bytes read from the stream. Cheap; all checking happens in next().
  void feed(std::string_view bytes);
  void feed(const void* data, size_t size) {
    feed(std::string_view(static_cast<const char*>(data), size));
  }

  // The next complete frame, std::nullopt when more bytes are needed, or the
  // (sticky) error that broke the stream.
  [[nodiscard]] Result<std::optional<Frame>> next();

  // Bytes fed but not yet returned as frames.
  [[nodiscard]] size_t buffered() const { return buffer_.size() - offset_; }
  [[nodiscard]] bool failed() const { return error_.has_value(); }

 private:
  std::string buffer_;
  size_t offset_ = 0;
  std::optional<Error> error_;
};

}  // namespace plfm::guest_proto
