// Golden vectors pin the wire format byte for byte (host-channel.md): each
// test/vectors/NAME.hex is the hex of one encoded frame; readers in other
// languages can check themselves against the same files. The fuzz seed corpus
// (test/corpus/) holds the same frames as raw bytes plus a few broken
// streams. PLFM_UPDATE_GOLDEN=1 rewrites both; review the diff.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "plfm/guest_proto/guest_proto.h"

namespace plfm::guest_proto {
namespace {

const std::string kDir = std::string(PLFM_TEST_DIR) + "/test";

Config goldenConfig() {
  Config c;
  c.instance_id = "inst_1";
  c.argv = {"/bin/app", "--serve"};
  c.env = {"PATH=/bin", "MODE=prod"};
  c.workdir = "/srv";
  c.uid = 1000;
  c.gid = 1000;
  c.groups = {27};
  c.hostname = "web-1";
  NetworkConfig n;
  n.ipv6_address = *parseIpv6("2001:db8::5");
  n.mtu = 1420;
  n.ipv4 = Ipv4Config{*parseIpv4("10.0.0.5"), 24, *parseIpv4("10.0.0.1")};
  c.network = n;
  c.secrets_file = std::string("# plfm-secrets v1\nA=\"b\"\n");
  c.secrets_as_env = true;
  c.shutdown_grace_ms = 3000;
  c.host_time_ns = 1'700'000'000'123'456'789;
  c.nameservers = {"2001:db8::53"};
  return c;
}

ExecOpen goldenExecOpen() {
  ExecOpen o;
  o.argv = {"sh", "-c", "echo hi"};
  o.env = {"TERM=xterm"};
  o.user = "1000:1000";
  o.workdir = "/srv";
  o.tty = true;
  o.rows = 50;
  o.cols = 132;
  o.window = 65536;
  o.timeout_ms = 5000;
  return o;
}

std::map<std::string, std::string> goldenFrames() {
  Config minimal;
  minimal.argv = {"/hello"};
  Config with_volumes = minimal;
  with_volumes.volumes = {{"vol-0", "/data", "ext4"}, {"20490012345678", "/var/lib/db", "ext4"}};
  return {
      {"hello", *encode(Hello{1, "vt-init 0.1.0", "6.1.0-28-cloud-amd64", 1'500'000'000})},
      {"hello_exec",
       *encode(Hello{1, "vt-init 0.1.0", "6.1.0-28-cloud-amd64", 1'500'000'000, kExecRevision})},
      {"config_full", *encode(goldenConfig())},
      {"config_minimal", *encode(minimal)},
      {"config_volumes", *encode(with_volumes)},
      {"ready", encode(Ready{42, 1'600'000'000, std::nullopt})},
      {"ready_stages",
       encode(Ready{42, 1'600'000'000,
                    BootStages{400'000'000, 450'000'000, 470'000'000, 1'200'000'000}})},
      {"log_stdout", *encode(Log{LogSource::kStdout, 1'700'000'000'000'000'000, "hello\n"})},
      {"log_stderr", *encode(Log{LogSource::kStderr, 1'700'000'000'000'000'001, "oops\n"})},
      {"exit_code", encode(Exit{ExitKind::kExited, 3})},
      {"exit_signal", encode(Exit{ExitKind::kSignaled, 15})},
      {"shutdown", encode(Shutdown{5000})},
      {"ping", encodePing(Ping{0x0102030405060708})},
      {"pong", encodePong(Ping{0x0102030405060708})},
      {"error", *encode(BootError{"mount /dev/vda: No such device"})},
      {"status", encodeStatus()},
      {"exec_open", *encode(goldenExecOpen(), kFirstExecStream)},
      {"exec_data", *encode(ExecData{ExecFd::kStdout, "hi\n"}, kFirstExecStream)},
      {"exec_resize", *encode(ExecResize{50, 132}, kFirstExecStream)},
      {"exec_signal", *encode(ExecSignal{2}, kFirstExecStream)},
      {"exec_exit", *encode(ExecExit{ExecExitKind::kSignaled, 15, ""}, kFirstExecStream)},
      {"exec_not_started",
       *encode(ExecExit{ExecExitKind::kNotStarted, 127, "exec nope: No such file or directory"},
               kFirstExecStream)},
      {"exec_close", *encode(ExecClose{ExecCloseKind::kStdinEof}, kFirstExecStream)},
      {"exec_window", *encode(ExecWindow{65536}, kFirstExecStream)},
      {"hello_volumes", *encode(Hello{1, "vt-init 0.1.0", "6.1.0-28-cloud-amd64", 1'500'000'000,
                                      kExecRevision, kVolumeRevision})},
      {"resize_volume", *encode(ResizeVolume{7, 67'108'864, "vol-0"})},
      {"volume_resized", encode(VolumeResized{7, 67'108'864})},
      {"volume_failed", *encode(VolumeFailed{7, "volume vol-0 is not mounted"})},
      {"freeze", *encode(Freeze{8, "vol-1"})},
      {"frozen", encodeFrozen(VolumeOpId{8})},
      {"thaw", encodeThaw(VolumeOpId{8})},
      {"thawed", encode(Thawed{8, ThawKind::kTimeout})},
  };
}

std::string toHex(const std::string& bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes.size(); ++i) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
    if (i % 32 == 31 || i + 1 == bytes.size()) out.push_back('\n');
  }
  return out;
}

std::string fromHex(const std::string& hex) {
  std::string out;
  int high = -1;
  for (char c : hex) {
    int v = -1;
    if (c >= '0' && c <= '9') v = c - '0';
    if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    if (v < 0) continue;
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<char>((high << 4) | v));
      high = -1;
    }
  }
  return out;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void writeFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string vectorPath(const std::string& name) { return kDir + "/vectors/" + name + ".hex"; }
std::string corpusPath(const std::string& name) { return kDir + "/corpus/" + name; }

bool updating() { return std::getenv("PLFM_UPDATE_GOLDEN") != nullptr; }

TEST(GoldenTest, FramesMatchVectors) {
  const auto frames = goldenFrames();
  std::string all;
  for (const auto& [name, bytes] : frames) {
    all += bytes;
    const std::string path = vectorPath(name);
    if (updating()) {
      writeFile(path, toHex(bytes));
      writeFile(corpusPath(name), bytes);
    }
    EXPECT_EQ(readFile(path), toHex(bytes)) << name;
  }
  if (updating()) {
    // Seeds for the fuzzer beyond single valid frames.
    writeFile(kDir + "/corpus/stream_all", all);
    writeFile(kDir + "/corpus/truncated_config", frames.at("config_full").substr(0, 40));
    writeFile(kDir + "/corpus/bad_oversized", std::string("\x02\0\0\0\x7f\0\0\0", 8));
    writeFile(kDir + "/corpus/bad_unknown_type", std::string("\x3f\0\0\0\0\0\0\0", 8));
  }
}

TEST(GoldenTest, VectorsDecodeToTheirMessages) {
  Decoder decoder;
  for (const auto& [name, bytes] : goldenFrames()) {
    decoder.feed(fromHex(readFile(vectorPath(name))));
  }
  std::map<FrameType, int> seen;
  while (true) {
    auto frame = decoder.next();
    ASSERT_TRUE(frame.has_value()) << frame.error().toString();
    if (!*frame) break;
    ++seen[(*frame)->type];
    if ((*frame)->type == FrameType::kConfig) {
      auto config = decodeConfig((*frame)->payload);
      ASSERT_TRUE(config.has_value()) << config.error().toString();
      if (!config->volumes.empty()) {
        EXPECT_EQ(config->volumes.at(1).mount, "/var/lib/db");
      } else if ((*frame)->payload.size() > 100) {
        EXPECT_EQ(*config, goldenConfig());
      }
    }
    if ((*frame)->type == FrameType::kExecOpen) {
      auto open = decodeExecOpen((*frame)->payload);
      ASSERT_TRUE(open.has_value()) << open.error().toString();
      EXPECT_EQ(*open, goldenExecOpen());
    }
  }
  EXPECT_EQ(seen[FrameType::kConfig], 3);
  EXPECT_EQ(seen[FrameType::kLog], 2);
  EXPECT_EQ(seen[FrameType::kExecExit], 2);
  EXPECT_EQ(seen[FrameType::kExecWindow], 1);
  EXPECT_EQ(seen[FrameType::kResizeVolume], 1);
  EXPECT_EQ(seen[FrameType::kThawed], 1);
  EXPECT_EQ(decoder.buffered(), 0u);
}

}  // namespace
}  // namespace plfm::guest_proto
