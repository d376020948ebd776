#include "exec_view.h"

#include <nlohmann/json.hpp>

namespace plfm::vt {
namespace {

using nlohmann::json;

std::string text(const json& j, const char* key) {
  if (!j.is_object()) return {};
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace

Result<std::vector<ExecInstanceView>> parseExecInstances(const json& j) {
  if (!j.is_object() || !j.contains("items") || !j["items"].is_array()) {
    return Error(errc::kInternal, "the instance list has no items");
  }
  std::vector<ExecInstanceView> out;
  for (const auto& i : j["items"]) {
    out.push_back({.id = text(i, "id"),
                   .process_type = text(i, "process_type"),
                   .desired_state = text(i, "desired_state"),
                   .current_state = text(i, "current_state")});
  }
  return out;
}

Result<ExecTicketView> parseExecTicket(const json& j) {
  if (!j.is_object()) return Error(errc::kInternal, "the exec answer is not a JSON object");
  ExecTicketView v{.ticket = text(j, "ticket"), .url = text(j, "url")};
  if (!j.contains("url") || j["url"].is_null()) v.url = "/v1/exec";
  return v;
}

std::string nameOf(const json& j) { return text(j, "name"); }

std::string idOf(const json& j) { return text(j, "id"); }

}  // namespace plfm::vt
