#include "channel.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <utility>

#include "plfm/guest_proto/constants.h"
#include "sys.h"

namespace plfm::init {

namespace gp = guest_proto;

namespace {

// /dev/vportNpM whose sysfs name is "plfm"; QEMU names ports by virtserialport's name=.
std::string findVirtioPort() {
  DIR* dir = ::opendir("/sys/class/virtio-ports");
  if (dir == nullptr) return {};
  std::string found;
  while (dirent* e = ::readdir(dir)) {
    const std::string name = e->d_name;
    if (name.rfind("vport", 0) != 0) continue;
    auto label = readFile("/sys/class/virtio-ports/" + name + "/name");
    if (label && (*label == gp::kVirtioSerialPortName ||
                  *label == std::string(gp::kVirtioSerialPortName) + "\n")) {
      found = "/dev/" + name;
      break;
    }
  }
  ::closedir(dir);
  return found;
}

int vsockListen() {
  const int fd = ::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_ANY;
  addr.svm_port = gp::kVsockPort;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 1) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

bool hasVirtioDevice(const std::string& sys_root, unsigned id) {
  const std::string devices = sys_root + "/bus/virtio/devices";
  DIR* dir = ::opendir(devices.c_str());
  if (dir == nullptr) return false;
  bool found = false;
  while (dirent* e = ::readdir(dir)) {
    const std::string name = e->d_name;
    if (name.empty() || name[0] == '.') continue;
    std::string file = devices;
    file += '/';
    file += name;
    file += "/device";
    auto text = readFile(file);  // "0x0003\n"
    if (!text || text->size() < 3 || text->compare(0, 2, "0x") != 0) continue;
    unsigned value = 0;
    const char* first = text->data() + 2;
    const char* last = text->data() + text->size();
    auto [end, ec] = std::from_chars(first, last, value, 16);
    if (ec != std::errc() || end == first) continue;
    if (value == id) {
      found = true;
      break;
    }
  }
  ::closedir(dir);
  return found;
}

Result<Channel> Channel::open(int timeout_ms, const std::function<void()>& load_vsock) {
  const uint64_t deadline = monotonicMs() + static_cast<uint64_t>(timeout_ms);
  bool vsock_loaded = false;
  while (true) {
    const std::string port = findVirtioPort();
    if (!port.empty() && waitForPath(port, 1000)) {
      const int fd = ::open(port.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
      if (fd < 0) return fail(errnoText("open " + port, errno));
      logLine("host channel: " + port);
      Channel channel(fd, -1);
      // virtio-serial reports POLLHUP while no host is connected.
      pollfd p{fd, POLLIN, 0};
      channel.connected_ = ::poll(&p, 1, 0) >= 0 && (p.revents & POLLHUP) == 0;
      return channel;
    }
    // vsock only where the VM has a vsock device: /dev/vsock exists without
    // any transport, and virtio-serial adds its ports only after the host
    // answers the driver's probe, so under QEMU the port may come a little
    // after the module. Choosing vsock there would never connect.
    const bool vsock_device = hasVirtioDevice("/sys", kVirtioIdVsock);
    if (vsock_device && !vsock_loaded) {
      vsock_loaded = true;
      load_vsock();
    }
    if (vsock_device && ::access("/dev/vsock", F_OK) == 0) {
      const int listen_fd = vsockListen();
      if (listen_fd >= 0) {
        logLine("host channel: vsock port " + std::to_string(gp::kVsockPort));
        Channel channel(-1, listen_fd);
        channel.connected_ = false;
        return channel;
      }
    }
    if (monotonicMs() >= deadline) {
      return fail(hasVirtioDevice("/sys", kVirtioIdConsole)
                      ? "no host channel: the virtio console has no port 'plfm'"
                      : "no host channel (virtio port 'plfm' or a vsock device)");
    }
    ::usleep(20'000);
  }
}

Channel::Channel(Channel&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      listen_fd_(std::exchange(other.listen_fd_, -1)),
      connected_(other.connected_),
      decoder_(std::move(other.decoder_)),
      out_(std::move(other.out_)),
      out_offset_(other.out_offset_),
      queued_bytes_(other.queued_bytes_),
      dropped_bytes_(other.dropped_bytes_) {}

Channel::~Channel() {
  if (fd_ >= 0) ::close(fd_);
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

int Channel::pollFd() const {
  if (connected_) return fd_;
  return listen_fd_;  // vsock: wait for the host to connect; virtio: -1
}

short Channel::pollEvents() const {
  if (!connected_) return POLLIN;
  return static_cast<short>(POLLIN | (idle() ? 0 : POLLOUT));
}

void Channel::send(const std::string& frame, bool droppable) {
  if (droppable && queued_bytes_ + frame.size() > kMaxQueuedBytes) {
    dropped_bytes_ += frame.size();
    return;
  }
  out_.push_back(frame);
  queued_bytes_ += frame.size();
  if (connected_) flushSome();
}

void Channel::flushSome() {
  while (connected_ && !idle()) {
    const std::string& front = out_.front();
    const ssize_t n = ::write(fd_, front.data() + out_offset_, front.size() - out_offset_);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      // EAGAIN: the host reads slower than we write; poll for POLLOUT.
      if (errno != EAGAIN) disconnect();
      return;
    }
    out_offset_ += static_cast<size_t>(n);
    if (out_offset_ == front.size()) {
      queued_bytes_ -= front.size();
      out_.pop_front();
      out_offset_ = 0;
    }
  }
}

void Channel::disconnect() {
  if (connected_) logLine("host channel: no host connected");
  connected_ = false;
  if (listen_fd_ >= 0 && fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  // A reconnecting host starts a fresh stream, in both directions.
  decoder_ = gp::Decoder();
  if (out_offset_ > 0) {
    queued_bytes_ -= out_.front().size();
    out_.pop_front();
    out_offset_ = 0;
  }
}

void Channel::markConnected() {
  connected_ = true;
  flushSome();
}

void Channel::probe() {
  if (connected_ || listen_fd_ >= 0 || fd_ < 0) return;
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, 0) >= 0 && (p.revents & POLLHUP) == 0) markConnected();
}

Result<void> Channel::onEvents(short revents, std::vector<gp::Frame>& frames) {
  if (!connected_) {
    if (listen_fd_ >= 0 && (revents & POLLIN) != 0) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        fd_ = fd;
        markConnected();
      }
    }
    return {};
  }
  if ((revents & POLLOUT) != 0) flushSome();
  if ((revents & (POLLIN | POLLHUP | POLLERR)) == 0) return {};
  char buf[65536];
  while (connected_) {
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {
      disconnect();
      break;
    }
    decoder_.feed(buf, static_cast<size_t>(n));
  }
  while (true) {
    auto frame = decoder_.next();
    if (!frame) return fail("host channel: " + frame.error().toString());
    if (!*frame) break;
    frames.push_back(std::move(**frame));
  }
  return {};
}

void Channel::drain(int timeout_ms) {
  const uint64_t deadline = monotonicMs() + static_cast<uint64_t>(timeout_ms);
  while (!idle()) {
    const uint64_t now = monotonicMs();
    if (now >= deadline) return;
    if (!connected_) {
      probe();
      if (!connected_) ::usleep(20'000);
      continue;
    }
    pollfd p{fd_, POLLOUT, 0};
    ::poll(&p, 1, static_cast<int>(deadline - now));
    flushSome();
  }
}

}  // namespace plfm::init
