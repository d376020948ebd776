// A fake control plane for `vt exec` tests (vt_exec_test.cc): a libs/http
// server in the test process with POST /v1/instances/{id}/exec (the ticket)
// and GET /v1/exec (the WebSocket), plus the lookups `vt exec` makes to pick
// an instance. Its "remote command" is scripted by argv[0] ("exit N",
// "cat", "yes", "tty", "sleep", "lost", "refused", ...) and enforces the
// credit rules of docs/specs/runtime/exec-sessions.md as the real hops do.
// Also a pseudo-terminal for vt's stdin and stdout. Test code only.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "plfm/guest_proto/exec.h"
#include "plfm/guest_proto/frame.h"
#include "plfm/http/http.h"
#include "plfm/http/websocket.h"

namespace plfm::vt::testing {

using nlohmann::json;

namespace gp = guest_proto;

inline constexpr const char* kInstance = "inst_01jc0000000000000000000001";
inline constexpr const char* kOther = "inst_01jc0000000000000000000002";
inline constexpr const char* kMissing = "inst_01jc0000000000000000000009";
inline constexpr const char* kEnv = "env_01jc0000000000000000000001";
inline constexpr const char* kApp = "app_01jc0000000000000000000001";
inline constexpr const char* kOrg = "org_01jc0000000000000000000001";

inline std::string frame(const auto& m) {
  auto f = gp::encode(m, gp::kFirstExecStream);
  EXPECT_TRUE(f);
  return f ? *f : std::string();
}

inline std::string exitFrame(gp::ExecExitKind kind, int code) {
  return frame(gp::ExecExit{.kind = kind, .code = code, .message = ""});
}

// What the fake's sessions saw, for the tests to check.
struct Observed {
  std::atomic<bool> ready{false};  // a "sleep" session got stdin_eof
  std::atomic<int> signal{0};      // the signal it got
  std::mutex mu;
  std::string tty_input;  // stdin bytes of "tty" sessions
  int rows = 0;           // their last EXEC_RESIZE
  int cols = 0;
  bool aborted = false;  // EXEC_CLOSE abort arrived
};

// One session of the fake's "remote command".
class FakeRemote {
 public:
  FakeRemote(http::WebSocket& ws, std::vector<std::string> argv, std::string* violation,
             Observed* seen)
      : ws_(ws), argv_(std::move(argv)), violation_(violation), seen_(seen) {}

  void run() {
    const std::string& cmd = argv_.at(0);
    if (cmd == "exit") {
      (void)ws_.write(exitFrame(gp::ExecExitKind::kExited, std::stoi(argv_.at(1))));
    } else if (cmd == "lost") {
      (void)ws_.close(4000, "the instance's VM exited");
    } else if (cmd == "refused") {
      (void)ws_.close(4001, "too many exec sessions");
    } else if (cmd == "notfound") {
      (void)ws_.write(frame(gp::ExecExit{
          .kind = gp::ExecExitKind::kNotStarted, .code = 127, .message = "nope: not found"}));
    } else if (cmd == "yes") {
      yes();
    } else if (cmd == "streams") {
      (void)ws_.write(frame(gp::ExecData{.fd = gp::ExecFd::kStdout, .data = "to stdout\n"}));
      (void)ws_.write(frame(gp::ExecData{.fd = gp::ExecFd::kStderr, .data = "to stderr\n"}));
      (void)ws_.write(exitFrame(gp::ExecExitKind::kExited, 0));
    } else if (cmd == "sleep") {
      sleepUntilSignal();
    } else if (cmd == "cat") {
      cat();
    } else if (cmd == "tty") {
      tty();
    }
  }

 private:
  void violation(const std::string& what) {
    *violation_ = what;
    (void)ws_.close(http::kClosePolicyViolation, what);
  }

  // Waits for EXEC_SIGNAL N, then dies of it.
  void sleepUntilSignal() {
    while (auto m = ws_.read()) {
      gp::Decoder d;
      d.feed(*m);
      auto f = d.next();
      if (!f || !f->has_value()) return violation("bad frame");
      // vt sends stdin_eof (no -i) once its signal handlers are in place.
      if ((*f)->type == gp::FrameType::kExecClose) seen_->ready.store(true);
      if ((*f)->type == gp::FrameType::kExecSignal) {
        auto sig = gp::decodeExecSignal((*f)->payload);
        seen_->signal.store(sig->signal);
        (void)ws_.write(exitFrame(gp::ExecExitKind::kSignaled, sig->signal));
        return;
      }
    }
  }

  // Endless output within the client's credit, until an abort.
  void yes() {
    uint64_t credit = gp::kExecInitialWindow;
    const std::string line(gp::kMaxExecDataBytes, 'y');
    for (;;) {
      while (credit >= line.size()) {
        if (!ws_.write(frame(gp::ExecData{.fd = gp::ExecFd::kStdout, .data = line}))) return;
        credit -= line.size();
      }
      auto m = ws_.read();
      if (!m) return;
      gp::Decoder d;
      d.feed(*m);
      auto f = d.next();
      if (!f || !f->has_value()) return violation("bad frame");
      if ((*f)->type == gp::FrameType::kExecWindow) {
        credit += gp::decodeExecWindow((*f)->payload)->increment;
      } else if ((*f)->type == gp::FrameType::kExecClose &&
                 gp::decodeExecClose((*f)->payload)->kind == gp::ExecCloseKind::kAbort) {
        std::lock_guard lock(seen_->mu);
        seen_->aborted = true;
        (void)ws_.write(exitFrame(gp::ExecExitKind::kSignaled, 9));
        return;
      }
    }
  }

  // A terminal session: records keystrokes and sizes, echoes the keys;
  // "q" exits 5, an abort ends it as SIGKILL would.
  void tty() {
    while (auto m = ws_.read()) {
      gp::Decoder d;
      d.feed(*m);
      auto f = d.next();
      if (!f || !f->has_value()) return violation("bad frame");
      const gp::Frame& fr = **f;
      std::lock_guard lock(seen_->mu);
      if (fr.type == gp::FrameType::kExecData) {
        auto data = gp::decodeExecData(fr.payload);
        seen_->tty_input += data->data;
        if (data->data.find('q') != std::string::npos) {
          (void)ws_.write(exitFrame(gp::ExecExitKind::kExited, 5));
          return;
        }
        (void)ws_.write(frame(gp::ExecData{.fd = gp::ExecFd::kStdout, .data = data->data}));
      } else if (fr.type == gp::FrameType::kExecResize) {
        auto r = gp::decodeExecResize(fr.payload);
        seen_->rows = r->rows;
        seen_->cols = r->cols;
      } else if (fr.type == gp::FrameType::kExecClose &&
                 gp::decodeExecClose(fr.payload)->kind == gp::ExecCloseKind::kAbort) {
        seen_->aborted = true;
        (void)ws_.write(exitFrame(gp::ExecExitKind::kSignaled, 9));
        return;
      }
    }
  }

  // Echoes stdin to stdout. Stdin credit is granted only as bytes are
  // echoed, and output is sent only within the client's output credit.
  void cat() {
    uint64_t stdin_credit = gp::kExecInitialWindow;  // what the client may still send
    uint64_t out_credit = gp::kExecInitialWindow;    // what we may still send
    uint64_t consumed = 0;                           // echoed since our last WINDOW
    std::string pending;
    bool eof = false;
    for (;;) {
      // Send what the credit allows.
      while (!pending.empty() && out_credit > 0) {
        auto n = std::min<size_t>({pending.size(), out_credit, gp::kMaxExecDataBytes});
        if (!ws_.write(
                frame(gp::ExecData{.fd = gp::ExecFd::kStdout, .data = pending.substr(0, n)})))
          return;
        pending.erase(0, n);
        out_credit -= n;
        consumed += n;
      }
      if (consumed >= gp::kExecInitialWindow / 2 ||
          (consumed > 0 && pending.empty() && stdin_credit < gp::kMaxExecDataBytes)) {
        (void)ws_.write(frame(gp::ExecWindow{.increment = static_cast<uint32_t>(consumed)}));
        stdin_credit += consumed;
        consumed = 0;
      }
      if (eof && pending.empty()) {
        (void)ws_.write(exitFrame(gp::ExecExitKind::kExited, 0));
        return;
      }
      auto m = ws_.read();
      if (!m) return;
      gp::Decoder d;
      d.feed(*m);
      auto f = d.next();
      if (!f || !f->has_value() || d.buffered() != 0) return violation("not one frame");
      const gp::Frame& fr = **f;
      if (fr.type == gp::FrameType::kExecData) {
        auto data = gp::decodeExecData(fr.payload);
        if (!data || data->fd != gp::ExecFd::kStdin) return violation("bad stdin");
        if (data->data.size() > stdin_credit) return violation("stdin beyond the credit");
        stdin_credit -= data->data.size();
        pending += data->data;
      } else if (fr.type == gp::FrameType::kExecWindow) {
        out_credit += gp::decodeExecWindow(fr.payload)->increment;
        if (out_credit > gp::kMaxExecCredit) return violation("output credit too high");
      } else if (fr.type == gp::FrameType::kExecClose) {
        eof = true;
      } else {
        return violation("unexpected " + gp::frameTypeName(fr.type));
      }
    }
  }

  http::WebSocket& ws_;
  std::vector<std::string> argv_;
  std::string* violation_;
  Observed* seen_;
};

class FakeControlPlane {
 public:
  FakeControlPlane() {
    router_.add("POST", "/v1/instances/{id}/exec",
                [this](http::Request& req) { return postExec(req); });
    router_.add("GET", "/v1/exec", [this](http::Request& req) { return getExec(req); });
    router_.add("GET", "/v1/orgs/{id}", [](http::Request&) {
      return http::Response::json(200, json{{"id", kOrg}, {"name", "acme"}}.dump());
    });
    router_.add("GET", "/v1/apps/{id}", [](http::Request&) {
      return http::Response::json(200, json{{"id", kApp}, {"name", "hello"}}.dump());
    });
    router_.add("GET", "/v1/envs/{id}", [](http::Request&) {
      return http::Response::json(200, json{{"id", kEnv}, {"name", "prod"}}.dump());
    });
    router_.add("GET", "/v1/envs/{id}/instances", [this](http::Request&) {
      std::lock_guard lock(mu_);
      return http::Response::json(200,
                                  json{{"items", instances_}, {"summary", json::array()}}.dump());
    });
    server_ =
        std::make_unique<http::Server>(http::ServerOptions{.listen = {"[::1]:0"}},
                                       [this](http::Request& r) { return router_.dispatch(r); });
    EXPECT_TRUE(server_->start());
  }
  ~FakeControlPlane() { server_->stop(std::chrono::milliseconds(0)); }

  [[nodiscard]] std::string url() const { return "http://" + server_->endpoints()[0]; }

  void setExecUrl(std::string url) {
    std::lock_guard lock(mu_);
    exec_url_ = std::move(url);
  }
  void setInstances(json items) {
    std::lock_guard lock(mu_);
    instances_ = std::move(items);
  }
  [[nodiscard]] json lastPost() {
    std::lock_guard lock(mu_);
    return last_post_;
  }
  [[nodiscard]] std::string lastPostInstance() {
    std::lock_guard lock(mu_);
    return last_post_instance_;
  }
  [[nodiscard]] std::string violation() {
    std::lock_guard lock(mu_);
    return violation_;
  }
  [[nodiscard]] int sessions() const { return sessions_.load(); }

 private:
  http::Response postExec(http::Request& req) {
    std::string id(req.param("id"));
    if (id == kMissing) {
      return http::Response::json(404, json{{"error",
                                             {{"code", "not_found"},
                                              {"message", "instance " + id + " not found"},
                                              {"details", json::object()}}}}
                                           .dump());
    }
    if (!req.header("Idempotency-Key") || req.header("Authorization") != "Bearer vt_test") {
      return http::Response::json(400, R"({"error":{"code":"bad_request","message":"no key"}})");
    }
    json body = json::parse(req.body);
    std::lock_guard lock(mu_);
    last_post_ = body;
    last_post_instance_ = id;
    std::string ticket = "vxt_test" + std::to_string(next_ticket_++);
    // "stale" tickets are never honoured (as if expired); "replay" answers
    // as an idempotent replay does, without the ticket.
    if (body["argv"][0] != "stale") tickets_[ticket] = body["argv"].get<std::vector<std::string>>();
    json shown = body["argv"][0] == "replay" ? json(nullptr) : json(ticket);
    return http::Response::json(201, json{{"ticket", shown},
                                          {"expires_at", "2026-12-06T10:00:00Z"},
                                          {"session_id", "xs_01jc0000000000000000000001"},
                                          {"instance_id", id},
                                          {"url", exec_url_}}
                                         .dump());
  }

  http::Response getExec(http::Request& req) {
    std::vector<std::string> argv;
    {
      std::lock_guard lock(mu_);
      auto t = req.header("X-Plfm-Exec-Ticket");
      auto it = t ? tickets_.find(std::string(*t)) : tickets_.end();
      if (it == tickets_.end() || req.header("Authorization")) {
        return http::Response::json(401, R"({"error":{"code":"unauthenticated","message":"no"}})");
      }
      argv = it->second;
      tickets_.erase(it);  // single use
    }
    return http::acceptWebSocket(req, {}, [this, argv](http::WebSocket& ws) {
      ++sessions_;
      std::string violation;
      FakeRemote(ws, argv, &violation, &seen).run();
      if (!violation.empty()) {
        std::lock_guard lock(mu_);
        violation_ = violation;
      }
    });
  }

  http::Router router_;
  std::unique_ptr<http::Server> server_;
  std::mutex mu_;
  std::map<std::string, std::vector<std::string>> tickets_;
  json last_post_;
  std::string last_post_instance_;
  json instances_ = json::array();
  std::string violation_;
  std::atomic<int> sessions_{0};
  std::string exec_url_ = "/v1/exec";
  int next_ticket_ = 0;

 public:
  Observed seen;
};

// A pseudo-terminal for vt's stdin and stdout, as a user's terminal would be.
class Pty {
 public:
  Pty() {
    winsize ws{};
    ws.ws_row = 30;
    ws.ws_col = 100;
    EXPECT_EQ(::openpty(&master_, &slave_, nullptr, nullptr, &ws), 0);
    ::fcntl(master_, F_SETFD, FD_CLOEXEC);
    ::fcntl(slave_, F_SETFD, FD_CLOEXEC);
    EXPECT_EQ(::tcgetattr(slave_, &initial_), 0);
    // Drain what vt writes, so that it never blocks on a full terminal.
    drainer_ = std::thread([this] {
      std::array<char, 4096> buf{};
      for (;;) {
        pollfd p{.fd = master_, .events = POLLIN, .revents = 0};
        if (::poll(&p, 1, 50) < 0 || stop_.load()) return;
        if ((p.revents & POLLIN) == 0) continue;
        ssize_t n = ::read(master_, buf.data(), buf.size());
        if (n <= 0) continue;
        std::lock_guard lock(mu_);
        output_.append(buf.data(), static_cast<size_t>(n));
      }
    });
  }
  ~Pty() {
    stop_.store(true);
    drainer_.join();
    ::close(master_);
    ::close(slave_);
  }
  Pty(const Pty&) = delete;
  Pty& operator=(const Pty&) = delete;

  [[nodiscard]] int slave() const { return slave_; }
  [[nodiscard]] std::string slaveName() const { return ::ttyname(slave_); }
  void type(std::string_view keys) const {
    ASSERT_EQ(::write(master_, keys.data(), keys.size()), static_cast<ssize_t>(keys.size()));
  }
  void resize(int rows, int cols) const {
    winsize ws{};
    ws.ws_row = static_cast<uint16_t>(rows);
    ws.ws_col = static_cast<uint16_t>(cols);
    ASSERT_EQ(::ioctl(master_, TIOCSWINSZ, &ws), 0);
  }
  [[nodiscard]] bool isRaw() const {
    termios t{};
    return ::tcgetattr(slave_, &t) == 0 && (t.c_lflag & (ICANON | ECHO | ISIG)) == 0;
  }
  // The settings are the ones the terminal had before vt ran.
  [[nodiscard]] bool restored() const {
    termios t{};
    return ::tcgetattr(slave_, &t) == 0 && t.c_lflag == initial_.c_lflag &&
           t.c_iflag == initial_.c_iflag && t.c_oflag == initial_.c_oflag &&
           t.c_cflag == initial_.c_cflag;
  }
  [[nodiscard]] std::string output() {
    std::lock_guard lock(mu_);
    return output_;
  }

 private:
  int master_ = -1;
  int slave_ = -1;
  termios initial_{};
  std::thread drainer_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::string output_;
};

template <class F>
bool eventually(F f) {
  for (int i = 0; i < 1000; ++i) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace plfm::vt::testing
