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
//
// Key rotation (mesh.md, "Contract for key rotation", "Agent"): two slots,
// the interfaces `mesh.interface` on `port` and `interface2` on `port` + 1;
// the active one is the slot whose port is the plan's `self.listen_port`.
// When the plan asks for a rotation the member stages a new key on the
// other slot (STATE/mesh/next.key, STATE/mesh/rotation.json), reports it,
// moves each peer's route once that peer has shaken hands on the new
// interface (watched from the report on: a peer may switch before this
// node's own plan says the key is published) or after the settle time,
// reports the commit, and deletes the
// old interface one reconcile period after the key became current.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "netdev/mesh.h"
#include "netdev/mesh_rotation.h"
#include "plfm/core/metrics.h"

namespace plfm::agent {

// The control plane's side of a rotation: POST /v1/nodes/{id}/mesh-key
// with phase "next" (the staged key and its port) and phase "current" (the
// commit). Only public keys cross it. Unset (a plan file, no control
// plane): a rotation stages its key and waits.
struct MeshKeyReporter {
  std::function<Result<void>(const netdev::WgKey& public_key, uint16_t listen_port)> staged;
  std::function<Result<void>(const netdev::WgKey& public_key)> current;
};

struct MeshMemberOptions {
  netdev::MeshOptions mesh;  // slot 0's interface, STATE, the wg, wireguard-go and ip binaries
  std::string interface2;    // slot 1's interface; empty: defaultMeshInterface2(slot 0's)
  uint16_t port = netdev::kDefaultMeshPort;  // slot 0's port (--mesh-port); slot 1: + 1
  std::chrono::seconds reconcile_every{30};
  // A rotation moves the routes of peers that have not shaken hands on the
  // new interface after this long (--mesh-rotation-settle-ms); it checks
  // for handshakes every `handshake_poll`.
  std::chrono::milliseconds rotation_settle{2000};
  std::chrono::milliseconds handshake_poll{20};
  // Host-name endpoints to addresses (getaddrinfo; tests pass a fake).
  netdev::EndpointResolver resolve = netdev::resolveEndpoint;
  MeshKeyReporter report;
  // Unix seconds, for retire_after (tests pass a fake); empty: the system clock.
  std::function<int64_t()> now_unix;
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
  // The rotation running (nullopt: none), for tests and `mesh status`.
  [[nodiscard]] std::optional<netdev::MeshRotation> rotation() const;
  // The interface that carries the routes now.
  [[nodiscard]] std::string activeInterface() const;

 private:
  void loop();
  // One round: apply when `changed`, else reconcile, and the rotation's next
  // step; false when something failed (the next round comes after
  // kRetryAfterFailure, not a full period).
  bool round(const netdev::MeshPlan& plan, bool changed);
  // The slot plan's own part of a round without a rotation (as before one).
  bool applyActive(netdev::Mesh& mesh, const netdev::MeshPlan& plan, bool changed);
  // The rotation's steps (mesh_member_rotation.cc).
  bool rotationRound(const netdev::MeshPlan& plan, int active, bool changed);
  Result<void> stage(const netdev::MeshPlan& plan, int active);
  Result<void> moveRoutes(const netdev::MeshPlan& plan, netdev::Mesh& next,
                          const std::set<std::string>& moved);
  // While a reported key waits for this node's plan to say it is published:
  // moves the route of each peer that has already shaken hands on the new
  // interface (it has switched, so the old key no longer reaches it).
  void watchHandshakes(const netdev::MeshPlan& plan);
  Result<void> commit();
  Result<void> retire();
  // The member's view of a slot: its interface, and for the slot a rotation
  // stages a key on, that key file and port.
  netdev::Mesh slot(int index, bool staged) const;
  int slotOf(uint16_t listen_port) const;
  int64_t nowUnix() const;
  void countRotation(const char* result);
  void setRotation(std::optional<netdev::MeshRotation> r);
  static constexpr std::chrono::seconds kRetryAfterFailure{5};

  MeshMemberOptions options_;
  metrics::Registry& metrics_;
  netdev::CommandRunner run_;
  std::string interfaces_[2];
  uint16_t ports_[2] = {0, 0};
  netdev::Mesh mesh_;  // slot 0, for what happens outside the thread (stop, totals)
  // The rotation (read by the thread; rotation() copies it under mu_).
  std::optional<netdev::MeshRotation> rotation_;  // guarded by mu_
  bool staged_reported_ = false;                  // the thread's: this run reported the staged key
  bool current_reported_ = false;                 // the thread's: this run reported the commit
  bool rotation_refused_logged_ = false;          // the thread's
  // The thread's: until when a reported staged key is watched for early
  // handshakes (every handshake_poll), and the peers moved by that watch.
  std::chrono::steady_clock::time_point watch_until_;
  std::set<std::string> watch_moved_;
  static constexpr std::chrono::seconds kStagedWatch{30};
  int active_ = 0;  // guarded by mu_: the active slot
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
