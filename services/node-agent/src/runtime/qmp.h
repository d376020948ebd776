// A QEMU Machine Protocol client (docs/interop/qmp-spec in QEMU): JSON objects
// one per line over the VMM's QMP Unix socket. connect() reads the greeting and
// negotiates capabilities; execute() sends one command and returns its
// "return" value, skipping asynchronous events that arrive meanwhile.
//
//   PLFM_ASSIGN_OR_RETURN(auto qmp, Qmp::connect(vm.control_socket, 2s));
//   PLFM_TRY(qmp.execute("system_powerdown"));
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "plfm/core/result.h"
#include "runtime/unix_line_client.h"

namespace plfm::runtime {

class Qmp {
 public:
  [[nodiscard]] static Result<Qmp> connect(const std::string& socket_path,
                                           std::chrono::milliseconds timeout);

  // {"execute": command, "arguments": args}; the "return" member on success,
  // a qmp.<class> error (e.g. qmp.GenericError) with QEMU's description.
  [[nodiscard]] Result<nlohmann::json> execute(
      const std::string& command, const nlohmann::json& arguments = nlohmann::json::object(),
      std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // The same, passing `fd` along with the command (SCM_RIGHTS), for add-fd.
  [[nodiscard]] Result<nlohmann::json> executeWithFd(
      const std::string& command, const nlohmann::json& arguments, int fd,
      std::chrono::milliseconds timeout = std::chrono::seconds(5));

 private:
  explicit Qmp(UnixLineClient conn) : conn_(std::move(conn)) {}
  Result<nlohmann::json> readMessage(std::chrono::milliseconds timeout);
  Result<nlohmann::json> readReturn(const std::string& command, std::chrono::milliseconds timeout);
  UnixLineClient conn_;
};

}  // namespace plfm::runtime
