// `vt exec` end to end (docs/specs/runtime/exec-sessions.md): the real vt,
// the control plane's ticket and relay, the node agent's endpoint and vt-init
// in a real microVM of examples/hello (whose image carries busybox), all from
// `vt dev up` in a private network namespace. It checks what a user sees:
// exit codes and signals, a missing program, binary stdin and stdout (64 MiB
// through `cat` and `sha256sum`), 20 sessions at once, a remote terminal
// driven through tmux (size, resize, a full-screen program, Ctrl-C), another
// org's user, the audit events (with a canary secret that must not appear in
// them), and a VMM killed under a live session.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "netns_environment.h"
#include "plfm/core/process.h"
#include "plfm/core/sha256.h"
#include "plfm/http/http.h"
#include "plfm/testing/failure_summary.h"
#include "plfm/testing/leak_scan.h"
#include "plfm/testing/temp_dir.h"
#include "vt_dev_driver.h"

namespace plfm {
namespace {

const void* const kFailureSummary = plfm::testing::installFailureSummary();

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using e2e::VtCommand;
using e2e::VtRun;

const auto* const kEnv = e2e::addPrivateNetworkEnvironment("vt exec e2e");

std::string shellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string sha256File(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  Sha256 h;
  std::string buf(1 << 20, '\0');
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.update(std::string_view(buf.data(), static_cast<size_t>(in.gcount())));
  }
  return h.hexDigest();
}

class VtExec : public ::testing::Test, public e2e::VtDevDriver {
 protected:
  void TearDown() override {
    (void)std::system(("tmux kill-server -L " + tmuxSocket() + " 2>/dev/null").c_str());
    (void)vt({"dev", "down", "--state-dir", state_->path()}, 120s);
  }

  // vt's environment as a shell prefix ("env A=1 B=2 /path/vt").
  std::string vtShell(const std::vector<std::string>& extra = {}) const {
    std::string cmd = "env";
    for (const auto& e : vtEnv()) cmd += " " + shellQuote(e);
    for (const auto& e : extra) cmd += " " + shellQuote(e);
    return cmd + " " + shellQuote(vtBinary());
  }

  std::string tmuxSocket() const { return "vtexec" + std::to_string(::getpid()); }
  std::string tmux(const std::string& args) const {
    std::string out;
    const std::string cmd = "tmux -L " + tmuxSocket() + " " + args + " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) return "";
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
    return out;
  }
  // Polls the pane until it shows `want`; returns the last capture.
  std::string waitPane(const std::string& want, std::chrono::seconds timeout = 20s) {
    std::string pane;
    for (auto deadline = Clock::now() + timeout; Clock::now() < deadline;) {
      pane = tmux("capture-pane -p -t exec");
      if (pane.find(want) != std::string::npos) return pane;
      std::this_thread::sleep_for(100ms);
    }
    ADD_FAILURE() << "the pane never showed '" << want << "':\n" << pane;
    return pane;
  }

  VtRun exec(const std::vector<std::string>& cmd, std::chrono::seconds timeout = 60s) {
    std::vector<std::string> args = {"exec", "--app", "hello", "--"};
    args.insert(args.end(), cmd.begin(), cmd.end());
    return vt(args, timeout);
  }
};

TEST_F(VtExec, EndToEnd) {
  phase("vt dev up, deploy examples/hello");
  ASSERT_EQ(vt(upArgs(), 240s).code, 0);
  const std::string ref = pushHello();
  ASSERT_NE(ref.find("@sha256:"), std::string::npos) << ref;
  const std::string manifest = std::string(PLFM_SOURCE_DIR) + "/examples/hello/vt.toml";
  ASSERT_EQ(vt({"deploy", "--manifest", manifest, "--image", ref, "--timeout", "4m"}, 300s).code,
            0);

  phase("a secret whose value is a canary");
  testing::LeakScanner scan;
  const std::string canary = scan.addCanary("HELLO_TOKEN");
  json env = json::parse(vt({"envs", "get", "prod", "--app", "hello", "--format", "json"}).out,
                         nullptr, false);
  ASSERT_TRUE(env.is_object() && env.contains("id"));
  const ApiAnswer set = api("POST", "/v1/envs/" + env["id"].get<std::string>() + "/secrets/set",
                            {{"values", {{"HELLO_TOKEN", canary}}}});
  ASSERT_TRUE(set.status > 0 && set.status < 300) << set.body.dump();
  // The new secrets version replaces the instance: wait until exec sees it
  // (the file holds the value escaped; its random core is plain).
  const std::string core = canary.substr(canary.find("HELLO_TOKEN-") + 12, 32);
  bool seen = false;
  for (auto deadline = Clock::now() + 180s; !seen && Clock::now() < deadline;) {
    VtRun r =
        vt({"exec", "--app", "hello", "--", "cat", "/run/secrets/platform.env"}, 60s, {}, false);
    seen = r.code == 0 && r.out.find(core) != std::string::npos;
    if (!seen) std::this_thread::sleep_for(1s);
  }
  ASSERT_TRUE(seen) << "the secrets file never showed the new value through vt exec";

  phase("exit codes, signals, a missing program");
  for (int code : {0, 1, 42, 254}) {
    EXPECT_EQ(exec({"sh", "-c", "exit " + std::to_string(code)}).code, code);
  }
  EXPECT_EQ(exec({"sh", "-c", "kill -TERM $$"}).code, 143);
  EXPECT_EQ(exec({"sh", "-c", "kill -KILL $$"}).code, 137);
  EXPECT_EQ(exec({"sh", "-c", "kill -INT $$"}).code, 130);
  VtRun missing = exec({"no-such-program"});
  EXPECT_EQ(missing.code, 127);
  EXPECT_NE(missing.err.find("no-such-program"), std::string::npos) << missing.err;
  VtRun env_out = exec({"env"});
  EXPECT_NE(env_out.out.find("GREETING=Hello from plfm-vt"), std::string::npos) << env_out.out;

  phase("64 MiB of random bytes through cat and sha256sum");
  {
    const std::string in = io_->file("random.bin");
    {
      std::ofstream f(in, std::ios::binary);
      std::mt19937_64 rng(17);
      std::string block(1 << 20, '\0');
      for (int mib = 0; mib < 64; ++mib) {
        for (size_t i = 0; i < block.size(); i += 8) {
          const uint64_t v = rng();
          std::memcpy(block.data() + i, &v, 8);
        }
        f.write(block.data(), static_cast<std::streamsize>(block.size()));
      }
    }
    const std::string want = sha256File(in);
    const std::string out = io_->file("random.out");
    VtRun cat = run(VtCommand{.args = {"exec", "-i", "--app", "hello", "--", "cat"},
                              .timeout = 600s,
                              .stdin_path = in,
                              .stdout_path = out});
    EXPECT_EQ(cat.code, 0) << cat.err;
    EXPECT_EQ(std::filesystem::file_size(out), 64U << 20);
    EXPECT_EQ(sha256File(out), want);
    VtRun sum = run(VtCommand{.args = {"exec", "-i", "--app", "hello", "--", "sha256sum"},
                              .timeout = 600s,
                              .stdin_path = in});
    EXPECT_EQ(sum.code, 0) << sum.err;
    EXPECT_EQ(sum.out.substr(0, 64), want) << sum.out;
    // stdin EOF without -i: cat ends at once.
    EXPECT_EQ(exec({"cat"}).code, 0);
  }

  phase("20 sessions at once");
  {
    std::vector<std::string> outs;
    std::vector<Process> procs;
    for (int i = 0; i < 20; ++i) {
      outs.push_back(io_->file("c" + std::to_string(i)));
      SpawnOptions o;
      o.stdout_path = outs.back();
      o.stderr_path = outs.back() + ".err";
      o.env = vtEnv();
      auto p = spawn({vtBinary(), "exec", "--app", "hello", "--", "sh", "-c",
                      "sleep 1; echo session-" + std::to_string(i)},
                     o);
      ASSERT_TRUE(p) << p.error().toString();
      procs.push_back(std::move(*p));
    }
    for (int i = 0; i < 20; ++i) {
      auto st = procs[static_cast<size_t>(i)].waitFor(120s);
      ASSERT_TRUE(st) << "session " << i << " did not end";
      EXPECT_EQ(exitCodeOf(*st), 0) << readFile(outs[static_cast<size_t>(i)] + ".err").value_or("");
      EXPECT_EQ(readFile(outs[static_cast<size_t>(i)]).value_or(""),
                "session-" + std::to_string(i) + "\n");
    }
  }

  phase("a remote terminal through tmux: size, resize, a full-screen program, Ctrl-C");
  {
    ASSERT_EQ(tmux("new-session -d -s exec -x 100 -y 30 " +
                   shellQuote(vtShell() + " exec --app hello -- sh; echo vt-exited=$?; sleep 60")),
              "");
    waitPane("built-in shell", 30s);
    tmux("send-keys -t exec 'stty size' Enter");
    waitPane("30 100");
    tmux("resize-window -t exec -x 120 -y 40");
    std::this_thread::sleep_for(500ms);
    tmux("send-keys -t exec 'clear; stty size' Enter");
    waitPane("40 120");
    // A full-screen program draws the whole window, and quits cleanly.
    tmux("send-keys -t exec 'vi /tmp/vt-exec-e2e' Enter");
    // vi marks each line past the end of the file with '~': a full 40-line
    // window has more than 30 of them.
    std::string vi;
    for (auto deadline = Clock::now() + 20s; Clock::now() < deadline;) {
      vi = tmux("capture-pane -p -t exec");
      if (std::count(vi.begin(), vi.end(), '~') >= 30) break;
      std::this_thread::sleep_for(100ms);
    }
    EXPECT_GE(std::count(vi.begin(), vi.end(), '~'), 30) << vi;
    // Escape alone first: right behind it, ':' would read as Alt-':'.
    tmux("send-keys -t exec Escape");
    std::this_thread::sleep_for(500ms);
    tmux("send-keys -t exec ':q!' Enter");
    std::this_thread::sleep_for(500ms);
    // Ctrl-C interrupts the remote command, not vt.
    tmux("send-keys -t exec 'clear; sleep 100' Enter");
    std::this_thread::sleep_for(1s);
    tmux("send-keys -t exec C-c");
    tmux("send-keys -t exec 'echo status=$?' Enter");
    waitPane("status=130");
    tmux("send-keys -t exec 'exit 3' Enter");
    waitPane("vt-exited=3");
  }

  phase("another org's user gets not found");
  {
    const ApiAnswer created = api("POST", "/v1/users", {{"name", "mallory"}});
    ASSERT_TRUE(created.status > 0 && created.status < 300) << created.body.dump();
    const json& user = created.body;
    const std::string token = user.value("token", "");
    ASSERT_FALSE(token.empty()) << user.dump();
    json list = json::parse(
        vt({"instances", "list", "--app", "hello", "--format", "json"}, 60s, {}, false).out,
        nullptr, false);
    std::string id;
    for (const auto& i : list.value("items", json::array())) {
      if (i.value("desired_state", "") == "run") id = i.value("id", "");
    }
    ASSERT_FALSE(id.empty()) << list.dump();
    SpawnOptions o;
    o.stdout_path = io_->file("mallory.out");
    o.stderr_path = io_->file("mallory.err");
    for (const auto& e : vtEnv()) {
      if (!e.starts_with("VT_TOKEN=")) o.env.push_back(e);
    }
    o.env.push_back("VT_TOKEN=" + token);
    auto p = spawn({vtBinary(), "exec", "--instance", id, "--", "id"}, o);
    ASSERT_TRUE(p);
    auto st = p->waitFor(60s);
    ASSERT_TRUE(st);
    EXPECT_EQ(exitCodeOf(*st), 255);
    const std::string err = readFile(io_->file("mallory.err")).value_or("");
    EXPECT_NE(err.find("not found"), std::string::npos) << err;
  }

  phase("the audit events: who, what, how it ended; no secret in them");
  {
    VtRun events = vt({"events", "tail", "-n", "500", "--format", "json"}, 60s, {}, false);
    ASSERT_EQ(events.code, 0) << events.err;
    size_t started = 0;
    size_t ended = 0;
    for (size_t p = events.out.find("exec.started"); p != std::string::npos;
         p = events.out.find("exec.started", p + 1)) {
      ++started;
    }
    for (size_t p = events.out.find("exec.ended"); p != std::string::npos;
         p = events.out.find("exec.ended", p + 1)) {
      ++ended;
    }
    EXPECT_GE(started, 20U) << events.out.substr(0, 2000);
    EXPECT_GE(ended, 20U);
    EXPECT_EQ(events.out.find(core), std::string::npos) << "the canary is in the events";
    scan.scanText("vt events tail", events.out);
    scan.expectClean();
  }

  phase("the VMM dies under a live session: vt ends within seconds, exit 255");
  {
    SpawnOptions o;
    o.stdout_path = io_->file("lost.out");
    o.stderr_path = io_->file("lost.err");
    o.env = vtEnv();
    auto p =
        spawn({vtBinary(), "exec", "--app", "hello", "--", "sh", "-c", "echo up; sleep 600"}, o);
    ASSERT_TRUE(p);
    for (auto deadline = Clock::now() + 30s;
         readFile(io_->file("lost.out")).value_or("").empty() && Clock::now() < deadline;) {
      std::this_thread::sleep_for(100ms);
    }
    ASSERT_EQ(readFile(io_->file("lost.out")).value_or(""), "up\n");
    int vmm = -1;
    for (const auto& i : agentInstances()) {
      if (i.value("phase", "") == "running" && i.value("vmm_pid", -1) > 0) vmm = i["vmm_pid"];
    }
    ASSERT_GT(vmm, 0) << agentInstances().dump();
    const auto killed = Clock::now();
    ASSERT_EQ(::kill(vmm, SIGKILL), 0);
    auto st = p->waitFor(30s);
    const double took = std::chrono::duration<double>(Clock::now() - killed).count();
    ASSERT_TRUE(st) << "vt did not end after the VMM died";
    std::printf("session lost after the VMM was killed: vt ended in %.2f s\n", took);
    EXPECT_EQ(exitCodeOf(*st), 255);
    const std::string err = readFile(io_->file("lost.err")).value_or("");
    EXPECT_NE(err.find("vt: exec session lost"), std::string::npos) << err;
    EXPECT_LT(took, 3.5);
  }
}

}  // namespace
}  // namespace plfm
