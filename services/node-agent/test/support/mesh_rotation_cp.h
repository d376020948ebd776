// A control plane's part of a mesh key rotation, in memory, for the netns
// test and bench/mesh_bench (mesh.md, "Contract for key rotation"): host a
// rotates; each POST .../mesh-key (a MeshKeyReporter call) becomes a new plan
// for both hosts' MeshMembers at once, as the long-poll delivers one version
// to every agent. `Host` has ns, wg, state (a TempDir), number, underlay and
// public_key.
//
//   FakeRotationControlPlane<Host> cp(a, b);
//   cp.start(metrics, 2s);   // a MeshMember per host, in its namespace; plan 1
//   cp.requestRotation();    // then watch cp.key() and cp.memberA().rotation()
#pragma once

#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

#include "agent/mesh_member.h"
#include "support/mesh_netns.h"
#include "support/mesh_sections.h"

namespace plfm::netdev::testing {

template <class Host>
class FakeRotationControlPlane {
 public:
  FakeRotationControlPlane(const Host& a, const Host& b) : a_(a), b_(b), key_(a.public_key) {}

  ~FakeRotationControlPlane() { stop(); }
  FakeRotationControlPlane(const FakeRotationControlPlane&) = delete;
  FakeRotationControlPlane& operator=(const FakeRotationControlPlane&) = delete;

  // Starts a MeshMember per host inside its namespace (its thread, and what
  // it spawns, stay there) and publishes the first plan.
  void start(metrics::Registry& metrics, std::chrono::seconds reconcile_every) {
    const auto member = [&](const Host& h, agent::MeshKeyReporter report) {
      agent::MeshMemberOptions o;
      o.mesh.interface = h.wg;
      o.mesh.state_dir = h.state.path();
      o.reconcile_every = reconcile_every;
      o.report = std::move(report);
      return inNs(h.ns, [&] {
        auto m = std::make_unique<agent::MeshMember>(o, metrics);
        m->start();
        return m;
      });
    };
    member_a_ = member(a_, reporter());
    member_b_ = member(b_, {});
    publish();
  }
  // Stops both members and deletes their interfaces.
  void stop() {
    for (auto* m : {&member_a_, &member_b_}) {
      if (*m) (*m)->stop(true);
      m->reset();
    }
  }
  agent::MeshMember& memberA() { return *member_a_; }
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
  std::unique_ptr<agent::MeshMember> member_a_;
  std::unique_ptr<agent::MeshMember> member_b_;
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
