#include "exec_relay.h"

#include "plfm/core/json.h"

#include <mutex>
#include <system_error>
#include <thread>

#include "plfm/guest_proto/frame.h"

namespace plfm::cp {
namespace gp = guest_proto;

namespace {

Error bad(const std::string& why) { return Error(plfm::errc::kInvalidArgument, why); }

Error badFrame(gp::FrameType type, const gp::Error& e) {
  return bad(gp::frameTypeName(type) + " does not decode: " + e.toString());
}

template <class R>
std::optional<gp::Error> errorOf(const R& r) {
  return r ? std::nullopt : std::optional<gp::Error>(r.error());
}

// The relay's view of one session: the first side to end it decides the
// outcome; the other side's ending afterwards changes nothing.
class Ending {
 public:
  bool decide(RelayEnd end) {
    std::lock_guard lock(mu_);
    if (end_) return false;
    end_ = std::move(end);
    return true;
  }
  RelayEnd result() {
    std::lock_guard lock(mu_);
    return end_.value_or(RelayEnd{"lost", std::nullopt, "the relay ended"});
  }

 private:
  std::mutex mu_;
  std::optional<RelayEnd> end_;
};

void abortAgent(http::WebSocket& agent) {
  if (auto frame = gp::encode(gp::ExecClose{gp::ExecCloseKind::kAbort}, gp::kFirstExecStream)) {
    (void)agent.write(*frame);
  }
  (void)agent.close(http::kCloseNormal, "the client went away");
}

RelayEnd fromExit(const gp::ExecExit& exit) {
  switch (exit.kind) {
    case gp::ExecExitKind::kExited:
      return {"exited", exit.status(), ""};
    case gp::ExecExitKind::kSignaled:
      return {"signaled", exit.status(), ""};
    case gp::ExecExitKind::kNotStarted:
      return {"not_started", exit.status(), ""};
    case gp::ExecExitKind::kTimedOut:
      return {"timed_out", exit.status(), ""};
  }
  return {"lost", std::nullopt, "an EXIT of an unknown kind"};
}

}  // namespace

std::string closeReason(std::string_view reason) {
  size_t n = reason.size();
  if (n > kMaxCloseReasonBytes) {
    n = kMaxCloseReasonBytes;
    // Do not cut a UTF-8 sequence: back off its continuation bytes.
    while (n > 0 && (static_cast<unsigned char>(reason[n]) & 0xC0U) == 0x80U) --n;
  }
  // Reasons from an agent end up on a user's terminal: no control bytes.
  std::string out(reason.substr(0, n));
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = '?';
  }
  return out;
}

Result<ExecMessage> checkExecMessage(std::string_view message, ExecSide side) {
  gp::Decoder decoder;
  decoder.feed(message);
  auto next = decoder.next();
  if (!next) return bad("not an exec frame: " + next.error().toString());
  if (!*next) return bad("the message holds an incomplete frame");
  if (decoder.buffered() != 0) return bad("the message holds more than one frame");
  const gp::Frame& f = **next;
  const bool client = side == ExecSide::kClient;
  ExecMessage m;
  m.type = f.type;
  switch (f.type) {
    case gp::FrameType::kExecData: {
      auto d = gp::decodeExecData(f.payload);
      if (!d) return badFrame(f.type, d.error());
      if ((d->fd == gp::ExecFd::kStdin) != client) {
        return bad(client ? "the client may send EXEC_DATA on stdin only"
                          : "the agent may send EXEC_DATA on stdout and stderr only");
      }
      m.data_bytes = static_cast<uint32_t>(d->data.size());
      return m;
    }
    case gp::FrameType::kExecWindow: {
      auto w = gp::decodeExecWindow(f.payload);
      if (!w) return badFrame(f.type, w.error());
      m.window_increment = w->increment;
      return m;
    }
    case gp::FrameType::kExecResize:
    case gp::FrameType::kExecSignal:
    case gp::FrameType::kExecClose: {
      if (!client) return bad("the agent may not send " + gp::frameTypeName(f.type));
      std::optional<gp::Error> e;
      if (f.type == gp::FrameType::kExecResize) {
        e = errorOf(gp::decodeExecResize(f.payload));
      } else if (f.type == gp::FrameType::kExecSignal) {
        e = errorOf(gp::decodeExecSignal(f.payload));
      } else {
        e = errorOf(gp::decodeExecClose(f.payload));
      }
      if (e) return badFrame(f.type, *e);
      return m;
    }
    case gp::FrameType::kExecExit: {
      if (client) return bad("the client may not send EXEC_EXIT");
      auto e = gp::decodeExecExit(f.payload);
      if (!e) return badFrame(f.type, e.error());
      m.exit = std::move(*e);
      return m;
    }
    case gp::FrameType::kExecOpen:
      return bad(client ? "the client may not send EXEC_OPEN: the ticket is the command"
                        : "the agent may not send EXEC_OPEN");
    default:
      return bad(gp::frameTypeName(f.type) + " is not an exec frame");
  }
}

bool ExecCredit::spend(uint32_t bytes) {
  if (bytes > available_) return false;
  available_ -= bytes;
  return true;
}

bool ExecCredit::grant(uint32_t increment) {
  if (available_ + increment > gp::kMaxExecCredit) return false;
  available_ += increment;
  return true;
}

RelayEnd relayExec(http::WebSocket& client, http::WebSocket& agent, uint32_t output_window) {
  Ending ending;
  std::mutex credit_mu;
  ExecCredit stdin_credit(gp::kExecInitialWindow);  // what the client may still send
  ExecCredit output_credit(output_window);          // what the agent may still send

  // Client -> agent, on a thread of its own.
  auto upstream = [&] {
    auto refuse = [&](uint16_t code, const std::string& why) {
      if (ending.decide({"aborted", std::nullopt, "the client broke the exec protocol: " + why})) {
        (void)client.close(code, closeReason(why));
        abortAgent(agent);
      }
    };
    for (;;) {
      auto msg = client.read();
      if (!msg) {
        if (ending.decide({"aborted", std::nullopt, "the client went away"})) abortAgent(agent);
        return;
      }
      auto m = checkExecMessage(*msg, ExecSide::kClient);
      if (!m) return refuse(http::kCloseProtocolError, m.error().message());
      {
        std::lock_guard lock(credit_mu);
        if (m->type == gp::FrameType::kExecData && !stdin_credit.spend(m->data_bytes)) {
          return refuse(http::kClosePolicyViolation, "stdin beyond the credit granted");
        }
        if (m->type == gp::FrameType::kExecWindow && !output_credit.grant(m->window_increment)) {
          return refuse(http::kClosePolicyViolation, "an output credit above 2^31-1");
        }
      }
      // A failed write means the agent is gone: the downstream side sees it.
      if (!agent.write(*msg)) return;
    }
  };
  std::thread up;
  try {
    up = std::thread(upstream);
  } catch (const std::system_error&) {
    const std::string why = "the control plane cannot start the session's relay thread";
    (void)agent.close(http::kCloseInternalError, why);
    (void)client.close(kCloseSessionLost, why);
    return RelayEnd{"lost", std::nullopt, why};
  }

  // Agent -> client, here.
  auto lose = [&](uint16_t agent_code, const std::string& why) {
    if (ending.decide({"lost", std::nullopt, why})) {
      (void)agent.close(agent_code, closeReason(why));
      (void)client.close(kCloseSessionLost, closeReason(why));
    }
  };
  for (;;) {
    auto msg = agent.read();
    if (!msg) {
      const auto status = agent.closeStatus();
      if (status && status->code == kCloseRefused) {
        const std::string why =
            status->reason.empty() ? "the node agent refused the session" : status->reason;
        if (ending.decide({"refused", std::nullopt, why})) {
          (void)client.close(kCloseRefused, closeReason(why));
        }
      } else {
        std::string why = "the connection to the node agent was lost";
        if (status && status->code == kCloseSessionLost && !status->reason.empty()) {
          why = status->reason;
        }
        if (ending.decide({"lost", std::nullopt, why})) {
          (void)client.close(kCloseSessionLost, closeReason(why));
        }
      }
      break;
    }
    auto m = checkExecMessage(*msg, ExecSide::kAgent);
    if (!m) {
      lose(http::kCloseProtocolError, "the node agent broke the exec protocol");
      break;
    }
    bool over = false;
    {
      std::lock_guard lock(credit_mu);
      if (m->type == gp::FrameType::kExecData) over = !output_credit.spend(m->data_bytes);
      if (m->type == gp::FrameType::kExecWindow) over = !stdin_credit.grant(m->window_increment);
    }
    if (over) {
      lose(http::kClosePolicyViolation, "the node agent exceeded its exec credit");
      break;
    }
    if (m->exit) {
      if (ending.decide(fromExit(*m->exit))) {
        (void)client.write(*msg);
        (void)client.close(http::kCloseNormal);
        (void)agent.close(http::kCloseNormal);
      }
      break;
    }
    // A failed write means the client is gone: the upstream side sees it.
    (void)client.write(*msg);
  }
  up.join();
  return ending.result();
}

std::optional<std::string> agentRefusalMessage(std::string_view body) {
  if (body.size() > 4096) return std::nullopt;
  auto j = json::parse(body);
  if (!j || !j->is_object()) return std::nullopt;
  auto error = j->find("error");
  if (error == j->end() || !error->is_object()) return std::nullopt;
  auto message = error->find("message");
  if (message == error->end() || !message->is_string()) return std::nullopt;
  return message->get<std::string>();
}

}  // namespace plfm::cp
