// Typed views of the describe answers, GET /v1/instances/{instance_id} and
// GET /v1/releases/{release_id} (docs/specs/api/v1.md), parsed once from the
// API's JSON so that `vt instances get` and `vt releases get`
// (commands_describe.cc) render only typed values. Parsing is lenient the way
// a client of a newer server must be: a missing or null field is empty (or
// nullopt), and unknown fields are ignored.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "plfm/core/result.h"
#include "plfm/manifest/manifest.h"

namespace plfm::vt {

struct InstanceView {
  std::string id, process_type, env_id, release_id, deploy_id, node_id, address;
  std::string desired_state, current_state, reason;
  std::string phase_since, not_before, created_at;  // RFC 3339, or "" when null
  bool lost = false;
  std::optional<int64_t> generation, restarts, exit_code, vcpus, memory_mb;
  std::vector<std::pair<std::string, int64_t>> timings;  // in name order
};

struct InstanceEventView {
  std::string occurred_at, event_type, phase, reason;
  std::optional<int64_t> generation;
};

struct CheckResultView {
  std::string status, reason, at;
  std::optional<int64_t> generation;
};

struct LogLineView {
  std::string ts, stream, line;
};

struct InstanceDetailView {
  InstanceView instance;
  std::vector<InstanceEventView> events;  // oldest first
  std::optional<CheckResultView> last_check;
  std::vector<manifest::Check> checks;
  std::vector<LogLineView> log_lines;
  std::string logs_unavailable;  // why there are no lines, or ""
};

struct ReleaseEnvView {
  std::string name;
  bool current = false;
  int64_t instances = 0;
  std::string deploy_status;  // "" when no deploy of the release is current there
};

struct ReleaseView {
  std::string id, app_id, image_ref, image_digest, created_at;
  std::vector<ReleaseEnvView> envs;
  // The canonical manifest; nullopt with `manifest_error` when this vt
  // cannot read it (a newer server's fields).
  std::optional<manifest::Manifest> manifest;
  std::string manifest_error;
};

// Errors only when `j` is not an object.
[[nodiscard]] Result<InstanceDetailView> parseInstanceDetail(const nlohmann::json& j);
[[nodiscard]] Result<ReleaseView> parseReleaseDetail(const nlohmann::json& j);

}  // namespace plfm::vt
