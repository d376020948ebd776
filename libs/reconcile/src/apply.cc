// The state-side effect of each action, as the control plane's projections
// apply the corresponding events to its views.
#include <string_view>
#include <unordered_map>

#include "plfm/reconcile/reconcile.h"

namespace plfm::reconcile {

void applyPlan(Input& in, const Plan& plan) {
  std::unordered_map<std::string_view, Instance*> instances;
  instances.reserve(in.instances.size());
  for (Instance& i : in.instances) instances.emplace(i.id, &i);
  auto find = [&](const std::string& id) -> Instance* {
    auto it = instances.find(id);
    return it == instances.end() ? nullptr : it->second;
  };

  for (const Lost& l : plan.lost) {
    if (Instance* i = find(l.instance_id)) i->lost = true;
  }
  for (const Stop& s : plan.stops) {
    if (Instance* i = find(s.instance_id)) i->desired = Desired::kStop;
  }
  for (const Drain& d : plan.drains) {
    if (Instance* i = find(d.instance_id)) i->desired = Desired::kDrain;
  }
  for (const Restart& r : plan.restarts) {
    if (Instance* i = find(r.instance_id)) {
      i->generation = r.generation;
      i->restarts = r.restarts;
      i->phase = Phase::kAllocated;  // the new generation waits for the agent
      i->phase_since_ms = in.now_ms;
      i->exit_code = 0;
    }
  }
  for (const DeployTransition& t : plan.deploys) {
    for (Deploy& d : in.deploys) {
      if (d.id == t.deploy_id) d.status = t.to;
    }
  }
  // A rollback deploy becomes its env's current deploy: the groups target
  // it, with the resources of the stable revision they roll back to.
  for (const Rollback& r : plan.rollbacks) {
    in.deploys.push_back(Deploy{r.deploy_id, r.env_id, r.release_id, DeployStatus::kPending,
                                in.now_ms, r.rollback_of});
    for (Group& g : in.groups) {
      if (g.env_id != r.env_id) continue;
      const Resources res =
          g.stable.release_id == r.release_id ? g.stable.resources : g.target.resources;
      g.target = Revision{r.release_id, r.deploy_id, res, r.secrets_version};
    }
  }
  // Appending may move the instances: pointers above are not used past here.
  in.instances.reserve(in.instances.size() + plan.allocations.size());
  for (const Allocate& a : plan.allocations) {
    Instance i;
    i.id = a.instance_id;
    i.env_id = a.env_id;
    i.process = a.process;
    i.release_id = a.release_id;
    i.deploy_id = a.deploy_id;
    i.secrets_version = a.secrets_version;
    i.node_id = a.node_id;
    i.address = a.address;
    i.phase = Phase::kAllocated;
    i.phase_since_ms = in.now_ms;
    i.resources = a.resources;
    i.slot = a.slot;
    in.instances.push_back(std::move(i));
  }
}

}  // namespace plfm::reconcile
