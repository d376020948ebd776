// A stand-in for the firecracker binary, for the driver's confinement test
// (vmm_confinement_test): it serves the API socket the way Firecracker does
// and, like Firecracker, opens what the pre-boot calls name (the kernel,
// initramfs and drives by path, the tap through /dev/net/tun by name, the
// vsock socket by binding it), answering 400 with the errno when it cannot.
// GET /probe?path=P reports whether it can open P for reading, and
// GET /probe-create?path=P whether it can create a file there: the test asks
// it for paths outside what it was given. GET /requests lists every other
// request it served ({method, path, body}), so the test can check each
// against Firecracker's published API (firecracker_contract.h).
//
//   fake_firecracker --api-sock PATH --id ID
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "plfm/http/http.h"

namespace {

using nlohmann::json;

plfm::http::Response answer(int err, const std::string& what) {
  if (err == 0) return plfm::http::Response{204, {}, ""};
  return plfm::http::Response::json(
      400, json{{"fault_message", what + ": " + std::strerror(err)}}.dump());
}

int openErr(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0600);
  if (fd < 0) return errno;
  ::close(fd);
  return 0;
}

int attachTap(const std::string& name) {
  const int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) return errno;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  const int rc = ::ioctl(fd, TUNSETIFF, &ifr);
  const int err = errno;
  ::close(fd);
  return rc == 0 ? 0 : err;
}

// A bound, not listening, unix socket at path: its fd, or -errno.
int boundUnix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return -ENAMETOOLONG;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    ::close(fd);
    return -err;
  }
  return fd;
}

int bindUnix(const std::string& path) {
  const int fd = boundUnix(path);
  return fd < 0 ? -fd : 0;  // kept open, as Firecracker keeps its vsock listener
}

std::mutex requests_mu;
json requests = json::array();  // guarded by requests_mu

plfm::http::Response handle(const plfm::http::Request& req) {
  if (req.method == "GET" && req.path == "/requests") {
    std::lock_guard lock(requests_mu);
    return plfm::http::Response::json(200, requests.dump());
  }
  if (req.method == "GET" && req.path.starts_with("/probe")) {
    const std::string path(req.queryParam("path").value_or(""));
    int err = 0;
    if (req.path == "/probe") err = openErr(path, O_RDONLY);
    if (req.path == "/probe-create") err = openErr(path, O_WRONLY | O_CREAT | O_EXCL);
    return plfm::http::Response::json(200, json{{"errno", err}}.dump());
  }
  {
    std::lock_guard lock(requests_mu);
    requests.push_back({{"method", req.method}, {"path", req.path}, {"body", req.body}});
  }
  const json body = json::parse(req.body, nullptr, false);
  if (!body.is_object()) return answer(EINVAL, "body");
  if (req.path == "/boot-source") {
    int err = openErr(body.value("kernel_image_path", ""), O_RDONLY);
    if (err == 0 && body.contains("initrd_path")) {
      err = openErr(body.value("initrd_path", ""), O_RDONLY);
    }
    return answer(err, "boot source");
  }
  if (req.path.starts_with("/drives/")) {
    const bool ro = body.value("is_read_only", false);
    return answer(openErr(body.value("path_on_host", ""), ro ? O_RDONLY : O_RDWR), "drive");
  }
  if (req.path.starts_with("/network-interfaces/")) {
    return answer(attachTap(body.value("host_dev_name", "")), "tap");
  }
  if (req.path == "/vsock") return answer(bindUnix(body.value("uds_path", "")), "vsock");
  return answer(0, "");
}

}  // namespace

int main(int argc, char** argv) {
  std::string api;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--api-sock") api = argv[i + 1];
  }
  if (api.empty()) {
    std::cerr << "usage: fake_firecracker --api-sock PATH --id ID\n";
    return 2;
  }
  // Firecracker binds its API socket a moment before it listens, and a
  // connect in between is refused. The fake holds that window open for
  // 100 ms, so the driver's wait for the API is tested on every run.
  if (const int early = boundUnix(api); early >= 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ::close(early);
    ::unlink(api.c_str());
  }
  plfm::http::ServerOptions o;
  o.listen = {"unix:" + api};
  plfm::http::Server server(o, [](plfm::http::Request& req) { return handle(req); });
  if (auto r = server.start(); !r) {
    std::cerr << "fake_firecracker: " << r.error().message() << "\n";
    return 1;
  }
  std::mutex mu;
  std::condition_variable cv;
  std::unique_lock lock(mu);
  cv.wait(lock, [] { return false; });  // until killed
  return 0;
}
