#include "runtime/qmp.h"

namespace plfm::runtime {

Result<nlohmann::json> Qmp::readMessage(std::chrono::milliseconds timeout) {
  PLFM_ASSIGN_OR_RETURN(std::string line, conn_.readLine(timeout));
  auto msg = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!msg.is_object()) return Error(errc::kInternal, "QMP sent a line that is not a JSON object");
  return msg;
}

Result<Qmp> Qmp::connect(const std::string& socket_path, std::chrono::milliseconds timeout) {
  PLFM_ASSIGN_OR_RETURN(auto conn, UnixLineClient::connect(socket_path, timeout));
  Qmp qmp(std::move(conn));
  PLFM_ASSIGN_OR_RETURN(auto greeting, qmp.readMessage(timeout));
  if (!greeting.contains("QMP")) return Error(errc::kInternal, "no QMP greeting");
  PLFM_TRY(qmp.execute("qmp_capabilities", nlohmann::json::object(), timeout));
  return qmp;
}

Result<nlohmann::json> Qmp::execute(const std::string& command, const nlohmann::json& arguments,
                                    std::chrono::milliseconds timeout) {
  nlohmann::json req = {{"execute", command}};
  if (!arguments.empty()) req["arguments"] = arguments;
  PLFM_TRY(conn_.writeAll(req.dump() + "\n", timeout));
  return readReturn(command, timeout);
}

Result<nlohmann::json> Qmp::executeWithFd(const std::string& command,
                                          const nlohmann::json& arguments, int fd,
                                          std::chrono::milliseconds timeout) {
  nlohmann::json req = {{"execute", command}};
  if (!arguments.empty()) req["arguments"] = arguments;
  PLFM_TRY(conn_.writeAllWithFd(req.dump() + "\n", fd, timeout));
  return readReturn(command, timeout);
}

Result<nlohmann::json> Qmp::readReturn(const std::string& command,
                                       std::chrono::milliseconds timeout) {
  while (true) {
    PLFM_ASSIGN_OR_RETURN(auto msg, readMessage(timeout));
    if (msg.contains("event")) continue;
    if (msg.contains("return")) return msg["return"];
    if (msg.contains("error")) {
      const auto& err = msg["error"];
      std::string cls = err.value("class", "GenericError");
      return Error("qmp." + cls, "QMP " + command + ": " + err.value("desc", "failed"))
          .with("command", command);
    }
  }
}

}  // namespace plfm::runtime
