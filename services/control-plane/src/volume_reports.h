// The node agent's volume reports, parsed (docs/specs/runtime/volume-mounts.md, "Agent routes"
// of both contracts): the bodies of POST /v1/nodes/{node_id}/volumes/{volume_id}/status,
// .../snapshots/{snapshot_id} and /v1/nodes/{node_id}/volume-ops/{op_id} as typed values, every
// field checked (ids by their grammar, sha256 and backup ids as 64 lowercase hex, taken_at as
// RFC 3339 UTC with a real date, reasons at most 512 printable ASCII bytes, each state or kind
// with only its own fields). Pure, so the request fuzzer runs them without a database;
// api_agent_volumes.cc applies them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "plfm/core/json.h"
#include "plfm/core/result.h"

namespace plfm::cp {

inline constexpr int64_t kMaxVolumeBytes = int64_t{16} << 40;  // 16 TiB, the largest volume
inline constexpr size_t kMaxVolumeReason = 512;
inline constexpr int64_t kMaxVolumeOpMs = 86'400'000;  // a day

// POST /v1/nodes/{node_id}/volumes/{volume_id}/status
struct VolumeReport {
  std::string state;  // ready | failed | deleted
  int64_t size_bytes = 0;
  std::string reason;  // for failed only
};
[[nodiscard]] Result<VolumeReport> parseVolumeReport(const json::Json& body);

// POST /v1/nodes/{node_id}/volumes/{volume_id}/snapshots/{snapshot_id}
struct SnapshotReport {
  std::string state;  // taken | failed | backed_up | expired
  // taken
  std::string origin;  // api | schedule
  std::string method;  // reflink | blockdev-backup | copy
  bool consistent = false;
  int64_t freeze_ms = 0;  // -1: no guest held the volume
  int64_t size_bytes = 0;
  std::string sha256;
  std::string taken_at;
  // failed
  std::string reason;
  // backed_up
  std::string backup_id;
  int64_t bytes_added = 0;
  int64_t duration_ms = 0;
  // expired: what is gone now
  bool local = false;
  bool backup = false;
};
[[nodiscard]] Result<SnapshotReport> parseSnapshotReport(const json::Json& body);

// POST /v1/nodes/{node_id}/volume-ops/{op_id}
struct OpReport {
  std::string kind;  // restore | verify
  std::string volume_id;
  std::string snapshot_id;
  bool ok = false;
  std::string reason;
  std::string sha256;       // restore: of the restored file; empty when it failed first
  int64_t duration_ms = 0;  // verify
};
[[nodiscard]] Result<OpReport> parseOpReport(const json::Json& body);

// "2026-12-06T10:00:00Z", with at most 9 digits of fraction; a real date and time of day (no
// leap second) within years 2000..9999.
[[nodiscard]] bool isRfc3339Utc(std::string_view s);
// At most 512 printable ASCII bytes (spaces included).
[[nodiscard]] bool isVolumeReason(std::string_view s);

}  // namespace plfm::cp
