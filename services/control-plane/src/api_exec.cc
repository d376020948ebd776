// `vt exec` on the control plane (docs/specs/runtime/exec-sessions.md,
// "Control plane"):
//
// - POST /v1/instances/{instance_id}/exec: a member or owner of the
//   instance's org asks for a session. The command is parsed and checked
//   (exec_request.h), the instance must run on a node whose agent endpoint is
//   known, and the answer is a ticket: random, single use, valid 60 s, stored
//   only as its SHA-256 next to the parsed command (an idempotent replay
//   shows it redacted).
// - GET /v1/exec, X-Plfm-Exec-Ticket: the ticket is consumed atomically
//   (DELETE ... RETURNING) before the upgrade; then the control plane
//   connects to the agent (signed for the target with the EXEC_OPEN's hash,
//   TLS pinned to the agent's certificate), sends it the EXEC_OPEN built from
//   the stored command, and relays (exec_relay.h).
//
// Audit: exec.started once the agent accepted, exec.ended at the end, both
// appended by the session itself (not through the request's mutation, which
// is over by then). They never carry argv beyond argv[0], or stream bytes.
#include <optional>

#include "api.h"
#include "exec_relay.h"
#include "exec_request.h"
#include "log_relay.h"
#include "plfm/core/assert.h"
#include "plfm/core/log.h"
#include "plfm/core/sha256.h"
#include "plfm/guest_proto/frame.h"
#include "secrets_crypto.h"

namespace plfm::cp {
namespace gp = guest_proto;

// The parts of ExecSessionStart (declared in api.h, so not in an anonymous
// namespace; a named one keeps them apart from other files' types).
namespace exec_session {
struct Ticket {
  std::string session_id;
  std::string org_id;
  std::string instance_id;
  std::string actor;
  ExecCommand command;
};

// Where the session goes, or why it cannot (`refusal`, for close 4001).
struct AgentTarget {
  std::string node_id;
  std::string agent_url;
  std::string cert_sha256;
  std::string refusal;
};
}  // namespace exec_session

namespace {
using exec_session::AgentTarget;
using exec_session::Ticket;

constexpr auto kTicketTtl = std::chrono::seconds(60);
constexpr std::string_view kTicketPrefix = "vxt_";
constexpr std::string_view kTicketHeader = "X-Plfm-Exec-Ticket";
// The phases in which an instance's VM runs (and so can exec).
const std::string kRunningStates = "('running', 'healthy', 'unhealthy', 'draining')";

// The WebSocket of both hops: one exec frame per message (EXEC_OPEN, at most
// 64 KiB, is the largest), pings every 30 s so that no proxy cuts an idle
// session, and no idle timeout beyond a dead peer.
http::WebSocketOptions execWebSocketOptions() {
  http::WebSocketOptions o;
  o.max_message_bytes = gp::kHeaderBytes + gp::kMaxExecOpenBytes;
  o.idle_timeout = std::chrono::seconds(60);
  o.handshake_timeout = std::chrono::seconds(10);
  return o;
}

// "vxt_" + 52 base32 characters: 256 random bits, as a user token's.
std::string newTicket() { return std::string(kTicketPrefix) + newToken().substr(3); }

Error unauthenticatedTicket() {
  return Error(plfm::errc::kUnauthenticated,
               "send a valid, unused exec ticket (from POST /v1/instances/{instance_id}/exec, "
               "valid 60 s, single use) in the X-Plfm-Exec-Ticket header");
}

// Why `state` (a row of instancesAndAgent) cannot exec, or "".
std::string whyNot(const pg::ResultSet& rs) {
  if (rs.rows() != 1) return "the instance no longer exists";
  const std::string state(rs.text(0, 1));
  const std::string node(rs.text(0, 2));
  if (rs.text(0, 5) != "t") {
    return "the instance is " + (state.empty() ? std::string("not running") : state) +
           ", not running";
  }
  if (node.empty()) return "the instance has not been placed on a node";
  if (rs.text(0, 3).empty()) {
    return "node " + node + " reported no agent endpoint (agent --listen)";
  }
  if (rs.text(0, 3).starts_with("https://") && rs.text(0, 4).empty()) {
    return "node " + node + " reported no certificate for its agent endpoint";
  }
  if (rs.text(0, 6) == "down") return "node " + node + " is down";
  return "";
}

Result<pg::ResultSet> instanceAndAgent(pg::Connection& db, const std::string& instance_id) {
  return db.exec(
      "SELECT i.org_id, i.current_state, coalesce(i.node_id, ''), coalesce(l.agent_url, ''), "
      "coalesce(l.agent_cert_sha256, ''), i.current_state IN " +
          kRunningStates +
          ", coalesce(l.state, '') FROM instances_view i LEFT JOIN node_liveness l ON "
          "l.node_id = i.node_id WHERE i.instance_id = $1",
      {instance_id});
}

// The ticket header, when it has a ticket's form (checked before anything
// else, so that a request without one is 401 whatever else it lacks).
Result<std::string_view> ticketHeader(const http::Request& req) {
  const auto header = req.header(kTicketHeader);
  if (!header || !header->starts_with(kTicketPrefix) || header->size() != 56) {
    return unauthenticatedTicket();
  }
  return *header;
}

Result<Ticket> consumeTicket(pg::Connection& db, const Clock& clock, const http::Request& req) {
  PLFM_ASSIGN_OR_RETURN(const std::string_view header, ticketHeader(req));
  // Deleted whether or not it expired: a ticket is never tried twice.
  PLFM_ASSIGN_OR_RETURN(
      auto rs, db.exec("DELETE FROM exec_tickets WHERE ticket_hash = $1 RETURNING session_id, "
                       "org_id, instance_id, actor, request::text, expires_at > $2::timestamptz",
                       {hashToken(header), toRfc3339(clock.now())}));
  if (rs.rows() != 1 || rs.text(0, 5) != "t") return unauthenticatedTicket();
  auto request = json::parse(rs.text(0, 4));
  if (!request) return unauthenticatedTicket();
  auto command = parseExecCommand(*request);
  if (!command) return unauthenticatedTicket();
  return Ticket{std::string(rs.text(0, 0)), std::string(rs.text(0, 1)), std::string(rs.text(0, 2)),
                std::string(rs.text(0, 3)), std::move(*command)};
}

Result<AgentTarget> findAgent(pg::Connection& db, const Ticket& t) {
  AgentTarget out;
  // The ticket's user may have left the org since it was issued.
  Principal actor;
  actor.kind = "user";
  actor.id = t.actor;
  if (!roleIn(db, actor, t.org_id)) {
    out.refusal = "the ticket's user is no longer a member of the instance's org";
    return out;
  }
  PLFM_ASSIGN_OR_RETURN(auto rs, instanceAndAgent(db, t.instance_id));
  out.refusal = whyNot(rs);
  if (!out.refusal.empty()) return out;
  out.node_id = rs.text(0, 2);
  out.agent_url = rs.text(0, 3);
  out.cert_sha256 = rs.text(0, 4);
  return out;
}

// Why the agent refused, from connectWebSocket's error: its error message
// for a 404/409 (the agent's reason), otherwise that it is unreachable.
std::string agentRefusal(const Error& e, const std::string& node_id) {
  const std::string status(e.detail("status"));
  if (!status.empty()) {
    if (auto message = agentRefusalMessage(e.detail("body"))) return *message;
    return "the node agent answered " + status;
  }
  return "the node agent of " + node_id + " is unreachable";
}

}  // namespace

// What the session's thread needs, filled in by the handler before the
// upgrade and read by the session after it.
struct ExecSessionStart {
  std::optional<exec_session::Ticket> ticket;
  exec_session::AgentTarget target;
  std::string request_id;
  std::optional<FollowerSlots::Lease> slot;  // one of the org's max_exec_sessions_per_org
};

void Api::registerExecRoutes(http::Router& r) {
  exec_sessions_ = std::make_shared<FollowerSlots>(deps_.options.max_exec_sessions_per_org);
  route(
      r, "POST", "/v1/instances/{instance_id}/exec", Access::kUser,
      [this](Ctx& ctx) -> Result<http::Response> {
        PLFM_ASSIGN_OR_RETURN(auto inst, pathId<InstanceId>(ctx.req, "instance_id"));
        // argv can carry secrets: no field name or value of the body is
        // ever echoed, and the idempotency record keeps a keyed MAC of the
        // request when the control plane has a keyring.
        PLFM_ASSIGN_OR_RETURN(auto body, parseSecretBody(ctx.req, {"argv", "tty", "rows", "cols",
                                                                   "user", "workdir"}));
        PLFM_ASSIGN_OR_RETURN(ExecCommand command, parseExecCommand(body));
        std::optional<std::string> request_hash;
        if (deps_.keyring != nullptr) {
          request_hash = deps_.keyring->fingerprint(ctx.req.method + "\n" + ctx.req.path + "\n" +
                                                    ctx.req.body);
        }
        return runMutation(
            ctx,
            [&](pg::Transaction& tx) -> Result<Mutation> {
              PLFM_ASSIGN_OR_RETURN(auto rs, instanceAndAgent(tx.connection(), inst.str()));
              const auto notFound =
                  Error(plfm::errc::kNotFound, "instance " + inst.str() + " not found")
                      .with("instance_id", inst.str());
              if (rs.rows() != 1) return notFound;
              const std::string org(rs.text(0, 0));
              // Another org's instance looks missing.
              auto role = roleIn(tx.connection(), ctx.who, org);
              if (!role) return notFound;
              if (*role != "owner" && *role != "member") {
                return Error(plfm::errc::kPermissionDenied,
                             "exec needs the role member or owner in org " + org +
                                 "; your role is '" + *role + "'")
                    .with("org_id", org)
                    .with("role", *role);
              }
              if (auto why = whyNot(rs); !why.empty()) {
                return Error(plfm::errc::kFailedPrecondition, "cannot exec: " + why)
                    .with("instance_id", inst.str())
                    .with("reason", why);
              }
              const auto now = deps_.clock.now();
              const std::string ticket = newTicket();
              const std::string session = ExecSessionId::generate().str();
              const std::string expires = toRfc3339(now + kTicketTtl);
              // Expired tickets go with every new one: none lingers.
              PLFM_TRY(tx.exec("DELETE FROM exec_tickets WHERE expires_at <= $1::timestamptz",
                               {toRfc3339(now)}));
              PLFM_TRY(tx.exec(
                  "INSERT INTO exec_tickets (ticket_hash, session_id, org_id, instance_id, actor, "
                  "request, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6::jsonb, "
                  "$7::timestamptz, $8::timestamptz)",
                  {hashToken(ticket), session, org, inst.str(), ctx.who.id,
                   json::dump(execCommandJson(command)), toRfc3339(now), expires}));
              Mutation m;
              m.body = {{"ticket", ticket},          {"ticket_redacted", false},
                        {"expires_at", expires},     {"session_id", session},
                        {"instance_id", inst.str()}, {"url", "/v1/exec"}};
              json::Json replay = m.body;
              replay["ticket"] = nullptr;
              replay["ticket_redacted"] = true;
              m.replay_body = std::move(replay);
              return m;
            },
            request_hash);
      });

  route(r, "GET", "/v1/exec", Access::kExecTicket, [this](Ctx& ctx) -> Result<http::Response> {
    // 401 first, whatever else the request lacks.
    PLFM_ASSIGN_OR_RETURN(const std::string_view header, ticketHeader(ctx.req));
    auto start = std::make_shared<ExecSessionStart>();
    start->request_id = ctx.request_id;
    http::Response upgrade =
        http::acceptWebSocket(ctx.req, execWebSocketOptions(), [this, start](http::WebSocket& ws) {
          runExecSession(ws, *start);
          start->slot.reset();
        });
    // Not a WebSocket upgrade (426, 400): answered before the ticket is used.
    if (!upgrade.upgrade) return upgrade;
    // The org's session slot, taken before the ticket is used: an org at its
    // cap gets 429 and keeps its ticket (until it expires).
    PLFM_ASSIGN_OR_RETURN(auto owner, ctx.db().exec("SELECT org_id FROM exec_tickets WHERE "
                                                    "ticket_hash = $1",
                                                    {hashToken(header)}));
    if (owner.rows() != 1) return unauthenticatedTicket();
    start->slot = exec_sessions_->tryAcquire(std::string(owner.text(0, 0)));
    if (!start->slot) {
      return Error(apierr::kTooManyExecSessions,
                   "this org already holds " + std::to_string(exec_sessions_->max()) +
                       " exec sessions, the control plane's max_exec_sessions_per_org; end one "
                       "or retry later (the ticket stays valid until it expires)")
          .with("limit", "max_exec_sessions_per_org");
    }
    PLFM_ASSIGN_OR_RETURN(start->ticket, consumeTicket(ctx.db(), deps_.clock, ctx.req));
    PLFM_ASSIGN_OR_RETURN(start->target, findAgent(ctx.db(), *start->ticket));
    ctx.lease.reset();  // no connection held for the session's lifetime
    return upgrade;
  });
}

void Api::appendExecEvents(const std::string& actor, const std::string& request_id,
                           const std::vector<NewEvent>& events) {
  auto done = [&]() -> Result<void> {
    PLFM_ASSIGN_OR_RETURN(
        auto conn, laneFor(Access::kUser).handlers->acquire(deps_.options.db_acquire_timeout));
    for (int attempt = 1;; ++attempt) {
      auto outcome = [&]() -> Result<void> {
        PLFM_ASSIGN_OR_RETURN(auto tx, pg::Transaction::begin(*conn));
        PLFM_TRY(deps_.store.append(tx, {actor, request_id}, events));
        return tx.commit();
      }();
      if (outcome || !pg::isRetryable(outcome.error()) || attempt >= 5) return outcome;
    }
  }();
  if (!done) {
    log::error("exec: cannot append the session's audit events",
               {{"request_id", request_id},
                {"aggregate_id", events.empty() ? "" : events[0].aggregate_id},
                {"error", done.error().toString()}});
    return;
  }
  deps_.worker.kick();
}

void Api::runExecSession(http::WebSocket& client, const ExecSessionStart& start) {
  const Ticket& t = *start.ticket;
  const auto began = deps_.clock.steadyNow();
  int seq = 0;
  auto ended = [&](const RelayEnd& end) {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(deps_.clock.steadyNow() - began)
            .count();
    const events::ExecEnded payload{.session_id = t.session_id,
                                    .org_id = t.org_id,
                                    .instance_id = t.instance_id,
                                    .outcome = end.outcome,
                                    .exit_code = end.exit_code,
                                    .duration_ms = ms};
    appendExecEvents(t.actor, start.request_id, {events::toNewEvent(payload, ++seq, t.org_id)});
    deps_.metrics.counter("plfm_exec_sessions_total", "Exec sessions that ended, by outcome.")
        .inc({{"outcome", end.outcome}});
    log::info("exec session ended", {{"request_id", start.request_id},
                                     {"session_id", t.session_id},
                                     {"instance_id", t.instance_id},
                                     {"outcome", end.outcome},
                                     {"reason", end.reason},
                                     {"duration_ms", ms}});
  };
  auto refuse = [&](const std::string& why) {
    (void)client.close(kCloseRefused, closeReason(why));
    ended(RelayEnd{"refused", std::nullopt, why});
  };
  if (!start.target.refusal.empty()) return refuse(start.target.refusal);
  if (deps_.relay_key == nullptr) return refuse("this control plane has no relay key");

  const gp::ExecOpen open = toExecOpen(t.command);
  auto frame = gp::encode(open, gp::kFirstExecStream);
  PLFM_ASSERT(frame.has_value(), "an exec ticket holds a command that does not encode");
  const std::string open_hash = Sha256::hex(std::string_view(*frame).substr(gp::kHeaderBytes));
  const std::string target = "/v1/instances/" + t.instance_id + "/exec?open=" + open_hash;
  const relay::SignedRequest signed_req{"GET", target, start.target.node_id, t.instance_id,
                                        unixSeconds(deps_.clock) + relay::kTtlSeconds};
  http::WebSocketConnectOptions opts;
  opts.url = start.target.agent_url + target;
  opts.headers.set(std::string(relay::kExpiresHeader), std::to_string(signed_req.expires_unix));
  opts.headers.set(std::string(relay::kSignatureHeader), deps_.relay_key->sign(signed_req));
  opts.tls.pinned_cert_sha256 = start.target.cert_sha256;
  opts.options = execWebSocketOptions();
  auto agent = http::connectWebSocket(opts);
  if (!agent) return refuse(agentRefusal(agent.error(), start.target.node_id));

  // The agent accepted: the session exists from here on. The OPEN goes
  // first (the agent waits for nothing else), then the audit event.
  const bool opened = (*agent)->write(*frame).has_value();
  const events::ExecStarted started{.session_id = t.session_id,
                                    .org_id = t.org_id,
                                    .instance_id = t.instance_id,
                                    .actor = t.actor,
                                    .argv0 = t.command.argv[0],
                                    .tty = t.command.tty};
  appendExecEvents(t.actor, start.request_id, {events::toNewEvent(started, ++seq, t.org_id)});
  if (!opened) {
    const std::string why = "the connection to the node agent was lost";
    (void)client.close(kCloseSessionLost, why);
    return ended(RelayEnd{"lost", std::nullopt, why});
  }
  ended(relayExec(client, **agent, open.window));
}

}  // namespace plfm::cp
