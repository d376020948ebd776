#include "agent/exec_endpoint.h"

#include <algorithm>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "plfm/core/hex.h"
#include "plfm/core/log.h"
#include "plfm/core/sha256.h"

namespace plfm::agent {
namespace gp = guest_proto;
namespace {

constexpr std::string_view kSuffix = "/exec";

// The EXEC_OPEN payload of the first message, when it is exactly one
// EXEC_OPEN frame.
std::optional<std::string> openPayload(std::string_view message) {
  gp::Decoder decoder;
  decoder.feed(message);
  auto frame = decoder.next();
  if (!frame || !*frame || decoder.buffered() != 0) return std::nullopt;
  if ((*frame)->type != gp::FrameType::kExecOpen) return std::nullopt;
  return std::move((*frame)->payload);
}

uint16_t closeCodeFor(const Error& e) {
  if (e.is(kExecRefused)) return kCloseRefused;
  if (e.is(kExecCredit)) return http::kClosePolicyViolation;
  if (e.is(kExecProtocol)) return http::kCloseProtocolError;
  return kCloseSessionLost;
}

std::string_view outcomeOf(uint16_t close_code) {
  switch (close_code) {
    case kCloseRefused:
      return "refused";
    case http::kClosePolicyViolation:
      return "credit";
    case http::kCloseProtocolError:
      return "protocol";
    default:
      return "lost";
  }
}

// What the client did, as seen by the session's reader thread.
struct ClientSide {
  std::mutex mu;
  bool done = false;  // it closed, failed, or broke the protocol
  uint16_t code = 0;  // the close code to answer a broken protocol with
  std::string reason;
};

}  // namespace

std::string execRefusal(const ExecTarget& target) {
  if (target.phase != Phase::kRunning) {
    return "the instance is " + std::string(phaseName(target.phase)) + ", not running";
  }
  if (target.exec_revision == 0) {
    return "the instance's guest predates exec (its HELLO has no exec_revision)";
  }
  if (!target.mux || !target.mux->attached()) return "the instance's host channel is not connected";
  return "";
}

http::WebSocketOptions ExecEndpoint::defaultWebSocketOptions() {
  http::WebSocketOptions o;
  // One frame per message: the largest is an EXEC_OPEN.
  o.max_message_bytes = gp::kHeaderBytes + gp::kMaxExecOpenBytes;
  return o;
}

bool ExecEndpoint::matches(const http::Request& req) { return matchesInstanceRoute(req, kSuffix); }

http::Response ExecEndpoint::serve(const http::Request& req) const {
  // The signature covers the target with its query (and so `open`).
  std::string_view id;
  if (auto refused = checkRelayRequest(req, kSuffix, verifier.get(), id)) return *refused;
  const auto open = req.queryParam("open");
  if (!open || !isLowerHex64(*open)) {
    return relayError(400, "invalid_query",
                      "open must be the lowercase hex SHA-256 of the EXEC_OPEN");
  }
  const std::string instance_id(id);
  auto target = lookup ? lookup(instance_id) : std::nullopt;
  if (!target) return relayError(404, "not_found", "the instance is not on this node");
  if (auto why = execRefusal(*target); !why.empty()) return relayError(409, "conflict", why);
  return http::acceptWebSocket(
      req, ws_options,
      [lookup = lookup, metrics = metrics, instance_id,
       open_sha256 = std::string(*open)](http::WebSocket& ws) {
        const auto t0 = std::chrono::steady_clock::now();
        const std::string_view outcome =
            runExecSession(ws, open_sha256, [&] { return lookup(instance_id); });
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - t0)
                            .count();
        // Never argv, env or stream contents: they can carry secrets.
        log::info("exec session ended", {{"instance_id", instance_id},
                                         {"outcome", std::string(outcome)},
                                         {"duration_ms", static_cast<int64_t>(ms)}});
        if (metrics != nullptr) {
          metrics->counter("plfm_agent_exec_sessions_total", "Exec sessions by how they ended")
              .inc({{"outcome", std::string(outcome)}});
        }
      });
}

std::string_view runExecSession(http::WebSocket& ws, const std::string& open_sha256,
                                const std::function<std::optional<ExecTarget>()>& lookup) {
  auto first = ws.read();
  if (!first) return "client_gone";  // it left before asking for anything
  auto payload = openPayload(*first);
  if (!payload || Sha256::hex(*payload) != open_sha256) {
    // Whatever it is, it is not the command the control plane signed.
    (void)ws.close(http::kClosePolicyViolation, "the first message is not the signed EXEC_OPEN");
    return "open_mismatch";
  }
  // Conditions may have changed since the upgrade was accepted.
  auto target = lookup();
  if (!target) {
    (void)ws.close(kCloseRefused, "the instance is not on this node");
    return "refused";
  }
  if (auto why = execRefusal(*target); !why.empty()) {
    (void)ws.close(kCloseRefused, why);
    return "refused";
  }
  auto opened = target->mux->open(*payload);
  if (!opened) {
    const uint16_t code = closeCodeFor(opened.error());
    (void)ws.close(code, opened.error().message());
    return outcomeOf(code);
  }
  std::shared_ptr<ExecSession> session = std::move(*opened);

  ClientSide client;
  std::thread reader([&] {
    while (true) {
      auto msg = ws.read();
      if (!msg) break;  // closed or failed: gone
      auto r = session->fromClient(*msg);
      // Lost: the writer closes with 4000 as soon as it sees it; until then
      // the client's frames have nowhere to go.
      if (!r && r.error().is(kExecLost)) continue;
      if (!r) {
        std::lock_guard lock(client.mu);
        client.code = closeCodeFor(r.error());
        client.reason = r.error().message();
        break;
      }
    }
    {
      std::lock_guard lock(client.mu);
      client.done = true;
    }
    session->wake();
  });

  bool exited = false;
  uint16_t code = 0;
  std::string reason;
  while (true) {
    {
      std::lock_guard lock(client.mu);
      if (client.done) {
        code = client.code;
        reason = client.reason;
        break;
      }
    }
    auto ev = session->next(std::chrono::milliseconds(500));
    if (!ev) continue;
    if (ev->kind == ExecEvent::Kind::kLost) {
      code = kCloseSessionLost;
      reason = ev->reason;
      break;
    }
    if (!ws.write(ev->frame)) break;  // the client failed
    if (ev->kind == ExecEvent::Kind::kExit) {
      exited = true;
      code = http::kCloseNormal;
      break;
    }
  }
  // The client is gone (or broke the protocol) before EXIT: kill the command.
  if (!exited) session->abort();
  (void)ws.close(code == 0 ? http::kCloseNormal : code, reason);
  reader.join();
  if (exited) return "exited";
  return code == 0 ? "client_gone" : outcomeOf(code);
}

}  // namespace plfm::agent
