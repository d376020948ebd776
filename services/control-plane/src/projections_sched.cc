// Appliers of the node and instance events (docs/specs/state/event-types.md).
// Like every applier they take each column from the event (never now()) and
// are idempotent: updates are guarded by the row's version (the aggregate_seq
// of the last event applied to it), so a replay changes nothing.
//
// plan_seq / plan_version record the seq of the last event that changed what
// a node must do, which is how NodePlan versions are built
// (docs/specs/scheduler/node-plan.md). mesh_seq records the seq of the last
// event that changed the node's mesh membership or attributes; the plans'
// mesh version is the max over all nodes (docs/specs/networking/mesh.md).
#include "mesh_plan.h"
#include "projection_appliers.h"

namespace plfm::cp::projection {

Result<void> nodeEnrolled(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::NodeEnrolled>());
  return exec(
      tx,
      "INSERT INTO nodes_view (node_id, hostname, state, cores, memory_mb, ipv6_prefix, "
      "labels, version, created_at, updated_at, disk_mb, wireguard_public_key, "
      "underlay_address, runtimes, state_since, plan_version, mesh_port, role, mesh_seq, "
      "mesh_key_since) VALUES ($1, $2, 'active', $3, $4, $5, $6::jsonb, $7, $8, $8, $9, $10, "
      "$11, $12::jsonb, $8, $13, $14, $15, $13, $8) ON CONFLICT (node_id) DO NOTHING",
      {ev.node_id, ev.hostname, ev.cores, ev.memory_mb, ev.ipv6_prefix,
       json::dump(json::Json(ev.labels)), p.e.aggregate_seq, p.e.occurred_at, ev.disk_mb,
       ev.wireguard_public_key, ev.underlay_address, json::dump(json::Json(ev.runtimes)), p.e.seq,
       ev.mesh_port.value_or(kDefaultMeshPort), ev.role.value_or(std::string(kRoleWorker))});
}

Result<void> nodeStateChanged(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::NodeStateChanged>());
  // Into or out of down changes the node's mesh membership (its peers list
  // it only while it is not down): every node's plan moves.
  const bool mesh = ev.from == "down" || ev.to == "down";
  return exec(tx,
              "UPDATE nodes_view SET state = $2, state_reason = $3, state_since = $4, "
              "updated_at = $4, version = $5, mesh_seq = CASE WHEN $7 THEN $6 ELSE mesh_seq END "
              "WHERE node_id = $1 AND version < $5",
              {ev.node_id, ev.to, ev.reason, p.e.occurred_at, p.e.aggregate_seq, p.e.seq, mesh});
}

Result<void> nodeRemoved(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::NodeRemoved>());
  // Cordoned as well as down: nothing is ever placed on it again. The plan
  // version moves so that the node's waiting plan long-polls wake (and are
  // refused: its credential is revoked).
  return exec(tx,
              "UPDATE nodes_view SET removed_at = $2, cordoned = true, updated_at = $2, "
              "version = $3, plan_version = $4, mesh_seq = $4 WHERE node_id = $1 AND version < $3",
              {ev.node_id, p.e.occurred_at, p.e.aggregate_seq, p.e.seq});
}

// Key rotation (docs/specs/networking/mesh.md, "Contract for key rotation"):
// each event moves mesh_seq, so every agent's plan wakes.
Result<void> nodeMeshKeyRotationRequested(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::NodeMeshKeyRotationRequested>());
  return exec(tx,
              "UPDATE nodes_view SET mesh_rotation_requested = true, updated_at = $2, "
              "version = $3, mesh_seq = $4 WHERE node_id = $1 AND version < $3",
              {ev.node_id, p.e.occurred_at, p.e.aggregate_seq, p.e.seq});
}

Result<void> nodeMeshKeyStaged(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::NodeMeshKeyStaged>());
  return exec(
      tx,
      "UPDATE nodes_view SET next_wireguard_public_key = $2, next_mesh_port = $3, "
      "updated_at = $4, version = $5, mesh_seq = $6 WHERE node_id = $1 AND version < $5",
      {ev.node_id, ev.public_key, ev.listen_port, p.e.occurred_at, p.e.aggregate_seq, p.e.seq});
}

Result<void> nodeMeshKeyRotated(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::NodeMeshKeyRotated>());
  return exec(
      tx,
      "UPDATE nodes_view SET wireguard_public_key = $2, mesh_port = $3, "
      "mesh_key_since = $4, next_wireguard_public_key = NULL, next_mesh_port = NULL, "
      "mesh_rotation_requested = false, updated_at = $4, version = $5, mesh_seq = $6 "
      "WHERE node_id = $1 AND version < $5",
      {ev.node_id, ev.public_key, ev.listen_port, p.e.occurred_at, p.e.aggregate_seq, p.e.seq});
}

Result<void> nodeSchedulingChanged(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::NodeSchedulingChanged>());
  return exec(tx,
              "UPDATE nodes_view SET cordoned = $2, draining = $3, updated_at = $4, version = $5 "
              "WHERE node_id = $1 AND version < $5",
              {ev.node_id, ev.cordoned, ev.draining, p.e.occurred_at, p.e.aggregate_seq});
}

// Read field by field rather than as events::InstanceAllocated: the log
// holds placements written before `slot` existed (NULL here), and the
// batched path below reads the same payloads in SQL for speed.
Result<void> instanceAllocated(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto inst, p.str("instance_id"));
  PLFM_ASSIGN_OR_RETURN(auto org, p.str("org_id"));
  PLFM_ASSIGN_OR_RETURN(auto app, p.str("app_id"));
  PLFM_ASSIGN_OR_RETURN(auto env, p.str("env_id"));
  PLFM_ASSIGN_OR_RETURN(auto process, p.str("process_type"));
  PLFM_ASSIGN_OR_RETURN(auto rel, p.str("release_id"));
  PLFM_ASSIGN_OR_RETURN(auto dep, p.optStr("deploy_id"));
  PLFM_ASSIGN_OR_RETURN(auto node, p.str("node_id"));
  PLFM_ASSIGN_OR_RETURN(auto address, p.str("address"));
  PLFM_ASSIGN_OR_RETURN(auto vcpus, p.integer("vcpus"));
  PLFM_ASSIGN_OR_RETURN(auto memory, p.integer("memory_mb"));
  PLFM_ASSIGN_OR_RETURN(auto reason, p.str("reason"));
  PLFM_ASSIGN_OR_RETURN(auto secrets, p.optStrOrMissing("secrets_version"));
  // Absent in events written before slots existed: NULL.
  std::optional<std::string> slot;
  if (p.j.contains("slot")) {
    PLFM_ASSIGN_OR_RETURN(auto n, p.integer("slot"));
    slot = std::to_string(n);
  }
  return exec(tx,
              "INSERT INTO instances_view (instance_id, org_id, env_id, process_type, release_id, "
              "deploy_id, node_id, generation, desired_state, current_state, reason, address, "
              "version, created_at, updated_at, app_id, vcpus, memory_mb, phase_since, plan_seq, "
              "secrets_version, slot) "
              "VALUES ($1, $2, $3, $4, $5, $6, $7, 1, 'run', 'allocated', $8, $9, $10, $11, $11, "
              "$12, $13, $14, $11, $15, $16, $17::int) ON CONFLICT (instance_id) DO NOTHING",
              {inst, org, env, process, rel, dep, node, reason, address, p.e.aggregate_seq,
               p.e.occurred_at, app, vcpus, memory, p.e.seq, secrets, slot});
}

Result<void> instancesAllocated(pg::Transaction& tx, const std::vector<StoredEvent>& events,
                                size_t begin, size_t end) {
  // The payloads go in as they are, inside one JSON array that PostgreSQL
  // parses once; a missing field becomes NULL and fails a NOT NULL column,
  // which stops the projection like a bad single event would.
  std::string rows = "[";
  for (size_t i = begin; i < end; ++i) {
    const StoredEvent& e = events[i];
    if (i > begin) rows += ',';
    rows += R"({"v":)" + std::to_string(e.aggregate_seq) + R"(,"s":)" + std::to_string(e.seq) +
            R"(,"t":")" + e.occurred_at + R"(","p":)" + e.payload + "}";
  }
  rows += ']';
  return exec(tx,
              "INSERT INTO instances_view (instance_id, org_id, env_id, process_type, release_id, "
              "deploy_id, node_id, generation, desired_state, current_state, reason, address, "
              "version, created_at, updated_at, app_id, vcpus, memory_mb, phase_since, plan_seq, "
              "secrets_version, slot) "
              "SELECT p->>'instance_id', p->>'org_id', p->>'env_id', p->>'process_type', "
              "p->>'release_id', p->>'deploy_id', p->>'node_id', 1, 'run', 'allocated', "
              "p->>'reason', p->>'address', (r->>'v')::int, (r->>'t')::timestamptz, "
              "(r->>'t')::timestamptz, p->>'app_id', (p->>'vcpus')::int, "
              "(p->>'memory_mb')::int, (r->>'t')::timestamptz, (r->>'s')::bigint, "
              "p->>'secrets_version', (p->>'slot')::int "
              "FROM jsonb_array_elements($1::jsonb) AS r, LATERAL (SELECT r->'p' AS p) x "
              "ORDER BY (r->>'s')::bigint ON CONFLICT (instance_id) DO NOTHING",
              {rows});
}

Result<void> instanceRestartScheduled(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::InstanceRestartScheduled>());
  return exec(tx,
              "UPDATE instances_view SET generation = $2, restarts = $3, not_before = $4, "
              "reason = $5, current_state = 'allocated', exit_code = NULL, status_seq = 0, "
              "phase_since = $6, updated_at = $6, version = $7, plan_seq = $8 "
              "WHERE instance_id = $1 AND version < $7",
              {ev.instance_id, ev.generation, ev.restarts, ev.not_before, ev.reason,
               p.e.occurred_at, p.e.aggregate_seq, p.e.seq});
}

// A drain waits at the gate (drain_gate.h): the node plan keeps saying "run"
// until instance.drain_released, so plan_seq does not move here.
Result<void> instanceDrainRequested(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::InstanceDrainRequested>());
  return exec(tx,
              "UPDATE instances_view SET desired_state = 'drain', reason = $2, drain_seq = $3, "
              "drain_requested_at = $4, drain_released = false, updated_at = $4, version = $5 "
              "WHERE instance_id = $1 AND version < $5",
              {ev.instance_id, ev.reason, p.e.seq, p.e.occurred_at, p.e.aggregate_seq});
}

Result<void> instanceDrainReleased(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::InstanceDrainReleased>());
  return exec(tx,
              "UPDATE instances_view SET drain_released = true, updated_at = $2, version = $3, "
              "plan_seq = $4 WHERE instance_id = $1 AND version < $3",
              {ev.instance_id, p.e.occurred_at, p.e.aggregate_seq, p.e.seq});
}

Result<void> instanceStopRequested(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::InstanceStopRequested>());
  return exec(tx,
              "UPDATE instances_view SET desired_state = 'stop', reason = $2, updated_at = $3, "
              "version = $4, plan_seq = $5 WHERE instance_id = $1 AND version < $4",
              {ev.instance_id, ev.reason, p.e.occurred_at, p.e.aggregate_seq, p.e.seq});
}

Result<void> instanceLost(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::InstanceLost>());
  // Not plan-relevant: the node cannot be told while it is unreachable, and
  // when it returns the scheduler sends a stop (instance.stop_requested).
  return exec(tx,
              "UPDATE instances_view SET lost = true, reason = $2, updated_at = $3, version = $4 "
              "WHERE instance_id = $1 AND version < $4",
              {ev.instance_id, ev.reason, p.e.occurred_at, p.e.aggregate_seq});
}

Result<void> instanceStatusReported(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::InstanceStatusReported>());
  // A report of another generation, or not newer than the last one applied,
  // changes nothing. An instance that reports `stopped` leaves its node's
  // plan, so that changes the plan.
  return exec(tx,
              "UPDATE instances_view SET current_state = $4, exit_code = $5, reason = $6, "
              "timings = $7::jsonb, status_seq = $3, phase_since = $8, updated_at = $8, "
              "version = $9, plan_seq = CASE WHEN $4 = 'stopped' THEN $10 ELSE plan_seq END "
              "WHERE instance_id = $1 AND generation = $2 AND status_seq < $3 AND version < $9",
              {ev.instance_id, ev.generation, ev.seq, ev.phase, ev.exit_code, ev.reason,
               json::dump(ev.timings), p.e.occurred_at, p.e.aggregate_seq, p.e.seq});
}

}  // namespace plfm::cp::projection
