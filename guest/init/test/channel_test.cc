// vt-init's channel over a socketpair: frames go out whole and in order, a
// host that stops reading costs LOG frames but never control frames, and
// frames from the host are decoded.
#include "channel.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "plfm/guest_proto/guest_proto.h"

namespace plfm::init {
namespace {

namespace gp = guest_proto;

class ChannelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    guest_fd_ = fds[0];
    host_fd_ = fds[1];
    const int small = 4096;  // so that "the host stops reading" comes quickly
    ::setsockopt(guest_fd_, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    ::setsockopt(host_fd_, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  }
  void TearDown() override { ::close(host_fd_); }

  // Everything the host end can read now, decoded.
  std::vector<gp::Frame> hostReads(Channel& channel) {
    std::vector<gp::Frame> frames;
    char buf[65536];
    while (true) {
      const ssize_t n = ::read(host_fd_, buf, sizeof buf);
      if (n > 0) {
        host_decoder_.feed(buf, static_cast<size_t>(n));
        continue;
      }
      // Let the guest side write more, as poll() would.
      if (channel.idle()) break;
      std::vector<gp::Frame> ignored;
      EXPECT_TRUE(channel.onEvents(POLLOUT, ignored).has_value());
      pollfd p{host_fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) break;
    }
    while (true) {
      auto f = host_decoder_.next();
      EXPECT_TRUE(f.has_value()) << f.error().toString();
      if (!f || !*f) break;
      frames.push_back(std::move(**f));
    }
    return frames;
  }

  int guest_fd_ = -1;
  int host_fd_ = -1;
  gp::Decoder host_decoder_;
};

TEST_F(ChannelTest, FramesArriveWholeAndInOrder) {
  Channel channel = Channel::fromFd(guest_fd_);
  channel.send(gp::encodePing(gp::Ping{1}));
  channel.send(*gp::encode(gp::Log{gp::LogSource::kStdout, 5, std::string(10000, 'x')}), true);
  channel.send(gp::encode(gp::Exit{gp::ExitKind::kExited, 4}));
  const auto frames = hostReads(channel);
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].type, gp::FrameType::kPing);
  EXPECT_EQ(gp::decodeLog(frames[1].payload)->data.size(), 10000u);
  EXPECT_EQ(gp::decodeExit(frames[2].payload)->code, 4);
  EXPECT_TRUE(channel.idle());
}

TEST_F(ChannelTest, StalledHostCostsLogsNotControlFrames) {
  Channel channel = Channel::fromFd(guest_fd_);
  const std::string log =
      *gp::encode(gp::Log{gp::LogSource::kStdout, 1, std::string(gp::kMaxLogDataBytes, 'y')});
  // The host reads nothing: 4 MiB of output against a 1 MiB queue.
  const int logs = static_cast<int>((size_t{4} << 20) / log.size());
  for (int i = 0; i < logs; ++i) channel.send(log, /*droppable=*/true);
  channel.send(gp::encode(gp::Exit{gp::ExitKind::kExited, 0}));
  EXPECT_GT(channel.droppedBytes(), size_t{2} << 20);
  const auto frames = hostReads(channel);
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(frames.back().type, gp::FrameType::kExit);  // kept, and last
  EXPECT_LE((frames.size() - 1) * log.size(), Channel::kMaxQueuedBytes + 2 * log.size());
}

TEST_F(ChannelTest, DecodesFramesFromTheHost) {
  Channel channel = Channel::fromFd(guest_fd_);
  const std::string bytes = gp::encodeStatus() + gp::encode(gp::Shutdown{250});
  ASSERT_EQ(::write(host_fd_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  std::vector<gp::Frame> frames;
  ASSERT_TRUE(channel.onEvents(POLLIN, frames).has_value());
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].type, gp::FrameType::kStatus);
  EXPECT_EQ(gp::decodeShutdown(frames[1].payload)->grace_ms, 250u);
}

TEST_F(ChannelTest, GarbageFromTheHostIsAnError) {
  Channel channel = Channel::fromFd(guest_fd_);
  const std::string junk(16, '\x7e');
  ASSERT_EQ(::write(host_fd_, junk.data(), junk.size()), 16);
  std::vector<gp::Frame> frames;
  auto r = channel.onEvents(POLLIN, frames);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("unknown frame type"), std::string::npos) << r.error();
}

TEST_F(ChannelTest, HostGoneIsADisconnectNotAnError) {
  Channel channel = Channel::fromFd(guest_fd_);
  ::close(host_fd_);
  host_fd_ = ::open("/dev/null", O_RDONLY);  // TearDown closes something
  std::vector<gp::Frame> frames;
  ASSERT_TRUE(channel.onEvents(POLLIN | POLLHUP, frames).has_value());
  EXPECT_FALSE(channel.connected());
  channel.send(gp::encodePing(gp::Ping{2}));  // queued, not written
  EXPECT_FALSE(channel.idle());
}

// The transport is chosen by the VM's virtio devices (a console under QEMU,
// a vsock device under Firecracker), read from sysfs.
TEST(VirtioDevices, FoundByTheirDeviceIdInSysfs) {
  char tmpl[] = "/tmp/vt-init-sysfs-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::filesystem::path root(tmpl);
  const auto device = [&](const std::string& name, const std::string& id) {
    std::filesystem::create_directories(root / "bus/virtio/devices" / name);
    std::ofstream(root / "bus/virtio/devices" / name / "device") << id;
  };
  device("virtio0", "0x0003\n");
  device("virtio1", "0x0002\n");
  device("virtio2", "not hex\n");
  EXPECT_TRUE(hasVirtioDevice(root.string(), kVirtioIdConsole));
  EXPECT_FALSE(hasVirtioDevice(root.string(), kVirtioIdVsock));
  EXPECT_FALSE(hasVirtioDevice(root.string() + "/missing", kVirtioIdConsole));
  device("virtio3", "0x0013\n");
  EXPECT_TRUE(hasVirtioDevice(root.string(), kVirtioIdVsock));
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace plfm::init
