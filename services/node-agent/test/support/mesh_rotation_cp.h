// A control plane's part of a mesh key rotation, in memory, for the netns
// test and bench/mesh_bench (mesh.md, "Contract for key rotation"): host a
// rotates; each POST .../mesh-key (a MeshKeyReporter call) becomes a new plan
// for both hosts' MeshMembers at once, as the long-poll delivers one version
// to every agent. `Host` has number, underlay and public_key.
#pragma once

#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

#include "agent/mesh_member.h"
#include "support/mesh_sections.h"

namespace plfm::netdev::testing {

template <class Host>
class FakeRotationControlPlane {
 public:
  FakeRotationControlPlane(const Host& a, const Host& b) : a_(a), b_(b), key_(a.public_key) {}

  void attach(agent::MeshMember* a, agent::MeshMember* b) {
    member_a_ = a;
    member_b_ = b;
  }
  agent::MeshKeyReporter reporter() {
    agent::MeshKeyReporter r;
    r.staged = [this](const WgKey& k, uint16_t port) -> Result<void> {
      {
        std::lock_guard lock(mu_);
        next_ = std::pair(k, port);
      }
      publish();
      return ok();
    };
    r.current = [this](const WgKey& k) -> Result<void> {
      {
        std::lock_guard lock(mu_);
        if (!next_ || !(next_->first == k)) return Error(errc::kConflict, "not the staged key");
        key_ = k;
        port_ = next_->second;
        next_.reset();
        rotate_ = false;
      }
      publish();
      return ok();
    };
    return r;
  }
  void requestRotation() {
    {
      std::lock_guard lock(mu_);
      rotate_ = true;
    }
    publish();
  }
  void publish() {
    nlohmann::json a;
    nlohmann::json b;
    {
      std::lock_guard lock(mu_);
      ++version_;
      const std::string endpoint = "[" + a_.underlay + "]:" + std::to_string(port_);
      nlohmann::json peer_a = meshPeer(a_.number, key_.base64(), endpoint);
      if (next_) {
        peer_a["next"] = {{"public_key", next_->first.base64()},
                          {"endpoint", "[" + a_.underlay + "]:" + std::to_string(next_->second)}};
      }
      b = meshSection(version_, b_.number, nlohmann::json::array({peer_a}));
      a = meshSection(version_, a_.number,
                      nlohmann::json::array({meshPeer(b_.number, b_.public_key.base64(),
                                                      "[" + b_.underlay + "]:51820")}),
                      port_);
      a["self"]["public_key"] = key_.base64();
      a["self"]["next_public_key"] =
          next_ ? nlohmann::json(next_->first.base64()) : nlohmann::json(nullptr);
      a["self"]["next_listen_port"] =
          next_ ? nlohmann::json(next_->second) : nlohmann::json(nullptr);
      a["self"]["rotate"] = rotate_;
    }
    member_a_->observe(a);
    member_b_->observe(b);
  }
  WgKey key() {
    std::lock_guard lock(mu_);
    return key_;
  }

 private:
  const Host& a_;
  const Host& b_;
  agent::MeshMember* member_a_ = nullptr;
  agent::MeshMember* member_b_ = nullptr;
  std::mutex mu_;
  int64_t version_ = 0;
  WgKey key_;
  uint16_t port_ = 51820;
  std::optional<std::pair<WgKey, uint16_t>> next_;
  bool rotate_ = false;
};

// "80 packets transmitted, 79 received": the two numbers (-1: unreadable).
inline std::pair<int, int> pingCounts(const std::string& text) {
  int sent = -1;
  int received = -1;
  const size_t at = text.find(" packets transmitted, ");
  if (at != std::string::npos) {
    const size_t start = text.rfind('\n', at);
    sent = std::atoi(text.c_str() + (start == std::string::npos ? 0 : start + 1));
    received = std::atoi(text.c_str() + at + 22);
  }
  return {sent, received};
}

}  // namespace plfm::netdev::testing
