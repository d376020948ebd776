// vt-init's exec sessions (docs/specs/runtime/exec-sessions.md): one
// ExecSessions per channel turns EXEC_* frames into processes and their
// output back into frames, with a credit window per stream and direction.
//
// It owns no event loop, so that tests drive it over a socketpair with real
// processes and vt-init's main loop drives it in the guest:
//
//   sessions.addPollFds(fds);            // before poll()
//   poll(fds...);
//   sessions.onPoll(fds);                // forwards stdin/output
//   sessions.onFrame(frame);             // for each exec frame received
//   sessions.onChildExit(pid, status);   // for each reaped child (PID 1)
//   sessions.onTick();                   // timeouts, drain deadlines, EXITs
//
// Memory per session is bounded by its windows: at most kExecInitialWindow
// bytes of stdin are buffered, and output is read only as far as the host
// has granted credit, so a command whose reader is slow blocks in write()
// while every other session keeps flowing.
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "exec_spawn.h"
#include "plfm/guest_proto/frame.h"

namespace plfm::init {

class ExecSessions {
 public:
  using Send = std::function<void(const std::string& frame)>;
  using Clock = std::function<uint64_t()>;  // monotonic ms

  // At most this many sessions at once (§Several sessions).
  static constexpr size_t kMaxSessions = 64;
  // After the command exits, how long output may stay silent (while the host
  // grants credit) before the read ends are closed (§Exit status).
  static constexpr uint64_t kDrainMs = 250;

  ExecSessions(ExecDefaults defaults, Send send, Clock clock);
  ExecSessions(const ExecSessions&) = delete;
  ExecSessions& operator=(const ExecSessions&) = delete;
  ~ExecSessions();  // kills every session

  // Handles one frame of an exec type (0x20-0x26) on an exec stream.
  void onFrame(const guest_proto::Frame& frame);

  // Appends the session fds to poll, and handles their revents afterwards
  // (entries it did not add are ignored).
  void addPollFds(std::vector<pollfd>& fds) const;
  void onPoll(const std::vector<pollfd>& fds);

  // A child reaped by the caller; false when it is not a session's.
  bool onChildExit(pid_t pid, int status);
  // Reaps the sessions' children itself (a caller that is not PID 1).
  void reapOwn();
  // Timeouts, drain deadlines and finished sessions; call after each round.
  void onTick();
  // How long poll may sleep before onTick has work; -1: nothing pending.
  [[nodiscard]] int nextTimeoutMs() const;

  // The host is gone (disconnect, or a reattaching host's STATUS): SIGKILL
  // every session's process group, forget them, send nothing.
  void abortAll();

  [[nodiscard]] size_t size() const { return sessions_.size(); }
  // Stdin bytes held for all sessions (bounded by their windows).
  [[nodiscard]] size_t bufferedBytes() const;

 private:
  struct Session;

  void open(uint16_t stream, const std::string& payload);
  void onData(Session& s, const std::string& payload);
  void onClose(Session& s, const std::string& payload);
  void kill(Session& s, int sig);
  void abort(Session& s, const std::string& why);
  void writeStdin(Session& s);
  void readOutput(Session& s, int& fd, guest_proto::ExecFd which);
  bool finishIfDone(Session& s);
  void sendFrame(const guest_proto::Result<std::string>& frame);

  ExecDefaults defaults_;
  Send send_;
  Clock clock_;
  std::map<uint16_t, std::unique_ptr<Session>> sessions_;
  std::vector<pid_t> orphans_;  // killed by abortAll, not yet reaped
};

}  // namespace plfm::init
