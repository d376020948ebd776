// vt exec: run a command in a running instance (docs/specs/runtime/
// exec-sessions.md, "CLI"). POST /v1/instances/{id}/exec buys a single-use
// ticket; the session itself is a WebSocket to /v1/exec carrying exec frames
// (exec_pump.h, exec_session.h).
//
// stdout and stderr belong to the remote command: vt's own messages go to
// stderr prefixed "vt:", and there is no receipt. Every failure of vt itself
// (auth, not found, no healthy instance, a lost session) exits 255, as ssh
// does; otherwise vt exits with the remote command's status.
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <exception>
#include <optional>

#include "commands.h"
#include "exec_pump.h"
#include "exec_session.h"
#include "exec_view.h"
#include "invocation.h"
#include "plfm/core/id.h"
#include "plfm/guest_proto/constants.h"
#include "plfm/http/websocket.h"

namespace plfm::vt {
namespace {

using nlohmann::json;
namespace gp = guest_proto;

// The largest message either way: an EXEC_DATA frame is 8 + 4 + 16 KiB.
constexpr size_t kMaxExecMessageBytes = size_t{64} * 1024;

int execFail(Invocation& inv, const Error& e) {
  inv.out.err() << "vt: " << printableText(e.message()) << "\n";
  std::string hint(e.detail("hint"));
  if (hint.empty()) hint = hintFor(e);
  if (!hint.empty()) inv.out.err() << "vt: hint: " << hint << "\n";
  inv.out.err().flush();
  return kExecFailureStatus;
}

struct ExecRequest {
  std::vector<std::string> argv;
  bool interactive = false;  // copy stdin
  bool tty = false;          // a PTY on the remote side
  bool raw = false;          // the local terminal goes raw
  std::optional<std::pair<uint16_t, uint16_t>> size;
};

// The API carries argv as JSON strings, which are UTF-8.
bool isUtf8(const std::string& s) {
  try {
    (void)json(s).dump();
    return true;
  } catch (const json::exception&) {
    return false;
  }
}

Result<ExecRequest> parseRequest(Invocation& inv) {
  ExecRequest r;
  r.argv = inv.args.positionals;
  for (size_t i = 0; i < r.argv.size(); ++i) {
    if (!isUtf8(r.argv[i])) {
      return Error("usage", "argument " + std::to_string(i + 1) +
                                " of the command is not valid UTF-8, which the API cannot carry");
    }
  }
  if (auto id = inv.flag("instance")) {
    auto parsed = InstanceId::parse(*id);
    if (!parsed) {
      return Error("usage", "--instance: " + parsed.error().message())
          .with("hint", "list instance ids with `vt instances list`");
    }
  }
  const bool in_tty = ::isatty(0) == 1;
  const bool both_tty = in_tty && ::isatty(1) == 1;
  if (inv.args.has("tty") && inv.args.has("no-tty")) {
    return Error("usage", "-t/--tty and -T/--no-tty contradict each other");
  }
  r.interactive = inv.args.has("interactive") || both_tty;
  r.tty = inv.args.has("tty") || (!inv.args.has("no-tty") && both_tty);
  r.raw = r.tty && r.interactive && in_tty;
  if (r.tty) {
    r.size = terminalSize(1);
    if (!r.size) r.size = terminalSize(0);
  }
  return r;
}

std::string stateList(const std::vector<ExecInstanceView>& items) {
  std::string out;
  for (const auto& i : items) {
    if (!out.empty()) out += ", ";
    out += i.id + " " + (i.current_state.empty() ? std::string("-") : i.current_state);
  }
  return out;
}

// --instance, or the healthy instance of the process type with the lowest
// id (deterministic: the same one every time while it stays healthy).
Result<std::string> pickInstance(Invocation& inv) {
  if (auto id = inv.flag("instance")) return *id;  // checked by parseRequest
  const std::string process = inv.flag("process").value_or("web");
  PLFM_ASSIGN_OR_RETURN(auto env, inv.env());
  PLFM_ASSIGN_OR_RETURN(ApiClient * client, inv.api());
  PLFM_ASSIGN_OR_RETURN(auto res, client->get("/v1/envs/" + idOf(env) + "/instances"));
  PLFM_ASSIGN_OR_RETURN(auto items, parseExecInstances(res));
  std::vector<ExecInstanceView> of_type;
  std::optional<std::string> best;
  for (const auto& i : items) {
    if (i.process_type != process) continue;
    of_type.push_back(i);
    if (i.current_state != "healthy" || i.desired_state != "run") continue;
    if (!best || i.id < *best) best = i.id;
  }
  if (best) return *best;
  PLFM_ASSIGN_OR_RETURN(auto app, inv.app());  // resolved with the env
  const std::string where =
      "process `" + process + "` of env " + nameOf(env) + " (app " + nameOf(app) + ")";
  if (of_type.empty()) {
    return Error(errc::kNotFound, "no instance of " + where)
        .with("hint", "see `vt instances list" + inv.scopeFlags() +
                          "`; --process TYPE picks another process");
  }
  std::sort(of_type.begin(), of_type.end(),
            [](const ExecInstanceView& a, const ExecInstanceView& b) { return a.id < b.id; });
  return Error(errc::kFailedPrecondition,
               "no healthy instance of " + where + ": " + stateList(of_type))
      .with("hint", "pick one that runs with --instance ID");
}

struct Ticket {
  std::string ticket;
  std::string url;  // a path on the control plane: "/v1/exec"
};

Result<Ticket> requestTicket(Invocation& inv, const std::string& instance, const ExecRequest& req) {
  json body = {{"argv", req.argv}, {"tty", req.tty}};
  if (req.tty && req.size) {
    body["rows"] = req.size->first;
    body["cols"] = req.size->second;
  }
  if (auto u = inv.flag("user")) body["user"] = *u;
  if (auto w = inv.flag("workdir")) body["workdir"] = *w;
  PLFM_ASSIGN_OR_RETURN(ApiClient * client, inv.api());
  PLFM_ASSIGN_OR_RETURN(auto res,
                        client->mutate("POST", "/v1/instances/" + instance + "/exec", body));
  PLFM_ASSIGN_OR_RETURN(auto answer, parseExecTicket(res));
  if (answer.ticket.empty()) {
    // An idempotent replay: the ticket is shown once and never stored.
    return Error(errc::kUnavailable,
                 "the control plane replayed an earlier exec request without its ticket")
        .with("hint", "run the command again");
  }
  const std::string& path = answer.url;
  // The ticket goes only to the control plane we asked: a path on it, never
  // another host ("//host/...", "https://...").
  if (path.empty() || path[0] != '/' || path.starts_with("//")) {
    return Error(errc::kFailedPrecondition,
                 "the control plane named an exec URL that is not a path on it")
        .with("hint", "the ticket was not sent anywhere; check the URL `vt context show` prints");
  }
  return Ticket{.ticket = answer.ticket, .url = path};
}

Result<std::unique_ptr<http::WebSocket>> connect(Invocation& inv, const Ticket& t) {
  PLFM_ASSIGN_OR_RETURN(auto ctx, inv.context());
  PLFM_ASSIGN_OR_RETURN(ApiClient * client, inv.api());
  http::WebSocketConnectOptions o;
  o.url = client->baseUrl() + t.url;
  o.headers.set("X-Plfm-Exec-Ticket", t.ticket);
  o.headers.set("User-Agent", "vt/0.1");
  o.tls.ca_file = ctx.ca_file;
  o.options.max_message_bytes = kMaxExecMessageBytes;
  auto ws = http::connectWebSocket(o);
  if (!ws) {
    const Error& e = ws.error();
    // Tickets live 60 s and are used once; a 401 here means it expired or
    // was used (the POST already checked our credentials).
    if (e.is(errc::kUnauthenticated)) {
      return Error(errc::kFailedPrecondition,
                   "the control plane refused the exec ticket (expired or already used)")
          .with("hint", "run the command again");
    }
    return Error(e.code(), "cannot open the exec session: " + e.message());
  }
  return ws;
}

ExecOutcome runSession(std::unique_ptr<http::WebSocket> ws, const ExecRequest& req) {
  FdSink out(STDOUT_FILENO);
  FdSink err(STDERR_FILENO);
  WebSocketExecConnection conn(std::move(ws));
  ExecPump pump(conn, out, err);
  SignalPipe signals({SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH});
  // Declared last, so destroyed first: the terminal is back to normal before
  // anything else happens (the WebSocket's closing handshake included).
  std::optional<RawMode> raw;
  if (req.raw) raw.emplace(STDIN_FILENO);
  int winsize_fd = -1;
  if (req.tty) winsize_fd = ::isatty(STDOUT_FILENO) == 1 ? STDOUT_FILENO : STDIN_FILENO;
  ExecSessionIo io{.stdin_fd = req.interactive ? STDIN_FILENO : -1,
                   .winsize_fd = winsize_fd,
                   .signal_fd = signals.fd(),
                   .raw_tty = raw && raw->ok()};
  return runExecSession(conn, pump, io);
}

int execRun(Invocation& inv) {
  try {
    auto req = parseRequest(inv);
    if (!req) return execFail(inv, req.error());
    if (auto ctx = inv.context(); !ctx) return execFail(inv, ctx.error());
    auto instance = pickInstance(inv);
    if (!instance) return execFail(inv, instance.error());
    auto ticket = requestTicket(inv, *instance, *req);
    if (!ticket) return execFail(inv, ticket.error());
    auto ws = connect(inv, *ticket);
    if (!ws) return execFail(inv, ws.error());
    inv.out.out().flush();
    inv.out.err().flush();
    ExecOutcome outcome = runSession(std::move(*ws), *req);
    if (!outcome.message.empty()) inv.out.err() << outcome.message << "\n";
    inv.out.err().flush();
    return outcome.status;
  } catch (const std::exception& e) {
    // runSession's guards have restored the terminal by now.
    inv.out.err() << "vt: exec failed unexpectedly: " << e.what() << "\n";
    return kExecFailureStatus;
  }
}

}  // namespace

Command execCommand() {
  return {
      .name = "exec",
      .summary = "Run a command in a running instance (a shell, a one-off task)",
      .help =
          "Runs CMD in one instance of the env, with the workload's env, user and workdir.\n"
          "Without --instance, picks the healthy instance of --process (default web) with\n"
          "the lowest id. On a terminal it is interactive with a remote terminal (-i -t):\n"
          "keys go through as typed (Ctrl-C reaches the remote command), and resizing the\n"
          "window resizes it. Otherwise stdin (with -i), stdout and stderr are copied\n"
          "byte for byte, and SIGINT, SIGTERM, SIGHUP and SIGQUIT go to the command.\n"
          "Put CMD after `--` when it has flags of its own.\n"
          "\n"
          "vt exits with the command's status: its exit code, or 128 + N when signal N\n"
          "killed it (127: not found, 126: not executable). 255 means vt itself failed\n"
          "(not logged in, no such instance, the session was lost), with a `vt:` line\n"
          "on stderr; stdout is only ever the command's.\n"
          "\n"
          "Examples:\n"
          "  vt exec -- sh                                  a shell in a web instance\n"
          "  vt exec --process worker -- ps aux             a worker instance\n"
          "  vt exec --instance inst_01j... -- cat /etc/os-release\n"
          "  vt exec -i -- sh -c 'cat > /tmp/dump.sql' < dump.sql    stdin, binary-safe\n"
          "  vt exec -- tar -C /data -cf - . > data.tar     stdout, binary-safe\n"
          "  vt exec --user 0 --workdir /tmp -- id",
      .flags = {{.name = "instance", .value_name = "ID", .help = "this instance (inst_...)"},
                {.name = "process",
                 .value_name = "TYPE",
                 .help = "pick a healthy instance of this process (default web)"},
                {.name = "interactive",
                 .short_name = 'i',
                 .help = "copy stdin to the command (default on a terminal)"},
                {.name = "tty",
                 .short_name = 't',
                 .help = "a remote terminal (default when stdin and stdout are terminals)"},
                {.name = "no-tty", .short_name = 'T', .help = "no remote terminal: pipes"},
                {.name = "user",
                 .value_name = "USER",
                 .help = "run as UID, UID:GID or a user of the image (default the workload's)"},
                {.name = "workdir",
                 .value_name = "DIR",
                 .help = "absolute working directory (default the workload's)"}},
      .positionals = {{.name = "CMD", .help = "the command and its arguments", .variadic = true}},
      .run = execRun};
}

}  // namespace plfm::vt
