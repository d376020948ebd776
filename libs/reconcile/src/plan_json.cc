// Plan -> canonical JSON, for logs, golden tests and debugging dumps. Keys
// are sorted (nlohmann's default map) and lists keep plan order, so equal
// plans give byte-identical text.
#include <nlohmann/json.hpp>

#include "plfm/reconcile/reconcile.h"

namespace plfm::reconcile {
namespace {

using Json = nlohmann::json;

Json resources(const Resources& r) { return Json{{"memory_mb", r.memory_mb}, {"vcpus", r.vcpus}}; }

template <class T, class F>
Json list(const std::vector<T>& items, F one) {
  Json out = Json::array();
  for (const T& item : items) out.push_back(one(item));
  return out;
}

}  // namespace

std::string toJson(const Plan& plan, int indent) {
  Json j = Json::object();
  j["allocations"] = list(plan.allocations, [](const Allocate& a) {
    return Json{{"instance_id", a.instance_id},
                {"env_id", a.env_id},
                {"process", a.process},
                {"release_id", a.release_id},
                {"deploy_id", a.deploy_id},
                {"node_id", a.node_id},
                {"address", a.address},
                {"resources", resources(a.resources)},
                {"slot", a.slot},
                {"reason", a.reason}};
  });
  j["restarts"] = list(plan.restarts, [](const Restart& r) {
    return Json{{"instance_id", r.instance_id},     {"node_id", r.node_id},
                {"generation", r.generation},       {"restarts", r.restarts},
                {"not_before_ms", r.not_before_ms}, {"reason", r.reason}};
  });
  j["drains"] = list(plan.drains, [](const Drain& d) {
    return Json{{"instance_id", d.instance_id}, {"reason", d.reason}};
  });
  j["lost"] = list(plan.lost, [](const Lost& l) {
    return Json{{"instance_id", l.instance_id}, {"node_id", l.node_id}, {"reason", l.reason}};
  });
  j["stops"] = list(plan.stops, [](const Stop& s) {
    return Json{{"instance_id", s.instance_id}, {"reason", s.reason}};
  });
  j["deploys"] = list(plan.deploys, [](const DeployTransition& d) {
    return Json{{"deploy_id", d.deploy_id},
                {"env_id", d.env_id},
                {"from", std::string(toString(d.from))},
                {"to", std::string(toString(d.to))},
                {"reason", d.reason}};
  });
  j["rollbacks"] = list(plan.rollbacks, [](const Rollback& r) {
    return Json{{"deploy_id", r.deploy_id},
                {"env_id", r.env_id},
                {"release_id", r.release_id},
                {"secrets_version", r.secrets_version},
                {"strategy", std::string(toString(r.strategy))},
                {"rollback_of", r.rollback_of},
                {"reason", r.reason}};
  });
  j["pending"] = list(plan.pending, [](const Pending& p) {
    return Json{{"env_id", p.env_id},
                {"process", p.process},
                {"missing", p.missing},
                {"outdated", p.outdated},
                {"reason", p.reason}};
  });
  // Reasons quote ids and numbers only, but an id could in principle hold
  // invalid UTF-8; replace rather than throw.
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

}  // namespace plfm::reconcile
