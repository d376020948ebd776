// The `vt.toml` app manifest: parsing, validation and the canonical JSON form.
//
// A manifest says what to run from an OCI image: the processes and their
// resources, the services and routes the edge exposes, env vars, secret
// names, volumes, health checks and the deploy policy. The CLI parses it with
// parse()/parseFile() and shows every Diagnostic at once; the control plane
// stores Manifest::toJson() in the release; the node agent reads it back with
// fromJson(). The user-facing reference is docs/specs/manifest/manifest-schema.md
// and the JSON contract is api/schemas/manifest.json.
//
//   auto r = plfm::manifest::parseFile("vt.toml");
//   if (!r.ok()) {
//     for (const auto& d : r.diagnostics) std::cerr << d.format() << "\n";
//     return 1;
//   }
//   nlohmann::json snapshot = r.manifest->toJson();
//
// The parser never throws and never aborts, whatever the bytes: it is fuzzed
// (test/manifest_fuzz.cc).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::manifest {

// Version of the JSON form (the "schema_version" field). Bumped only for
// changes an older reader cannot ignore.
inline constexpr int kSchemaVersion = 1;

// One problem found in a manifest, located in its source text.
struct Diagnostic {
  std::string file;
  int line = 0;         // 1-based; 0 when unknown
  int column = 0;       // 1-based; 0 when unknown
  std::string path;     // "processes.web.resources.memory_mb" ("" for syntax errors)
  std::string message;  // "expected an integer from 64 to 65536, got \"lots\""
  std::string hint;     // "did you mean `memory_mb`?" or ""

  // "vt.toml:7:13: processes.web.resources.memory_mb: expected ... (did you mean ...)".
  // The position is left out when unknown, the path when empty.
  [[nodiscard]] std::string format() const;
};

struct Resources {
  int vcpus = 1;        // soft: CPU is oversubscribed
  int memory_mb = 256;  // hard cap
};

struct Process {
  std::string name;
  std::vector<std::string> command;  // empty: the image's entrypoint
  std::vector<std::string> args;     // empty: the image's cmd
  Resources resources;
};

struct Route {
  std::string hostname;  // lower case; "*.example.com" for a wildcard
  int port = 443;
  std::string proxy_protocol = "none";  // "none" or "v2"
};

struct Service {
  std::string process;
  int internal_port = 0;
  std::string protocol = "tls-passthrough";  // or "tcp"
  std::vector<Route> routes;
};

struct Volume {
  std::string name;
  std::string mount;  // absolute path in the guest
  std::string process;
  std::uint64_t size_bytes = 0;
  // The snapshot-and-backup policy (backup_every, backup_keep): seconds
  // between scheduled snapshots, 0 for "off"; backups the repository keeps.
  // The defaults are volume_rules.h's kDefaultBackupEverySeconds/Keep.
  std::int64_t backup_every_seconds = 900;
  int backup_keep = 96;
};

struct Check {
  std::string process;
  std::string type;                  // "tcp", "http" or "exec"
  int port = 0;                      // tcp and http; 0 for exec
  std::string path;                  // http only ("/" by default)
  std::vector<std::string> command;  // exec only
  std::int64_t interval_ms = 10000;
  std::int64_t timeout_ms = 2000;
  std::int64_t grace_ms = 5000;
  // Consecutive failures (past the grace) that make the instance unhealthy,
  // which the scheduler then restarts or replaces. In the JSON form only
  // when it is not the default.
  int failure_threshold = 3;

  // Its element of the canonical "checks" array (node plans reuse it).
  [[nodiscard]] nlohmann::json toJson() const;
};

struct DeployPolicy {
  std::string strategy = "rolling";  // or "immediate"
  int max_surge = 1;
  int max_unavailable = 0;
  // A deploy that makes no progress (no new instance becomes healthy) for
  // this long fails, and the previous release keeps serving. In the JSON
  // form only when it is not the default.
  std::int64_t progress_deadline_ms = 300'000;
  // How long an instance that leaves service may keep its open connections
  // before it is stopped (docs/specs/scheduler/drain.md). In the JSON form
  // only when it is not the default.
  std::int64_t drain_timeout_ms = 30'000;
  // A failed deploy redeploys the env's last successful release; when off,
  // the failed instances stay for inspection and nothing more is drained.
  // In the JSON form only when it is not the default.
  bool auto_rollback = true;
};

struct Manifest {
  std::string app;
  std::string image;
  std::vector<Process> processes;  // sorted by name
  std::vector<Service> services;   // in file order
  std::vector<Volume> volumes;     // in file order
  std::vector<Check> checks;       // sorted by process
  std::map<std::string, std::string> env;
  std::vector<std::string> secrets;  // names only, sorted
  bool secrets_export_env = false;   // also export secret values as env vars
  DeployPolicy deploy;

  // The canonical JSON form, valid per api/schemas/manifest.json. Equal
  // manifests give equal JSON (objects sort their keys when dumped).
  [[nodiscard]] nlohmann::json toJson() const;

  // The process named `name`, or nullptr.
  [[nodiscard]] const Process* findProcess(std::string_view name) const;
};

struct ParseResult {
  std::optional<Manifest> manifest;     // set exactly when there are no diagnostics
  std::vector<Diagnostic> diagnostics;  // every problem found, in source order

  [[nodiscard]] bool ok() const { return manifest.has_value() && diagnostics.empty(); }
};

// Parses and validates manifest text. `file_name` only labels diagnostics.
[[nodiscard]] ParseResult parse(std::string_view text, std::string_view file_name = "vt.toml");

// Reads and parses a file. An unreadable or oversized file gives one Diagnostic.
[[nodiscard]] ParseResult parseFile(const std::filesystem::path& path);

// Checks a Manifest built in code (or read from JSON) against every rule the
// parser applies. Diagnostics carry paths but no positions.
[[nodiscard]] std::vector<Diagnostic> validate(const Manifest& manifest);

// The inverse of Manifest::toJson (the agent reads a release's snapshot back;
// the control plane reads the manifest of POST /v1/apps/{app}/releases).
// Rejects unknown fields, wrong types and anything validate() rejects; the
// error's "field" detail names the first offending path. app, image,
// processes and the fields that name things are required; any other field
// may be left out and takes its vt.toml default.
[[nodiscard]] Result<Manifest> fromJson(const nlohmann::json& j);

}  // namespace plfm::manifest
