// Typed exec-session frames of the host channel (docs/specs/runtime/
// host-channel.md §Exec; the design is docs/specs/runtime/exec-sessions.md).
// Each message encodes to a whole frame on its exec stream and decodes from a
// Frame's payload with the same rules, so whatever decodes is something the
// receiver can act on: argv[0] non-empty, an absolute workdir, a window in
// range, a signal 1..64, an exit code that matches its kind.
//
//   auto frame = gp::encode(gp::ExecOpen{.argv = {"sh"}, .tty = true}, stream);
//   auto open = gp::decodeExecOpen(frame_from_decoder.payload);
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/guest_proto/constants.h"
#include "plfm/guest_proto/error.h"

namespace plfm::guest_proto {

struct ExecOpen {
  std::vector<std::string> argv;       // argv[0] is PATH-searched in the resulting env
  std::vector<std::string> env;        // "KEY=VALUE" overrides of the workload env
  std::optional<std::string> user;     // "UID", "UID:GID" or a passwd name
  std::optional<std::string> workdir;  // absolute; default the workload's
  bool tty = false;
  uint16_t rows = kDefaultExecRows;  // with tty only
  uint16_t cols = kDefaultExecCols;
  uint32_t window = kExecInitialWindow;  // output credit granted to the guest
  uint32_t timeout_ms = 0;               // 0: none

  bool operator==(const ExecOpen&) const = default;
};

struct ExecData {
  ExecFd fd = ExecFd::kStdin;
  std::string data;  // 1..kMaxExecDataBytes bytes

  bool operator==(const ExecData&) const = default;
};

struct ExecResize {
  uint16_t rows = kDefaultExecRows;
  uint16_t cols = kDefaultExecCols;

  bool operator==(const ExecResize&) const = default;
};

struct ExecSignal {
  int32_t signal = 0;  // 1..kMaxSignal

  bool operator==(const ExecSignal&) const = default;
};

struct ExecExit {
  ExecExitKind kind = ExecExitKind::kExited;
  int32_t code = 0;     // exit status, signal number, or not_started's code
  std::string message;  // not_started only (required there)

  // The status `vt exec` exits with: code, or 128 + signal.
  [[nodiscard]] int status() const;

  bool operator==(const ExecExit&) const = default;
};

struct ExecClose {
  ExecCloseKind kind = ExecCloseKind::kStdinEof;

  bool operator==(const ExecClose&) const = default;
};

struct ExecWindow {
  uint32_t increment = 0;  // 1..kMaxExecCredit

  bool operator==(const ExecWindow&) const = default;
};

[[nodiscard]] Result<void> validateExecOpen(const ExecOpen& open);

// Whole frames on exec stream `stream` (kFirstExecStream..kLastExecStream).
// The Result ones fail when the message breaks the §Exec rules.
[[nodiscard]] Result<std::string> encode(const ExecOpen& open, uint16_t stream);
[[nodiscard]] Result<std::string> encode(const ExecData& data, uint16_t stream);
[[nodiscard]] Result<std::string> encode(const ExecResize& resize, uint16_t stream);
[[nodiscard]] Result<std::string> encode(const ExecSignal& signal, uint16_t stream);
[[nodiscard]] Result<std::string> encode(const ExecExit& exit, uint16_t stream);
[[nodiscard]] Result<std::string> encode(const ExecClose& close, uint16_t stream);
[[nodiscard]] Result<std::string> encode(const ExecWindow& window, uint16_t stream);

[[nodiscard]] Result<ExecOpen> decodeExecOpen(std::string_view payload);
[[nodiscard]] Result<ExecData> decodeExecData(std::string_view payload);
[[nodiscard]] Result<ExecResize> decodeExecResize(std::string_view payload);
[[nodiscard]] Result<ExecSignal> decodeExecSignal(std::string_view payload);
[[nodiscard]] Result<ExecExit> decodeExecExit(std::string_view payload);
[[nodiscard]] Result<ExecClose> decodeExecClose(std::string_view payload);
[[nodiscard]] Result<ExecWindow> decodeExecWindow(std::string_view payload);

}  // namespace plfm::guest_proto
