// POST /v1/instances/{instance_id}/exec, parsed (docs/specs/runtime/
// exec-sessions.md, "Control plane"): the command a ticket will start, as a
// typed value that always makes a valid EXEC_OPEN (host-channel.md §Exec).
// The same parser reads the request body and the copy stored with the
// ticket, so what GET /v1/exec sends the agent passed exactly these checks.
//
//   PLFM_ASSIGN_OR_RETURN(ExecCommand cmd, parseExecCommand(body));
//   gp::ExecOpen open = toExecOpen(cmd);  // window = kExecInitialWindow
//
// Pure (no database, no network): unit-tested and fuzzable on its own.
// Errors name the field and never quote argv, user or workdir: they can
// carry secrets.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "plfm/core/json.h"
#include "plfm/core/result.h"
#include "plfm/guest_proto/exec.h"

namespace plfm::cp {

inline constexpr size_t kMaxExecArgs = 256;
inline constexpr size_t kMaxExecArgBytes = 4096;

struct ExecCommand {
  std::vector<std::string> argv;  // 1..kMaxExecArgs entries, each <= kMaxExecArgBytes
  bool tty = false;
  uint16_t rows = guest_proto::kDefaultExecRows;  // set only with tty
  uint16_t cols = guest_proto::kDefaultExecCols;
  std::optional<std::string> user;
  std::optional<std::string> workdir;

  bool operator==(const ExecCommand&) const = default;
};

// `body` is the request's JSON object (unknown fields already refused).
// invalid_field with details.field ("argv", "tty", "rows", "cols", "user",
// "workdir") for anything an EXEC_OPEN could not carry.
[[nodiscard]] Result<ExecCommand> parseExecCommand(const json::Json& body);

// The stored form: parseExecCommand(execCommandJson(c)) == c.
[[nodiscard]] json::Json execCommandJson(const ExecCommand& c);

// The EXEC_OPEN the control plane sends the agent: the command, the output
// window kExecInitialWindow, no env overrides, no timeout.
[[nodiscard]] guest_proto::ExecOpen toExecOpen(const ExecCommand& c);

}  // namespace plfm::cp
