// Fuzzes the frame decoder and every payload decoder with the same input.
// Properties: nothing crashes; the decoder never returns a frame above its
// type's limit; whatever a payload decoder accepts re-encodes and decodes to
// the same message (so encoder and decoder agree on validity); feeding the
// input in two pieces yields the same frames as feeding it at once.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/guest_proto/guest_proto.h"

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}

namespace gp = plfm::guest_proto;
constexpr uint16_t kStream = gp::kFirstExecStream;

template <class T, class Decode, class Encode>
void roundTrip(std::string_view payload, Decode decode, Encode encodeFn) {
  auto decoded = decode(payload);
  if (!decoded) {
    check(!decoded.error().message.empty());
    return;
  }
  std::string bytes = encodeFn(*decoded);
  gp::Decoder d;
  d.feed(bytes);
  auto frame = d.next();
  check(frame.has_value() && frame->has_value());
  auto again = decode((*frame)->payload);
  check(again.has_value() && *again == *decoded);
}

std::vector<gp::Frame> decodeAll(std::string_view input, size_t split) {
  gp::Decoder d;
  std::vector<gp::Frame> out;
  d.feed(input.substr(0, split));
  for (int pass = 0; pass < 2; ++pass) {
    while (true) {
      auto frame = d.next();
      if (!frame || !*frame) break;
      check((*frame)->payload.size() <= gp::maxPayloadFor((*frame)->type));
      out.push_back(std::move(**frame));
    }
    if (pass == 0) d.feed(input.substr(split));
  }
  return out;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  const auto whole = decodeAll(input, input.size());
  const auto split = decodeAll(input, input.size() / 3);
  check(whole == split);

  // Payload decoders on the raw input and on every frame found.
  std::vector<std::string_view> payloads = {input};
  for (const auto& f : whole) payloads.push_back(f.payload);
  for (std::string_view p : payloads) {
    roundTrip<gp::Config>(p, gp::decodeConfig, [](const gp::Config& c) { return *gp::encode(c); });
    roundTrip<gp::Hello>(p, gp::decodeHello, [](const gp::Hello& h) { return *gp::encode(h); });
    roundTrip<gp::Log>(p, gp::decodeLog, [](const gp::Log& l) { return *gp::encode(l); });
    roundTrip<gp::Ready>(p, gp::decodeReady, [](const gp::Ready& r) { return gp::encode(r); });
    roundTrip<gp::Exit>(p, gp::decodeExit, [](const gp::Exit& e) { return gp::encode(e); });
    roundTrip<gp::Shutdown>(p, gp::decodeShutdown,
                            [](const gp::Shutdown& s) { return gp::encode(s); });
    roundTrip<gp::Ping>(p, gp::decodePing, [](const gp::Ping& x) { return gp::encodePing(x); });
    roundTrip<gp::BootError>(p, gp::decodeBootError,
                             [](const gp::BootError& e) { return *gp::encode(e); });
    roundTrip<gp::ExecOpen>(p, gp::decodeExecOpen,
                            [](const gp::ExecOpen& o) { return *gp::encode(o, kStream); });
    roundTrip<gp::ExecData>(p, gp::decodeExecData,
                            [](const gp::ExecData& d) { return *gp::encode(d, kStream); });
    roundTrip<gp::ExecResize>(p, gp::decodeExecResize,
                              [](const gp::ExecResize& r) { return *gp::encode(r, kStream); });
    roundTrip<gp::ExecSignal>(p, gp::decodeExecSignal,
                              [](const gp::ExecSignal& s) { return *gp::encode(s, kStream); });
    roundTrip<gp::ExecExit>(p, gp::decodeExecExit,
                            [](const gp::ExecExit& e) { return *gp::encode(e, kStream); });
    roundTrip<gp::ExecClose>(p, gp::decodeExecClose,
                             [](const gp::ExecClose& c) { return *gp::encode(c, kStream); });
    roundTrip<gp::ResizeVolume>(p, gp::decodeResizeVolume,
                                [](const gp::ResizeVolume& r) { return *gp::encode(r); });
    roundTrip<gp::VolumeResized>(p, gp::decodeVolumeResized,
                                 [](const gp::VolumeResized& r) { return gp::encode(r); });
    roundTrip<gp::VolumeFailed>(p, gp::decodeVolumeFailed,
                                [](const gp::VolumeFailed& f) { return *gp::encode(f); });
    roundTrip<gp::Freeze>(p, gp::decodeFreeze, [](const gp::Freeze& f) { return *gp::encode(f); });
    roundTrip<gp::VolumeOpId>(p, gp::decodeVolumeOpId,
                              [](const gp::VolumeOpId& v) { return gp::encodeThaw(v); });
    roundTrip<gp::Thawed>(p, gp::decodeThawed, [](const gp::Thawed& t) { return gp::encode(t); });
    roundTrip<gp::ExecWindow>(p, gp::decodeExecWindow,
                              [](const gp::ExecWindow& w) { return *gp::encode(w, kStream); });
  }
  return 0;
}
