// The records the volume ops executor keeps (volume_ops.h): one JSON file
// per snapshot (STATE/snapshots/<snapshot_id>.json) and per restore or
// verify (STATE/volume-ops/<op_id>.json), 0600, holding what it needs to
// know after a restart and the reports the control plane has not taken yet.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::agent {

struct OutgoingReport {
  nlohmann::json report;  // a SnapshotReport or VolumeOpReport
  bool delivered = false;
};
// One snapshot this agent took (or tried to).
struct SnapshotRecord {
  std::string snapshot_id;
  std::string volume_id;
  std::string origin;  // "api" | "schedule"
  std::string state;   // "taken" | "failed" | "backed_up"
  std::string path;    // the snapshot file (while `local`)
  bool local = false;
  std::string sha256;
  int64_t taken_at_ms = 0;  // the consistent point, Unix ms
  std::string backup_id;
  bool backup_expired = false;
  int backup_attempts = 0;
  int64_t backup_attempt_ms = 0;
  std::vector<OutgoingReport> outbox;
  [[nodiscard]] nlohmann::json toJson() const;
  [[nodiscard]] static Result<SnapshotRecord> fromJson(const nlohmann::json& j);
};
// One restore or verify (also a scheduled drill).
struct OpRecord {
  std::string op_id;
  std::string kind;  // "restore" | "verify"
  std::string volume_id;
  bool ok = false;
  std::string reason;
  int64_t finished_ms = 0;
  std::vector<OutgoingReport> outbox;
  [[nodiscard]] nlohmann::json toJson() const;
  [[nodiscard]] static Result<OpRecord> fromJson(const nlohmann::json& j);
};

// Every <dir>/*.json record that parses, by its id; the others are logged
// and left alone.
void loadSnapshotRecords(const std::string& dir, std::map<std::string, SnapshotRecord>& into);
void loadOpRecords(const std::string& dir, std::map<std::string, OpRecord>& into);
// Writes <dir>/<id>.json atomically (0600); failures are logged.
void saveRecord(const std::string& dir, const std::string& id, const nlohmann::json& record);

}  // namespace plfm::agent
