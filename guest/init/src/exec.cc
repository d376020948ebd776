#include "exec.h"

#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <utility>

#include "plfm/guest_proto/exec.h"
#include "sys.h"

namespace plfm::init {

namespace gp = guest_proto;

struct ExecSessions::Session {
  uint16_t stream = 0;
  bool tty = false;
  ExecProcess proc;
  // Stdin from the host not yet written to the command (§Flow control).
  std::string stdin_buf;
  size_t stdin_off = 0;
  uint32_t stdin_credit = gp::kExecInitialWindow;  // what the host may still send
  uint32_t stdin_unacked = 0;                      // written on, not yet granted back
  bool stdin_eof = false;                          // EXEC_CLOSE stdin_eof received
  bool stdin_closed = false;                       // nothing more reaches the command
  char last_stdin = '\n';
  uint64_t out_credit = 0;
  bool exited = false;
  int status = 0;
  uint64_t drain_deadline = 0;
  uint64_t timeout_at = 0;  // 0: none
  bool timed_out = false;
  bool aborted = false;
  // The PTY master read EIO: every slave fd is closed. The master stays open
  // until the command is reaped, because closing it hangs the terminal up,
  // and a command between close(2) and exit(2) would die of SIGHUP.
  bool pty_eof = false;  // the host wants no more output: EXIT as soon as reaped

  [[nodiscard]] size_t pendingStdin() const { return stdin_buf.size() - stdin_off; }
  [[nodiscard]] bool outputOpen() const {
    if (tty) return proc.master_fd >= 0 && !pty_eof;
    return proc.stdout_fd >= 0 || proc.stderr_fd >= 0;
  }
  [[nodiscard]] int inFd() const { return tty ? proc.master_fd : proc.stdin_fd; }
};

namespace {

gp::ExecExit exitOf(int status, bool timed_out) {
  if (WIFSIGNALED(status)) {
    return gp::ExecExit{timed_out ? gp::ExecExitKind::kTimedOut : gp::ExecExitKind::kSignaled,
                        WTERMSIG(status), ""};
  }
  return gp::ExecExit{gp::ExecExitKind::kExited, WEXITSTATUS(status), ""};
}

}  // namespace

ExecSessions::ExecSessions(ExecDefaults defaults, Send send, Clock clock)
    : defaults_(std::move(defaults)), send_(std::move(send)), clock_(std::move(clock)) {}

ExecSessions::~ExecSessions() {
  abortAll();
  for (pid_t pid : orphans_) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

void ExecSessions::sendFrame(const gp::Result<std::string>& frame) {
  if (frame) {
    send_(*frame);
  } else {
    logLine("exec: cannot encode a frame: " + frame.error().toString());
  }
}

void ExecSessions::onFrame(const gp::Frame& frame) {
  if (frame.type == gp::FrameType::kExecOpen) {
    auto it = sessions_.find(frame.stream);
    if (it != sessions_.end()) {
      abort(*it->second, "a second EXEC_OPEN on a live stream");
      return;
    }
    open(frame.stream, frame.payload);
    return;
  }
  auto it = sessions_.find(frame.stream);
  // Late frames for a finished session (stdin after EXIT, say) are dropped.
  if (it == sessions_.end()) return;
  Session& s = *it->second;
  switch (frame.type) {
    case gp::FrameType::kExecData:
      onData(s, frame.payload);
      return;
    case gp::FrameType::kExecClose:
      onClose(s, frame.payload);
      return;
    case gp::FrameType::kExecWindow: {
      auto w = gp::decodeExecWindow(frame.payload);
      if (!w) return abort(s, w.error().toString());
      s.out_credit += w->increment;
      if (s.out_credit > gp::kMaxExecCredit) abort(s, "output credit above 2^31-1");
      return;
    }
    case gp::FrameType::kExecResize: {
      auto r = gp::decodeExecResize(frame.payload);
      if (!r) return abort(s, r.error().toString());
      if (s.tty && s.proc.master_fd >= 0) {
        winsize ws{};
        ws.ws_row = r->rows;
        ws.ws_col = r->cols;
        ::ioctl(s.proc.master_fd, TIOCSWINSZ, &ws);  // the kernel sends SIGWINCH
      }
      return;
    }
    case gp::FrameType::kExecSignal: {
      auto sig = gp::decodeExecSignal(frame.payload);
      if (!sig) return abort(s, sig.error().toString());
      kill(s, sig->signal);
      return;
    }
    default:
      abort(s, gp::frameTypeName(frame.type) + " is not a host -> guest frame");
  }
}

void ExecSessions::open(uint16_t stream, const std::string& payload) {
  auto request = gp::decodeExecOpen(payload);
  auto refuse = [&](int code, const std::string& message) {
    logLine("exec: stream " + std::to_string(stream) + ": " + message);
    sendFrame(gp::encode(gp::ExecExit{gp::ExecExitKind::kNotStarted, code,
                                      message.substr(0, gp::kMaxExecMessageBytes)},
                         stream));
  };
  if (!request) return refuse(1, "EXEC_OPEN: " + request.error().toString());
  if (sessions_.size() >= kMaxSessions) return refuse(1, "too many exec sessions");
  auto spawned = spawnExec(*request, defaults_);
  if (!spawned) return refuse(spawned.error().exit_code, spawned.error().message);
  auto s = std::make_unique<Session>();
  s->stream = stream;
  s->tty = request->tty;
  s->proc = *spawned;
  s->out_credit = request->window;
  if (request->timeout_ms != 0) s->timeout_at = clock_() + request->timeout_ms;
  sessions_.emplace(stream, std::move(s));
}

void ExecSessions::onData(Session& s, const std::string& payload) {
  auto data = gp::decodeExecData(payload);
  if (!data) return abort(s, data.error().toString());
  if (data->fd != gp::ExecFd::kStdin) return abort(s, "EXEC_DATA from the host must be stdin");
  if (data->data.size() > s.stdin_credit) return abort(s, "stdin beyond its window");
  s.stdin_credit -= static_cast<uint32_t>(data->data.size());
  if (s.stdin_closed || s.stdin_eof) {
    // Nobody reads it any more; give the credit back so the host never stalls.
    s.stdin_unacked += static_cast<uint32_t>(data->data.size());
  } else {
    s.stdin_buf.append(data->data);
  }
  writeStdin(s);
}

void ExecSessions::onClose(Session& s, const std::string& payload) {
  auto close = gp::decodeExecClose(payload);
  if (!close) return abort(s, close.error().toString());
  if (close->kind == gp::ExecCloseKind::kAbort) {
    s.aborted = true;
    kill(s, SIGKILL);
    return;
  }
  if (s.stdin_eof) return;
  s.stdin_eof = true;
  if (s.tty && !s.stdin_closed) {
    // A PTY cannot be half-closed: type the EOF character, twice when a
    // partial line is pending (the first only flushes it).
    termios t{};
    const char veof =
        ::tcgetattr(s.proc.master_fd, &t) == 0 ? static_cast<char>(t.c_cc[VEOF]) : '\x04';
    if (s.last_stdin != '\n') s.stdin_buf.push_back(veof);
    s.stdin_buf.push_back(veof);
  }
  writeStdin(s);
}

void ExecSessions::kill(Session& s, int sig) {
  // The command is a session (and process group) leader: signal the group.
  if (!s.exited || ::kill(-s.proc.pid, 0) == 0) ::kill(-s.proc.pid, sig);
}

void ExecSessions::abort(Session& s, const std::string& why) {
  logLine("exec: stream " + std::to_string(s.stream) + " aborted: " + why);
  s.aborted = true;
  kill(s, SIGKILL);
  s.stdin_closed = true;
  s.stdin_buf.clear();
  s.stdin_off = 0;
}

void ExecSessions::writeStdin(Session& s) {
  const int fd = s.inFd();
  while (s.pendingStdin() > 0 && fd >= 0 && !s.stdin_closed) {
    const ssize_t n = ::write(fd, s.stdin_buf.data() + s.stdin_off, s.pendingStdin());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {
      // The command closed its stdin (EPIPE) or the PTY is gone.
      s.stdin_unacked += static_cast<uint32_t>(s.pendingStdin());
      s.stdin_closed = true;
      s.stdin_buf.clear();
      s.stdin_off = 0;
      break;
    }
    s.last_stdin = s.stdin_buf[s.stdin_off + static_cast<size_t>(n) - 1];
    s.stdin_off += static_cast<size_t>(n);
    s.stdin_unacked += static_cast<uint32_t>(n);
  }
  if (s.stdin_off > 0 && s.stdin_off >= s.stdin_buf.size() / 2) {
    s.stdin_buf.erase(0, s.stdin_off);
    s.stdin_off = 0;
  }
  if (s.stdin_eof && s.pendingStdin() == 0 && !s.tty) {
    closeFd(s.proc.stdin_fd);
    s.stdin_closed = true;
  }
  // Grant credit back in large steps (§Flow control).
  if (s.stdin_unacked >= gp::kExecInitialWindow / 2 ||
      (s.stdin_unacked > 0 && s.pendingStdin() == 0 && s.stdin_credit < gp::kMaxExecDataBytes)) {
    sendFrame(gp::encode(gp::ExecWindow{s.stdin_unacked}, s.stream));
    s.stdin_credit += s.stdin_unacked;
    s.stdin_unacked = 0;
  }
}

void ExecSessions::readOutput(Session& s, int& fd, gp::ExecFd which) {
  if (fd < 0 || s.out_credit == 0) return;
  std::string buf(std::min<uint64_t>(s.out_credit, gp::kMaxExecDataBytes), '\0');
  ssize_t n;
  do {
    n = ::read(fd, buf.data(), buf.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) return;
  if (n <= 0) {
    // EOF, or EIO from a PTY master once every slave fd is closed.
    if (s.tty) {
      s.pty_eof = true;
      s.stdin_closed = true;
      return;
    }
    closeFd(fd);
    return;
  }
  buf.resize(static_cast<size_t>(n));
  s.out_credit -= static_cast<uint64_t>(n);
  if (s.exited) s.drain_deadline = clock_() + kDrainMs;
  sendFrame(gp::encode(gp::ExecData{which, std::move(buf)}, s.stream));
}

void ExecSessions::addPollFds(std::vector<pollfd>& fds) const {
  for (const auto& entry : sessions_) {
    const Session& s = *entry.second;
    const auto in = static_cast<short>(s.out_credit > 0 ? POLLIN : 0);
    const auto out = static_cast<short>(s.pendingStdin() > 0 && !s.stdin_closed ? POLLOUT : 0);
    // An fd with nothing to wait for stays out: poll would report POLLHUP
    // on it forever.
    if (s.tty) {
      if (s.proc.master_fd >= 0 && !s.pty_eof && (in | out) != 0) {
        fds.push_back(pollfd{s.proc.master_fd, static_cast<short>(in | out), 0});
      }
      continue;
    }
    if (s.proc.stdin_fd >= 0 && out != 0) fds.push_back(pollfd{s.proc.stdin_fd, out, 0});
    if (s.proc.stdout_fd >= 0 && in != 0) fds.push_back(pollfd{s.proc.stdout_fd, in, 0});
    if (s.proc.stderr_fd >= 0 && in != 0) fds.push_back(pollfd{s.proc.stderr_fd, in, 0});
  }
}

void ExecSessions::onPoll(const std::vector<pollfd>& fds) {
  for (const pollfd& p : fds) {
    if (p.revents == 0) continue;
    for (auto& entry : sessions_) {
      Session& s = *entry.second;
      if (p.fd == s.inFd() && (p.revents & (POLLOUT | POLLERR)) != 0) writeStdin(s);
      // One read per fd per round, so that no session starves the others.
      if (p.fd == s.proc.master_fd && s.tty) {
        readOutput(s, s.proc.master_fd, gp::ExecFd::kStdout);
      } else if (p.fd == s.proc.stdout_fd) {
        readOutput(s, s.proc.stdout_fd, gp::ExecFd::kStdout);
      } else if (p.fd == s.proc.stderr_fd) {
        readOutput(s, s.proc.stderr_fd, gp::ExecFd::kStderr);
      }
    }
  }
}

bool ExecSessions::onChildExit(pid_t pid, int status) {
  for (auto& entry : sessions_) {
    Session& s = *entry.second;
    if (s.proc.pid == pid && !s.exited) {
      s.exited = true;
      s.status = status;
      s.drain_deadline = clock_() + kDrainMs;
      return true;
    }
  }
  auto orphan = std::find(orphans_.begin(), orphans_.end(), pid);
  if (orphan == orphans_.end()) return false;
  orphans_.erase(orphan);
  return true;
}

void ExecSessions::reapOwn() {
  std::vector<pid_t> pids = orphans_;
  for (const auto& entry : sessions_) {
    if (!entry.second->exited) pids.push_back(entry.second->proc.pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) onChildExit(pid, status);
  }
}

bool ExecSessions::finishIfDone(Session& s) {
  if (!s.exited) return false;
  const uint64_t now = clock_();
  // Output that waits for credit is never cut; silence while the host does
  // grant credit is, after kDrainMs (a grandchild holding the pipe).
  if (s.out_credit == 0) s.drain_deadline = now + kDrainMs;
  if (s.outputOpen() && now < s.drain_deadline && !s.aborted) return false;
  closeFd(s.proc.master_fd);
  closeFd(s.proc.stdin_fd);
  closeFd(s.proc.stdout_fd);
  closeFd(s.proc.stderr_fd);
  sendFrame(gp::encode(exitOf(s.status, s.timed_out), s.stream));
  return true;
}

void ExecSessions::onTick() {
  const uint64_t now = clock_();
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    Session& s = *it->second;
    if (!s.exited && s.timeout_at != 0 && now >= s.timeout_at && !s.timed_out) {
      s.timed_out = true;
      kill(s, SIGKILL);
    }
    it = finishIfDone(s) ? sessions_.erase(it) : std::next(it);
  }
}

int ExecSessions::nextTimeoutMs() const {
  const uint64_t now = clock_();
  uint64_t next = UINT64_MAX;
  for (const auto& entry : sessions_) {
    const Session& s = *entry.second;
    if (s.exited) next = std::min(next, s.drain_deadline);
    if (!s.exited && s.timeout_at != 0) next = std::min(next, s.timeout_at);
  }
  if (next == UINT64_MAX) return -1;
  return next <= now ? 0 : static_cast<int>(std::min<uint64_t>(next - now, 60'000));
}

void ExecSessions::abortAll() {
  for (auto& entry : sessions_) {
    Session& s = *entry.second;
    kill(s, SIGKILL);
    if (!s.exited) orphans_.push_back(s.proc.pid);
    closeFd(s.proc.master_fd);
    closeFd(s.proc.stdin_fd);
    closeFd(s.proc.stdout_fd);
    closeFd(s.proc.stderr_fd);
  }
  sessions_.clear();
}

size_t ExecSessions::bufferedBytes() const {
  size_t total = 0;
  for (const auto& entry : sessions_) total += entry.second->pendingStdin();
  return total;
}

}  // namespace plfm::init
