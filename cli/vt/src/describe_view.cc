#include "describe_view.h"

#include <nlohmann/json.hpp>

namespace plfm::vt {
namespace {

using nlohmann::json;

const json& member(const json& j, std::string_view key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

std::string text(const json& j, std::string_view key) {
  const json& v = member(j, key);
  return v.is_string() ? v.get<std::string>() : std::string();
}

std::optional<int64_t> integer(const json& j, std::string_view key) {
  const json& v = member(j, key);
  if (!v.is_number_integer()) return std::nullopt;
  return v.get<int64_t>();
}

const json& array(const json& j, std::string_view key) {
  static const json kEmpty = json::array();
  const json& v = member(j, key);
  return v.is_array() ? v : kEmpty;
}

std::vector<std::string> strings(const json& j, std::string_view key) {
  std::vector<std::string> out;
  for (const auto& s : array(j, key)) {
    if (s.is_string()) out.push_back(s.get<std::string>());
  }
  return out;
}

// One entry of a canonical manifest's `checks`.
manifest::Check checkOf(const json& c) {
  manifest::Check out;
  out.process = text(c, "process");
  out.type = text(c, "type");
  out.port = static_cast<int>(integer(c, "port").value_or(0));
  out.path = text(c, "path");
  out.command = strings(c, "command");
  out.interval_ms = integer(c, "interval_ms").value_or(out.interval_ms);
  out.timeout_ms = integer(c, "timeout_ms").value_or(out.timeout_ms);
  out.grace_ms = integer(c, "grace_ms").value_or(out.grace_ms);
  return out;
}

InstanceView instanceOf(const json& i) {
  InstanceView v;
  v.id = text(i, "id");
  v.process_type = text(i, "process_type");
  v.env_id = text(i, "env_id");
  v.release_id = text(i, "release_id");
  v.deploy_id = text(i, "deploy_id");
  v.node_id = text(i, "node_id");
  v.address = text(i, "address");
  v.desired_state = text(i, "desired_state");
  v.current_state = text(i, "current_state");
  v.reason = text(i, "reason");
  v.phase_since = text(i, "phase_since");
  v.not_before = text(i, "not_before");
  v.created_at = text(i, "created_at");
  v.lost = member(i, "lost") == true;
  v.generation = integer(i, "generation");
  v.restarts = integer(i, "restarts");
  v.exit_code = integer(i, "exit_code");
  v.vcpus = integer(i, "vcpus");
  v.memory_mb = integer(i, "memory_mb");
  const json& timings = member(i, "timings");
  if (timings.is_object()) {
    for (auto it = timings.begin(); it != timings.end(); ++it) {
      if (it->is_number_integer()) v.timings.emplace_back(it.key(), it->get<int64_t>());
    }
  }
  return v;
}

}  // namespace

Result<InstanceDetailView> parseInstanceDetail(const json& j) {
  if (!j.is_object()) return Error(errc::kInternal, "the instance answer is not a JSON object");
  InstanceDetailView d;
  d.instance = instanceOf(member(j, "instance"));
  for (const auto& e : array(j, "events")) {
    d.events.push_back({text(e, "occurred_at"), text(e, "event_type"), text(e, "phase"),
                        text(e, "reason"), integer(e, "generation")});
  }
  const json& last = member(j, "last_check");
  if (last.is_object()) {
    d.last_check = CheckResultView{text(last, "status"), text(last, "reason"), text(last, "at"),
                                   integer(last, "generation")};
  }
  for (const auto& c : array(j, "checks")) d.checks.push_back(checkOf(c));
  const json& logs = member(j, "logs");
  for (const auto& l : array(logs, "items")) {
    d.log_lines.push_back({text(l, "ts"), text(l, "stream"), text(l, "line")});
  }
  d.logs_unavailable = text(logs, "unavailable");
  return d;
}

Result<ReleaseView> parseReleaseDetail(const json& j) {
  if (!j.is_object()) return Error(errc::kInternal, "the release answer is not a JSON object");
  ReleaseView r;
  r.id = text(j, "id");
  r.app_id = text(j, "app_id");
  r.image_ref = text(j, "image_ref");
  r.image_digest = text(j, "image_digest");
  r.created_at = text(j, "created_at");
  for (const auto& e : array(j, "envs")) {
    r.envs.push_back({text(e, "name"), member(e, "current") == true,
                      integer(e, "instances").value_or(0), text(e, "deploy_status")});
  }
  auto m = manifest::fromJson(member(j, "manifest"));
  if (m) {
    r.manifest = std::move(*m);
  } else {
    r.manifest_error = m.error().message();
  }
  return r;
}

}  // namespace plfm::vt
