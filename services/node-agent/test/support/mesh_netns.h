// Helpers for the mesh in network namespaces (root), shared by
// test/netdev/mesh_netns_test.cc and bench/mesh_bench.cc: commands, the
// wireguard-go of an interface, running code inside a namespace, and node
// keys on disk.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sodium.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "netdev/mesh.h"
#include "plfm/core/process.h"
#include "plfm/core/unique_fd.h"

namespace plfm::netdev::testing {

// Names two simulated hosts a and b for one run: namespaces
// `plfm-<kind><pid>-a|b`, mesh interfaces `<kind><pid>a|b` (unique on the
// machine: wireguard-go's socket is per name), underlay addresses
// `<underlay64>a|b` ("fd00:5c::" gives fd00:5c::a), node numbers 1 and 2.
template <typename Host>
void nameTwoHosts(Host& a, Host& b, const std::string& kind, const std::string& underlay64) {
  const std::string tag = kind + std::to_string(::getpid() % 100000);
  a.ns = "plfm-" + tag + "-a";
  b.ns = "plfm-" + tag + "-b";
  a.wg = tag + "a";
  b.wg = tag + "b";
  a.underlay = underlay64 + "a";
  b.underlay = underlay64 + "b";
  a.number = 1;
  b.number = 2;
}

inline Result<std::string> sh(const std::vector<std::string>& argv) {
  return realCommandRunner()(argv);
}

// The wireguard-go serving `name` (its command line is "wireguard-go\0NAME\0").
inline std::vector<pid_t> wireguardGo(const std::string& name) {
  return processesMentioning(std::string("wireguard-go") + '\0' + name + '\0');
}

inline bool haveTools(const std::vector<std::string>& tools) {
  for (const auto& tool : tools) {
    if (!sh({"sh", "-c", "command -v " + tool})) return false;
  }
  return true;
}

// Runs `fn` with this thread in the named network namespace: the commands
// Mesh spawns inherit it, and its if_nametoindex looks there.
template <class F>
auto inNs(const std::string& ns, F fn) {
  UniqueFd home(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  UniqueFd there(::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC));
  if (!home || !there || ::setns(there.get(), CLONE_NEWNET) != 0) std::abort();
  auto r = fn();
  if (::setns(home.get(), CLONE_NEWNET) != 0) std::abort();
  return r;
}

// A fresh private key in DIR/wireguard.key (sodium_init() first); its public key.
inline Result<WgKey> randomKeyFile(const std::string& dir) {
  std::array<uint8_t, 32> sk{};
  randombytes_buf(sk.data(), sk.size());
  const WgKey priv = WgKey::fromBytes(sk);
  sodium_memzero(sk.data(), sk.size());
  PLFM_TRY(writeFileAtomic(dir + "/wireguard.key", priv.base64() + "\n", 0600));
  return publicKeyOf(priv);
}

}  // namespace plfm::netdev::testing
