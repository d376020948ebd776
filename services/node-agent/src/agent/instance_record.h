// InstanceRecord is everything the agent knows about one instance generation,
// persisted as STATE/instances/<instance_id>.json (written atomically on every
// change), so that a restarted agent picks up exactly where it stopped: which
// phase the instance was in, which VM runs it, which tap and disks it owns, and
// which status report it sent last.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agent/instance_fsm.h"
#include "plfm/core/result.h"
#include "runtime/microvm_runtime.h"

namespace plfm::agent {

// One of WorkloadSpec.volumes (volume-mounts.md §NodePlan and WorkloadSpec),
// checked by checkWorkload: the i-th is attached as drive and serial vol-<i>.
struct WorkloadVolume {
  std::string volume_id;  // "vol_...": names the file STATE/volumes/<volume_id>.ext4
  std::string name;       // "uploads-0", for reasons and logs
  std::string mount;      // absolute path in the guest
  uint64_t size_bytes = 0;

  bool operator==(const WorkloadVolume&) const = default;
};

// The part of a WorkloadSpec (api/schemas/workload-spec.json) the agent acts on.
struct Workload {
  std::string instance_id;
  int generation = 1;
  std::string desired = "run";  // run | drain | stop
  std::string org_id, app_id, env_id, process_type, release_id;
  std::string image_ref;
  std::string image_digest;
  std::vector<std::string> command;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  int vcpus = 1;
  int memory_mb = 256;
  std::string address;  // IPv6 /128
  std::string gateway = "fe80::1";
  int mtu = 1420;
  std::optional<std::string> secrets_version;  // "sv_...", fetched from the node API
  nlohmann::json checks = nlohmann::json::array();
  int64_t restart_not_before_ms = 0;  // unix ms; 0: now
  std::vector<WorkloadVolume> volumes;
  nlohmann::json raw;  // the spec as received

  [[nodiscard]] static Result<Workload> fromJson(const nlohmann::json& spec);
};

struct Timings {
  int64_t image_ms = -1;  // pull + rootfs (cached: ~0)
  int64_t spawn_us = -1;  // plan seen -> VMM start requested: the agent's own overhead
  int64_t start_ms = -1;  // plan seen -> VMM process started
  int64_t boot_ms = -1;   // VMM started -> guest READY
  int64_t hello_ms = -1;  // VMM started -> guest HELLO
  // The guest's boot stages from READY (host-channel.md §READY): its
  // CLOCK_BOOTTIME in ms when the kernel handed over to vt-init, modules were
  // loaded, the early mounts were done, CONFIG arrived, the workload was
  // spawned. -1: not reported.
  int64_t guest_init_ms = -1;
  int64_t guest_modules_ms = -1;
  int64_t guest_mounts_ms = -1;
  int64_t guest_config_ms = -1;
  int64_t guest_ready_ms = -1;
};

struct InstanceRecord {
  Workload workload;
  Phase phase = Phase::kAllocated;
  std::optional<runtime::VmHandle> vm;
  std::string tap;
  std::string run_dir;
  std::string scratch;  // the per-instance writable disk
  std::string rootfs;   // the image's cached ext4 (shared, read-only)
  bool image_acquired = false;
  int64_t report_seq = 0;        // the last status report's seq
  std::string last_reported;     // its phase
  std::optional<int> exit_code;  // the workload's, once known
  std::string reason;            // why it failed or exited
  // The guest's HELLO exec_revision (0: it does not serve exec), kept so an
  // agent that restarts and adopts the VM still knows.
  uint32_t exec_revision = 0;
  // The guest's HELLO volume_revision (0: no online resize or freeze; an
  // extend then waits for the next start), kept for an adopted VM.
  uint32_t volume_revision = 0;
  // The guest's private IPv4 from the node's subnet (mesh.md "Egress"),
  // chosen by the agent, kept so an adopted instance keeps it; empty: none.
  std::string ipv4;
  Timings timings;

  [[nodiscard]] nlohmann::json toJson() const;
  [[nodiscard]] static Result<InstanceRecord> fromJson(const nlohmann::json& j);
};

// "2026-11-26T12:01:40.123456Z" -> unix milliseconds.
[[nodiscard]] Result<int64_t> parseRfc3339Ms(const std::string& text);

// The records of one agent, one file each under `dir`.
class StateStore {
 public:
  explicit StateStore(std::string dir);
  [[nodiscard]] Result<void> save(const InstanceRecord& rec) const;
  [[nodiscard]] Result<void> remove(const std::string& instance_id) const;
  // Every readable record; unreadable ones are logged and moved aside
  // (<id>.json.corrupt) so that they are not retried forever.
  [[nodiscard]] Result<std::vector<InstanceRecord>> loadAll() const;
  // The same, read only: unreadable records are skipped and left in place
  // (`plfm-node-agent leftovers` looks at a stopped agent's records).
  [[nodiscard]] Result<std::vector<InstanceRecord>> peekAll() const;
  [[nodiscard]] const std::string& dir() const { return dir_; }

 private:
  [[nodiscard]] Result<std::vector<InstanceRecord>> readAll(bool move_aside) const;
  std::string dir_;
};

}  // namespace plfm::agent
