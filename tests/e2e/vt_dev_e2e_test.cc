// `vt dev` end to end: the real vt binary brings up the whole local platform
// (PostgreSQL, control plane, registry, node agent with real QEMU microVMs,
// ingress) in a temp state dir on free ports, deploys an image, reaches it
// through the ingress over IPv6 and IPv4, and `vt dev down` leaves nothing
// behind. The binary runs in a private network namespace (unshared before
// any thread starts), so taps and listeners never touch the host's network.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "dev_process.h"
#include "hello_builder.h"
#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"
#include "support/test_image.h"

namespace plfm {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class NetnsEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0) << "vt dev e2e needs root (taps, network namespaces)";
    ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << "unshare(CLONE_NEWNET): " << std::strerror(errno);
    ASSERT_EQ(std::system("ip link set lo up"), 0);
  }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new NetnsEnvironment);

struct VtRun {
  int code = -1;
  std::string out;
  std::string err;
  double seconds = 0;
};

class VtDev : public ::testing::Test {
 protected:
  void SetUp() override {
    state_ = std::make_unique<testing::TempDir>("vd");
    io_ = std::make_unique<testing::TempDir>("vdio");
    ports_ = {testing::freeTcpPort(), testing::freeTcpPort(), testing::freeTcpPort(),
              testing::freeTcpPort(), testing::freeTcpPort()};
  }
  void TearDown() override {
    // Whatever happened, stop the platform (a no-op after a clean down).
    (void)vt({"dev", "down", "--state-dir", state_->path()}, 120s);
  }

  VtRun vt(const std::vector<std::string>& args, std::chrono::seconds timeout = 60s) {
    std::vector<std::string> argv = {PLFM_VT_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    SpawnOptions o;
    o.stdout_path = io_->file("out");
    o.stderr_path = io_->file("err");
    std::error_code ec;
    std::filesystem::remove(o.stdout_path, ec);
    std::filesystem::remove(o.stderr_path, ec);
    o.env = {"VT_CONFIG_DIR=" + io_->file("config"),
             "NO_COLOR=1",
             "VT_URL=",
             "VT_TOKEN=",
             "VT_ORG=",
             "VT_APP=",
             "VT_ENV=",
             "VT_CONTEXT="};
    VtRun r;
    const auto t0 = Clock::now();
    auto p = spawn(argv, o);
    if (!p) {
      r.err = p.error().toString();
      return r;
    }
    auto status = p->waitFor(timeout);
    if (!status) {
      p->signal(9);
      r.err = "vt timed out\n";
    } else {
      r.code = exitCodeOf(*status);
    }
    r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    r.out = readFile(io_->file("out")).value_or("");
    r.err += readFile(io_->file("err")).value_or("");
    std::string cmd = "vt";
    for (const auto& a : args) cmd += " " + a;
    std::printf("$ %s  [exit %d, %.1fs]\n%s%s", cmd.c_str(), r.code, r.seconds, r.out.c_str(),
                r.err.c_str());
    std::fflush(stdout);
    return r;
  }

  std::vector<std::string> upArgs() const {
    return {"dev",
            "up",
            "--state-dir",
            state_->path(),
            "--control-plane-port",
            std::to_string(ports_[0]),
            "--registry-port",
            std::to_string(ports_[1]),
            "--agent-port",
            std::to_string(ports_[2]),
            "--ingress-port",
            std::to_string(ports_[3]),
            "--ingress-metrics-port",
            std::to_string(ports_[4]),
            "--format",
            "table"};
  }

  // Pushes the test workload as an OCI image; returns its reference.
  std::string pushWorkload() {
    auto bin = readFile(PLFM_TEST_WORKLOAD_BIN);
    EXPECT_TRUE(bin);
    namespace it = image::testing;
    const std::string layer = io_->file("layer.tar.gz");
    EXPECT_TRUE(it::writeLayer(
        layer,
        {it::dir("bin"), it::file("bin/vt-test-workload", bin.value_or(""), 0755), it::dir("etc"),
         it::file("etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"),
         it::file("etc/group", "root:x:0:\napp:x:1000:\n"), it::dir("tmp", 01777)},
        it::Compression::kGzip));
    it::ImageSpec spec;
    spec.layer_files = {layer};
    spec.compressions = {it::Compression::kGzip};
    spec.entrypoint = {"/bin/vt-test-workload"};
    spec.cmd = {"serve", "8443"};
    spec.env = {"PATH=/bin"};
    spec.workdir = "/";
    spec.user = "app";
    auto built = it::writeOciImage(io_->file("layout"), "v1", spec);
    EXPECT_TRUE(built) << (built ? "" : built.error().toString());
    const std::string ref = "127.0.0.1:" + std::to_string(ports_[1]) + "/e2e/web:v1";
    SpawnOptions so;
    so.stdout_path = io_->file("skopeo.log");
    auto pushed =
        runChecked({"skopeo", "copy", "--all", "--dest-tls-verify=false", "--preserve-digests",
                    "oci:" + io_->file("layout") + ":v1", "docker://" + ref},
                   so);
    EXPECT_TRUE(pushed) << (pushed ? "" : pushed.error().toString());
    return ref;
  }

  std::unique_ptr<testing::TempDir> state_;
  std::unique_ptr<testing::TempDir> io_;
  std::vector<int> ports_;
};

// Sends a ClientHello for `sni` to the ingress and returns what comes back
// (the test workload answers any connection with "hello from <instance>").
std::string throughIngress(const std::string& ip, int port, const std::string& sni) {
  const bool v6 = ip.find(':') != std::string::npos;
  int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  timeval tv{.tv_sec = 5, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr);
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, ip.c_str(), &a->sin_addr);
    len = sizeof *a;
  }
  std::string got;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0) {
    auto hello = net::testing::simpleHello(sni);
    if (::write(fd, hello.data(), hello.size()) == static_cast<ssize_t>(hello.size())) {
      char buf[512];
      ssize_t n = 0;
      while ((n = ::read(fd, buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  return got;
}

std::string waitAnswer(const std::string& ip, int port, const std::string& sni,
                       std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string got;
  while (Clock::now() < deadline) {
    got = throughIngress(ip, port, sni);
    if (got.find("hello from inst_") != std::string::npos) return got;
    std::this_thread::sleep_for(500ms);
  }
  return got;
}

// "inst_..." from "hello from inst_...\n", or "".
std::string instanceIn(const std::string& answer) {
  auto at = answer.find("hello from ");
  if (at == std::string::npos) return "";
  std::string id = answer.substr(at + 11);
  return id.substr(0, id.find('\n'));
}

// Instance id -> release id, of the instances the control plane lists.
std::map<std::string, std::string> releasesOf(const json& list) {
  std::map<std::string, std::string> out;
  if (!list.is_object() || !list.contains("items")) return out;
  for (const auto& i : list["items"]) {
    out[i.value("id", "")] = i.value("release_id", "");
  }
  return out;
}

TEST_F(VtDev, UpDeployServeDownLeavesNothing) {
  const auto t0 = Clock::now();
  VtRun up = vt(upArgs(), 240s);
  ASSERT_EQ(up.code, 0) << up.err;
  for (const char* c : {"postgres", "control-plane", "registry", "node-agent", "ingress"}) {
    EXPECT_NE(up.err.find(c), std::string::npos) << c;
  }

  VtRun st = vt({"dev", "status", "--state-dir", state_->path(), "--format", "json"});
  ASSERT_EQ(st.code, 0) << st.err;
  json s = json::parse(st.out, nullptr, false);
  ASSERT_TRUE(s.is_object()) << st.out;
  ASSERT_EQ(s["components"].size(), 5U);
  for (const auto& c : s["components"]) {
    EXPECT_EQ(c["health"], "healthy") << c.dump();
    EXPECT_TRUE(c["pid"].is_number()) << c.dump();
  }

  // Idempotent: a second up finds everything running.
  VtRun again = vt(upArgs(), 120s);
  ASSERT_EQ(again.code, 0) << again.err;
  size_t already = 0;
  for (size_t p = again.err.find("already running"); p != std::string::npos;
       p = again.err.find("already running", p + 1)) {
    ++already;
  }
  EXPECT_EQ(already, 5U) << again.err;

  // The context works right away: the node is there.
  VtRun nodes = vt({"nodes", "list", "--format", "json"});
  ASSERT_EQ(nodes.code, 0) << nodes.err;
  EXPECT_NE(nodes.out.find("\"active\""), std::string::npos) << nodes.out;

  // Deploy the workload and route web.localhost to it.
  const std::string ref = pushWorkload();
  ASSERT_TRUE(writeFileAtomic(io_->file("vt.toml"), "app = \"web\"\nimage = \"" + ref +
                                                        "\"\n\n[processes.web]\n"
                                                        "[processes.web.resources]\n"
                                                        "vcpus = 1\nmemory_mb = 128\n"));
  VtRun deploy = vt({"deploy", "--manifest", io_->file("vt.toml"), "--timeout", "4m"}, 300s);
  ASSERT_EQ(deploy.code, 0) << deploy.err;
  VtRun route = vt({"routes", "add", "web.localhost", "--app", "web", "--port", "8443",
                    "--listener-port", std::to_string(ports_[3])});
  ASSERT_EQ(route.code, 0) << route.err;

  const std::string v6 = waitAnswer("::1", ports_[3], "web.localhost", 60s);
  EXPECT_NE(v6.find("hello from inst_"), std::string::npos) << "IPv6: " << v6;
  const std::string v4 = waitAnswer("127.0.0.1", ports_[3], "web.localhost", 30s);
  EXPECT_NE(v4.find("hello from inst_"), std::string::npos) << "IPv4: " << v4;
  std::printf("through the ingress: IPv6 -> %sIPv4 -> %s", v6.c_str(), v4.c_str());

  st = vt({"dev", "status", "--state-dir", state_->path(), "--format", "json"});
  s = json::parse(st.out, nullptr, false);
  ASSERT_TRUE(s.is_object()) << st.out;
  EXPECT_EQ(s["instances"]["running"], 1) << st.out;
  EXPECT_EQ(vt({"dev", "status", "--state-dir", state_->path(), "--format", "table"}).code, 0);

  // Scale to 2: both instances answer through the ingress.
  ASSERT_EQ(vt({"scale", "set", "web=2", "--app", "web"}).code, 0);
  std::set<std::string> seen;
  for (auto deadline = Clock::now() + 120s; seen.size() < 2 && Clock::now() < deadline;) {
    std::string id = instanceIn(throughIngress("::1", ports_[3], "web.localhost"));
    if (!id.empty()) seen.insert(id);
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_EQ(seen.size(), 2U) << "distinct instances answering after scale to 2";
  VtRun list = vt({"instances", "list", "--app", "web", "--format", "json"});
  auto rel_of = releasesOf(json::parse(list.out, nullptr, false));
  for (const auto& id : seen) EXPECT_TRUE(rel_of.contains(id)) << id << " is not listed";
  const std::string release1 = rel_of.empty() ? "" : rel_of.begin()->second;

  // A second release, rolled out while a client keeps requesting. The goal
  // is zero failed requests; the bound (kMaxRollingFailures) allows for the
  // ingress noticing a drained backend one request late.
  constexpr int kMaxRollingFailures = 2;
  ASSERT_TRUE(writeFileAtomic(io_->file("vt2.toml"), "app = \"web\"\nimage = \"" + ref +
                                                         "\"\n\n[processes.web]\n"
                                                         "[processes.web.resources]\n"
                                                         "vcpus = 1\nmemory_mb = 128\n"
                                                         "[env]\nRELEASE = \"2\"\n"));
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::thread client([&] {
    while (!stop) {
      if (instanceIn(throughIngress("::1", ports_[3], "web.localhost")).empty()) {
        ++failed;
      } else {
        ++ok;
      }
      std::this_thread::sleep_for(50ms);
    }
  });
  VtRun deploy2 = vt({"deploy", "--manifest", io_->file("vt2.toml"), "--timeout", "4m"}, 300s);
  std::this_thread::sleep_for(2s);
  stop = true;
  client.join();
  EXPECT_EQ(deploy2.code, 0) << deploy2.err;
  std::printf("rolling deploy: %d requests answered, %d failed (bound %d)\n", ok.load(),
              failed.load(), kMaxRollingFailures);
  EXPECT_LE(failed.load(), kMaxRollingFailures);
  EXPECT_GT(ok.load(), 0);

  // Rollback: release 1 answers again.
  VtRun rollback = vt({"rollback", "--app", "web"}, 300s);
  EXPECT_EQ(rollback.code, 0) << rollback.err;
  bool release1_answers = false;
  for (auto deadline = Clock::now() + 120s; !release1_answers && Clock::now() < deadline;) {
    std::string id = instanceIn(throughIngress("::1", ports_[3], "web.localhost"));
    rel_of = releasesOf(json::parse(
        vt({"instances", "list", "--app", "web", "--format", "json"}).out, nullptr, false));
    release1_answers = !id.empty() && rel_of.contains(id) && rel_of[id] == release1;
    if (!release1_answers) std::this_thread::sleep_for(1s);
  }
  EXPECT_TRUE(release1_answers) << "release " << release1 << " after vt rollback";

  // Restart on the same state dir: nothing is lost, the app serves again.
  ASSERT_EQ(vt({"dev", "down", "--state-dir", state_->path()}, 180s).code, 0);
  EXPECT_TRUE(vt::dev::processesMentioning(state_->path() + "/node-agent").empty());
  EXPECT_TRUE(vt::dev::vtTaps().empty());
  VtRun up2 = vt(upArgs(), 240s);
  ASSERT_EQ(up2.code, 0) << up2.err;
  const std::string again_v6 = waitAnswer("::1", ports_[3], "web.localhost", 120s);
  EXPECT_NE(again_v6.find("hello from inst_"), std::string::npos) << "after restart: " << again_v6;
  VtRun releases = vt({"releases", "list", "--app", "web", "--format", "json"});
  EXPECT_NE(releases.out.find(release1), std::string::npos);
  VtRun routes = vt({"routes", "list", "--app", "web", "--format", "json"});
  EXPECT_NE(routes.out.find("web.localhost"), std::string::npos);

  VtRun logs = vt({"dev", "logs", "control-plane", "--state-dir", state_->path(), "-n", "5"});
  EXPECT_EQ(logs.code, 0);
  EXPECT_FALSE(logs.out.empty());

  VtRun down = vt({"dev", "down", "--state-dir", state_->path()}, 180s);
  ASSERT_EQ(down.code, 0) << down.err;
  EXPECT_TRUE(vt::dev::processesMentioning(state_->path()).empty());
  EXPECT_TRUE(vt::dev::vtTaps().empty());
  EXPECT_TRUE(vt::dev::socketsUnder(state_->path()).empty());
  EXPECT_TRUE(vt::dev::mountsUnder(state_->path()).empty());
  st = vt({"dev", "status", "--state-dir", state_->path(), "--format", "json"});
  EXPECT_NE(st.code, 0);
  std::printf("vt dev e2e wall time: %.1fs\n",
              std::chrono::duration<double>(Clock::now() - t0).count());
}

}  // namespace
}  // namespace plfm
