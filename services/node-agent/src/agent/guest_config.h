// guestConfig() turns a WorkloadSpec and its image's config into the CONFIG
// frame vt-init acts on: argv (OCI semantics: a spec command replaces the
// entrypoint and drops the image's cmd; spec args replace the cmd), env (the
// image's, then the spec's, then the platform's PLFM_* variables), workdir,
// uid/gid/groups resolved from the image's /etc/passwd and /etc/group, the
// hostname and the network. Pure, so it is unit-tested without a VM.
#pragma once

#include <string>
#include <string_view>

#include "agent/instance_record.h"
#include "image/image_config.h"
#include "plfm/core/result.h"
#include "plfm/guest_proto/messages.h"

namespace plfm::agent {

struct UserDb {
  std::string passwd;  // /etc/passwd of the image ("" when absent)
  std::string group;   // /etc/group
};

struct ResolvedUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;
};

// "", "root", "1000", "1000:1000", "app", "app:staff", "app:1000".
[[nodiscard]] Result<ResolvedUser> resolveUser(std::string_view user, const UserDb& db);

struct GuestConfigInput {
  const Workload* workload = nullptr;
  const image::ImageConfig* image = nullptr;
  UserDb users;
  bool with_network = true;
  std::string ipv4;  // the guest's private IPv4 (/32, gateway 169.254.0.1); empty: none
  // The node's DNS responder (its host address), CONFIG's only nameserver
  // when set (mesh.md, "Internal names"); empty: none sent.
  std::string nameserver;
  uint32_t shutdown_grace_ms = 10'000;
  std::string rootfs_device = "/dev/vda";
  std::string scratch_device = "/dev/vdb";
};

[[nodiscard]] Result<guest_proto::Config> guestConfig(const GuestConfigInput& in);

// The drive id and virtio-blk serial of the workload's `index`-th volume,
// "vol-<index>" (volume-mounts.md §NodePlan and WorkloadSpec: a serial holds
// at most 20 bytes, too few for a volume id).
[[nodiscard]] std::string volumeDriveId(size_t index);

}  // namespace plfm::agent
