// guest-proto: the framed, multiplexed host<->guest channel shared by the
// node agent and vt-init (docs/specs/runtime/host-channel.md). One byte
// stream per VM (QEMU virtio-serial behind a Unix socket, or Firecracker
// vsock) carries frames; the boot handshake is
//   agent starts VMM -> guest HELLO -> agent CONFIG -> guest READY
// then LOG frames, PING/PONG, SHUTDOWN from the host and EXIT from the guest.
// An agent that restarts reattaches by sending STATUS (the guest answers
// READY, EXIT or HELLO).
//
// Host side, in short:
//
//   namespace gp = plfm::guest_proto;
//   gp::Decoder decoder;
//   decoder.feed(buf, n);                       // whatever read() returned
//   while (true) {
//     auto frame = decoder.next();
//     if (!frame) return fail(frame.error().toString());   // stream is broken
//     if (!*frame) break;                                  // need more bytes
//     switch ((*frame)->type) {
//       case gp::FrameType::kHello: {
//         auto hello = gp::decodeHello((*frame)->payload);  // check version
//         gp::Config config;
//         config.argv = {"/bin/app", "--serve"};
//         config.network.emplace();
//         config.network->ipv6_address = *gp::parseIpv6("2001:db8::5");
//         auto bytes = gp::encode(config);                 // Result<std::string>
//         writeAll(fd, *bytes);
//         break;
//       }
//       case gp::FrameType::kLog: {
//         auto log = gp::decodeLog((*frame)->payload);     // source, timestamp, data
//         break;
//       }
//       case gp::FrameType::kExit: ...                      // gp::decodeExit
//     }
//   }
//   writeAll(fd, gp::encode(gp::Shutdown{5000}));
#pragma once

#include "plfm/guest_proto/constants.h"
#include "plfm/guest_proto/error.h"
#include "plfm/guest_proto/exec.h"
#include "plfm/guest_proto/frame.h"
#include "plfm/guest_proto/messages.h"
#include "plfm/guest_proto/volume_ops.h"
