// The agent's part in the mesh (docs/specs/networking/mesh.md, "The agent's
// mesh"): it takes the NodePlan's `mesh` section from every plan, applies it
// when its version changes, and reconciles the interface against the last
// plan every `reconcile_every` and at start (from STATE/mesh/plan.json, so a
// restarted agent heals its mesh before the control plane answers). All work
// happens on its own thread: a slow `wg` never holds up the plan loop.
// Failures are logged and counted, never fatal; the next round, within 5 s,
// retries.
//
//   MeshMember mesh(options, metrics);
//   mesh.start();
//   mesh.observe(plan.mesh);   // each plan (a null section: an older control plane)
//   mesh.stop(false);          // the interface outlives the agent unless told
//
// A node with no peers does not bring the interface up (a one-node cluster
// needs none); one it finds already up is kept in step either way.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "netdev/mesh.h"
#include "plfm/core/metrics.h"

namespace plfm::agent {

struct MeshMemberOptions {
  netdev::MeshOptions mesh;  // interface, STATE, the wg, wireguard-go and ip binaries
  std::chrono::seconds reconcile_every{30};
  // Host-name endpoints to addresses (getaddrinfo; tests pass a fake).
  netdev::EndpointResolver resolve = netdev::resolveEndpoint;
};

class MeshMember {
 public:
  MeshMember(MeshMemberOptions options, metrics::Registry& metrics,
             netdev::CommandRunner run = netdev::realCommandRunner());
  ~MeshMember();
  MeshMember(const MeshMember&) = delete;
  MeshMember& operator=(const MeshMember&) = delete;

  void start();
  // Cheap when the section's version is the one seen last.
  void observe(const nlohmann::json& section);
  // Ends the thread; `remove_interface` deletes the interface too
  // (--stop-instances-on-exit).
  void stop(bool remove_interface);

  // The heartbeat's `mesh` figures from `wg show dump` now; nullopt when
  // the interface does not exist (or wg fails: logged, the next beat retries).
  [[nodiscard]] std::optional<netdev::MeshTotals> totals();

  // The version last applied or found in sync (-1: none yet), for tests.
  [[nodiscard]] int64_t appliedVersion() const;

 private:
  void loop();
  // One round: apply when `changed`, else reconcile; false when it failed
  // (the next one comes after kRetryAfterFailure, not a full period).
  bool round(const netdev::MeshPlan& plan, bool changed);
  static constexpr std::chrono::seconds kRetryAfterFailure{5};

  MeshMemberOptions options_;
  metrics::Registry& metrics_;
  netdev::Mesh mesh_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<netdev::MeshPlan> desired_;  // guarded by mu_
  bool changed_ = false;                     // guarded by mu_: desired_ not applied yet
  bool stopping_ = false;                    // guarded by mu_
  std::optional<int64_t> seen_version_;      // guarded by mu_: the last section observed
  int64_t applied_version_ = -1;             // guarded by mu_
  std::thread thread_;
};

}  // namespace plfm::agent
