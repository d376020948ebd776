#include "cluster.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "plfm/reconcile/ipv6.h"

namespace plfm::reconcile::testing {

std::string Counter::operator()() { return fmt::format("{}{:04}", prefix_, next_++); }

void Agents::report(Input& in) const {
  std::set<std::string> active;
  for (const Node& n : in.nodes) {
    if (n.state == NodeState::kActive) active.insert(n.id);
  }
  for (Instance& i : in.instances) {
    if (active.count(i.node_id) == 0 || i.phase == Phase::kStopped ||
        silent_processes.count(i.process) != 0) {
      continue;
    }
    if (i.desired != Desired::kRun) {
      i.phase = Phase::kStopped;
      i.phase_since_ms = in.now_ms;
      continue;
    }
    if (i.phase == Phase::kAllocated || i.phase == Phase::kBooting || i.phase == Phase::kRunning) {
      if (crashing_releases.count(i.release_id) != 0 ||
          (!i.secrets_version.empty() && crashing_secrets.count(i.secrets_version) != 0)) {
        i.phase = Phase::kExited;
        i.exit_code = 1;
      } else if (unhealthy_releases.count(i.release_id) != 0) {
        i.phase = Phase::kUnhealthy;
      } else {
        i.phase = Phase::kHealthy;
      }
      i.phase_since_ms = in.now_ms;
    }
  }
  if (remove_stopped) {
    std::erase_if(in.instances, [](const Instance& i) { return i.phase == Phase::kStopped; });
  }
}

Cluster::Cluster() { in.now_ms = 1'000'000; }

Cluster& Cluster::node(const std::string& id, int cores, std::int64_t memory_mb) {
  Node n;
  n.id = id;
  n.cores = cores;
  n.memory_mb = memory_mb;
  n.prefix = fmt::format("fd00:0:0:{:x}::/64", in.nodes.size() + 1);
  in.nodes.push_back(std::move(n));
  return *this;
}

Node& Cluster::nodeRef(const std::string& id) {
  for (Node& n : in.nodes) {
    if (n.id == id) return n;
  }
  ADD_FAILURE() << "no node " << id;
  return in.nodes.front();
}

Cluster& Cluster::group(const std::string& env, const std::string& process, int count,
                        const std::string& release, std::int64_t memory_mb, int vcpus,
                        const std::string& deploy) {
  Group g;
  g.env_id = env;
  g.process = process;
  g.count = count;
  g.target.release_id = release;
  g.target.deploy_id = deploy;
  g.target.resources = Resources{vcpus, memory_mb};
  in.groups.push_back(std::move(g));
  return *this;
}

Group& Cluster::groupRef(const std::string& env, const std::string& process) {
  for (Group& g : in.groups) {
    if (g.env_id == env && g.process == process) return g;
  }
  ADD_FAILURE() << "no group " << env << "/" << process;
  return in.groups.front();
}

Cluster& Cluster::deploy(const std::string& env, const std::string& id, const std::string& release,
                         std::int64_t created_ms, DeployStatus status) {
  in.deploys.push_back(Deploy{id, env, release, status, created_ms});
  return *this;
}

Deploy& Cluster::deployRef(const std::string& id) {
  for (Deploy& d : in.deploys) {
    if (d.id == id) return d;
  }
  ADD_FAILURE() << "no deploy " << id;
  return in.deploys.front();
}

Cluster& Cluster::instance(const std::string& id, const std::string& env,
                           const std::string& process, const std::string& release,
                           const std::string& node, Phase phase, std::int64_t memory_mb,
                           int vcpus) {
  std::vector<std::string> used;
  for (const Instance& i : in.instances) used.push_back(i.address);
  Instance i;
  i.id = id;
  i.env_id = env;
  i.process = process;
  i.release_id = release;
  i.node_id = node;
  i.address = allocateInstanceAddress(nodeRef(node).prefix, used).value();
  i.phase = phase;
  i.phase_since_ms = in.now_ms;
  i.resources = Resources{vcpus, memory_mb};
  in.instances.push_back(std::move(i));
  return *this;
}

Instance& Cluster::instanceRef(const std::string& id) {
  for (Instance& i : in.instances) {
    if (i.id == id) return i;
  }
  ADD_FAILURE() << "no instance " << id;
  return in.instances.front();
}

Cluster& Cluster::startDeploy(const std::string& env, const std::string& deploy_id,
                              const std::string& release, Strategy strategy) {
  in.now_ms += 1000;
  deploy(env, deploy_id, release, in.now_ms);
  for (Group& g : in.groups) {
    if (g.env_id != env) continue;
    // The env's current release becomes the fallback only once its deploy
    // succeeded (envs_view.current_release_id).
    bool target_succeeded = g.target.deploy_id.empty();
    for (const Deploy& d : in.deploys) {
      if (d.id == g.target.deploy_id && d.status == DeployStatus::kSucceeded) {
        target_succeeded = true;
      }
    }
    if (target_succeeded) g.stable = g.target;
    g.target.release_id = release;
    g.target.deploy_id = deploy_id;
    g.strategy = strategy;
  }
  return *this;
}

Plan Cluster::reconcile() {
  auto plan = plfm::reconcile::reconcile(in, std::ref(ids), std::ref(deploy_ids));
  EXPECT_TRUE(plan.has_value()) << plan.error().toString();
  return plan ? std::move(*plan) : Plan{};
}

void Cluster::apply(const Plan& plan) {
  applyPlan(in, plan);
  for (const Allocate& a : plan.allocations) {
    Group& g = groupRef(a.env_id, a.process);
    if (!g.hasVolumes() || !g.slotNode(a.slot).empty()) continue;
    if (g.slot_nodes.size() <= static_cast<size_t>(a.slot)) {
      g.slot_nodes.resize(static_cast<size_t>(a.slot) + 1);
    }
    g.slot_nodes[static_cast<size_t>(a.slot)] = a.node_id;
    nodeRef(a.node_id).volume_free_bytes -= g.volume_bytes_per_slot;
  }
}

int Cluster::settle(int max_rounds) {
  for (int round = 0; round < max_rounds; ++round) {
    agents.report(in);
    Plan plan = reconcile();
    if (plan.noActions()) return round;
    apply(plan);
    in.now_ms += 1000;
  }
  ADD_FAILURE() << "no fixpoint after " << max_rounds << " rounds";
  return max_rounds;
}

std::vector<const Instance*> Cluster::live(const std::string& env,
                                           const std::string& process) const {
  std::vector<const Instance*> out;
  for (const Instance& i : in.instances) {
    if (i.env_id == env && i.process == process && i.desired == Desired::kRun && !i.lost &&
        i.phase != Phase::kStopped) {
      out.push_back(&i);
    }
  }
  return out;
}

int Cluster::healthy(const std::string& env, const std::string& process,
                     const std::string& release) const {
  int n = 0;
  for (const Instance* i : live(env, process)) {
    if (i->phase == Phase::kHealthy && (release.empty() || i->release_id == release)) ++n;
  }
  return n;
}

std::vector<std::string> summarize(const Plan& plan) {
  std::vector<std::string> out;
  for (const Lost& l : plan.lost)
    out.push_back(fmt::format("lost {}: {}", l.instance_id, l.reason));
  for (const Stop& s : plan.stops)
    out.push_back(fmt::format("stop {}: {}", s.instance_id, s.reason));
  for (const Drain& d : plan.drains) {
    out.push_back(fmt::format("drain {}: {}", d.instance_id, d.reason));
  }
  for (const Allocate& a : plan.allocations) {
    out.push_back(fmt::format("allocate {} {} {} on {} {}", a.instance_id, a.process, a.release_id,
                              a.node_id, a.address));
  }
  for (const Restart& r : plan.restarts) {
    out.push_back(fmt::format("restart {} gen {} at {}: {}", r.instance_id, r.generation,
                              r.not_before_ms, r.reason));
  }
  for (const DeployTransition& d : plan.deploys) {
    out.push_back(fmt::format("deploy {} {} -> {}: {}", d.deploy_id, toString(d.from),
                              toString(d.to), d.reason));
  }
  for (const Rollback& r : plan.rollbacks) {
    out.push_back(fmt::format("rollback {} of {}: {} ({})", r.deploy_id, r.rollback_of,
                              r.release_id, r.reason));
  }
  for (const Pending& p : plan.pending) {
    out.push_back(fmt::format("pending {}/{} missing {} outdated {}: {}", p.env_id, p.process,
                              p.missing, p.outdated, p.reason));
  }
  return out;
}

}  // namespace plfm::reconcile::testing
