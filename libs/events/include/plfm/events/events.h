// The event types of the control plane's log, one struct each: the typed
// form of api/schemas/events/<type>.json, which stays the contract. Handlers
// build an event as a struct and turn it into a NewEvent (toNewEvent), the
// projections read a stored payload back into the struct (fromPayload), and
// a contract test round-trips every struct through its schema. See
// docs/specs/state/event-types.md.
//
// Each struct carries its type name, version and aggregate type as
// constants, its fields as the schema names them (every field is required;
// a nullable one is a std::optional), and a visit() listing the fields once
// for the generic JSON codec in events.cc. Payload JSON is compact with keys
// in sorted order (json::dump), so the bytes do not depend on field order.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/json.h"
#include "plfm/core/result.h"

namespace plfm::events {

// An event to append (EventStore::append, services/control-plane).
struct NewEvent {
  std::string aggregate_type;  // "app"
  std::string aggregate_id;    // "app_..."
  int aggregate_seq = 0;       // the aggregate's version after this event (previous + 1)
  std::string event_type;      // "app.created"
  int event_version = 1;
  std::string org_id;              // empty: not org-scoped
  std::string payload = "{}";      // a JSON object
  std::string correlation = "{}";  // a JSON object, e.g. {"deploy_id":"dep_..."}
};

// app.created: An app was created in an org.
struct AppCreated {
  static constexpr std::string_view kType = "app.created";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "app";

  std::string app_id;
  std::string org_id;
  std::string name;
  std::string description;

  [[nodiscard]] const std::string& aggregateId() const { return app_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("app_id", self.app_id);
    v("org_id", self.org_id);
    v("name", self.name);
    v("description", self.description);
  }
};

// app.deleted: An app (with no envs left) was deleted.
struct AppDeleted {
  static constexpr std::string_view kType = "app.deleted";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "app";

  std::string app_id;
  std::string org_id;

  [[nodiscard]] const std::string& aggregateId() const { return app_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("app_id", self.app_id);
    v("org_id", self.org_id);
  }
};

// deploy.created: A deploy of a release to an env was requested; it starts in status pending.
struct DeployCreated {
  static constexpr std::string_view kType = "deploy.created";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "deploy";

  std::string deploy_id;
  std::string app_id;
  std::string env_id;
  std::string org_id;
  std::string release_id;
  std::string strategy;
  std::optional<std::string> secrets_version;

  [[nodiscard]] const std::string& aggregateId() const { return deploy_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("deploy_id", self.deploy_id);
    v("app_id", self.app_id);
    v("env_id", self.env_id);
    v("org_id", self.org_id);
    v("release_id", self.release_id);
    v("strategy", self.strategy);
    v("secrets_version", self.secrets_version);
  }
};

// deploy.rollback_created: The scheduler created a deploy that rolls an env back to its last
// successful release after a deploy failed ([deploy] auto_rollback); it starts in status pending
// like any deploy. See docs/specs/state/event-types.md and docs/specs/scheduler/reconciler.md
// (Deploys).
struct DeployRollbackCreated {
  static constexpr std::string_view kType = "deploy.rollback_created";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "deploy";

  std::string deploy_id;
  std::string app_id;
  std::string env_id;
  std::string org_id;
  std::string release_id;
  std::string strategy;
  std::optional<std::string> secrets_version;
  std::string rollback_of;
  std::string reason;

  [[nodiscard]] const std::string& aggregateId() const { return deploy_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("deploy_id", self.deploy_id);
    v("app_id", self.app_id);
    v("env_id", self.env_id);
    v("org_id", self.org_id);
    v("release_id", self.release_id);
    v("strategy", self.strategy);
    v("secrets_version", self.secrets_version);
    v("rollback_of", self.rollback_of);
    v("reason", self.reason);
  }
};

// deploy.status_changed: A deploy moved to another status.
struct DeployStatusChanged {
  static constexpr std::string_view kType = "deploy.status_changed";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "deploy";

  std::string deploy_id;
  std::string status;
  std::string reason;

  [[nodiscard]] const std::string& aggregateId() const { return deploy_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("deploy_id", self.deploy_id);
    v("status", self.status);
    v("reason", self.reason);
  }
};

// domain.created: An org claimed a domain (pending until verified); the challenge is not in the
// event. See docs/specs/ingress/domains.md.
struct DomainCreated {
  static constexpr std::string_view kType = "domain.created";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "domain";

  std::string domain_id;
  std::string org_id;
  std::string domain;

  [[nodiscard]] const std::string& aggregateId() const { return domain_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("domain_id", self.domain_id);
    v("org_id", self.org_id);
    v("domain", self.domain);
  }
};

// domain.deleted: The org gave up the domain. See docs/specs/ingress/domains.md.
struct DomainDeleted {
  static constexpr std::string_view kType = "domain.deleted";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "domain";

  std::string domain_id;
  std::string org_id;
  std::string domain;

  [[nodiscard]] const std::string& aggregateId() const { return domain_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("domain_id", self.domain_id);
    v("org_id", self.org_id);
    v("domain", self.domain);
  }
};

// domain.verified: The domain's DNS TXT challenge was found through the operator's resolver; only
// this org may now route names under it. See docs/specs/ingress/domains.md.
struct DomainVerified {
  static constexpr std::string_view kType = "domain.verified";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "domain";

  std::string domain_id;
  std::string org_id;
  std::string domain;

  [[nodiscard]] const std::string& aggregateId() const { return domain_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("domain_id", self.domain_id);
    v("org_id", self.org_id);
    v("domain", self.domain);
  }
};

// env.created: An env was created in an app.
struct EnvCreated {
  static constexpr std::string_view kType = "env.created";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "env";

  std::string env_id;
  std::string app_id;
  std::string org_id;
  std::string name;

  [[nodiscard]] const std::string& aggregateId() const { return env_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("env_id", self.env_id);
    v("app_id", self.app_id);
    v("org_id", self.org_id);
    v("name", self.name);
  }
};

// env.deleted: An env was deleted.
struct EnvDeleted {
  static constexpr std::string_view kType = "env.deleted";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "env";

  std::string env_id;
  std::string app_id;
  std::string org_id;

  [[nodiscard]] const std::string& aggregateId() const { return env_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("env_id", self.env_id);
    v("app_id", self.app_id);
    v("org_id", self.org_id);
  }
};

// env.scale_set: The desired instance count of some process types of an env changed. Process types
// not named keep their count.
struct EnvScaleSet {
  static constexpr std::string_view kType = "env.scale_set";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "env";

  std::string env_id;
  std::string org_id;
  std::map<std::string, int64_t> processes;

  [[nodiscard]] const std::string& aggregateId() const { return env_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("env_id", self.env_id);
    v("org_id", self.org_id);
    v("processes", self.processes);
  }
};

// exec.ended: An exec session ended, or could not start (refused, with no exec.started before it).
// See docs/specs/runtime/exec-sessions.md, "Exit status" and "Control plane".
struct ExecEnded {
  static constexpr std::string_view kType = "exec.ended";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "exec";

  std::string session_id;
  std::string org_id;
  std::string instance_id;
  std::string outcome;
  std::optional<int64_t> exit_code;
  int64_t duration_ms = 0;

  [[nodiscard]] const std::string& aggregateId() const { return session_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("session_id", self.session_id);
    v("org_id", self.org_id);
    v("instance_id", self.instance_id);
    v("outcome", self.outcome);
    v("exit_code", self.exit_code);
    v("duration_ms", self.duration_ms);
  }
};

// exec.started: An exec session started: the node agent accepted the session the control plane
// relays for a `vt exec` ticket. Only argv[0] of the command: its arguments, env, user, workdir and
// the session's stream bytes can carry secrets and are never recorded. See
// docs/specs/runtime/exec-sessions.md.
struct ExecStarted {
  static constexpr std::string_view kType = "exec.started";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "exec";

  std::string session_id;
  std::string org_id;
  std::string instance_id;
  std::string actor;
  std::string argv0;
  bool tty = false;

  [[nodiscard]] const std::string& aggregateId() const { return session_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("session_id", self.session_id);
    v("org_id", self.org_id);
    v("instance_id", self.instance_id);
    v("actor", self.actor);
    v("argv0", self.argv0);
    v("tty", self.tty);
  }
};

// instance.allocated: The scheduler placed a new instance on a node (generation 1, desired run).
struct InstanceAllocated {
  static constexpr std::string_view kType = "instance.allocated";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "instance";

  std::string instance_id;
  std::string org_id;
  std::string app_id;
  std::string env_id;
  std::string process_type;
  std::string release_id;
  std::optional<std::string> deploy_id;
  std::string node_id;
  std::string address;
  int64_t vcpus = 0;
  int64_t memory_mb = 0;
  std::string reason;
  std::optional<std::string> secrets_version;
  int64_t slot = 0;

  [[nodiscard]] const std::string& aggregateId() const { return instance_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("instance_id", self.instance_id);
    v("org_id", self.org_id);
    v("app_id", self.app_id);
    v("env_id", self.env_id);
    v("process_type", self.process_type);
    v("release_id", self.release_id);
    v("deploy_id", self.deploy_id);
    v("node_id", self.node_id);
    v("address", self.address);
    v("vcpus", self.vcpus);
    v("memory_mb", self.memory_mb);
    v("reason", self.reason);
    v("secrets_version", self.secrets_version);
    v("slot", self.slot);
  }
};

// instance.drain_released: The drain gate let a draining instance stop: every live ingress stopped
// sending it new connections and its open ones closed, or a bound ran out. See
// docs/specs/scheduler/drain.md.
struct InstanceDrainReleased {
  static constexpr std::string_view kType = "instance.drain_released";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "instance";

  std::string instance_id;
  std::string reason;
  int64_t waited_ms = 0;
  int64_t open_connections = 0;
  std::vector<std::string> unacknowledged;

  [[nodiscard]] const std::string& aggregateId() const { return instance_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("instance_id", self.instance_id);
    v("reason", self.reason);
    v("waited_ms", self.waited_ms);
    v("open_connections", self.open_connections);
    v("unacknowledged", self.unacknowledged);
  }
};

// instance.drain_requested: The scheduler asked for a graceful stop (rollout, scale down, drained
// node, no longer desired).
struct InstanceDrainRequested {
  static constexpr std::string_view kType = "instance.drain_requested";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "instance";

  std::string instance_id;
  std::string reason;

  [[nodiscard]] const std::string& aggregateId() const { return instance_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("instance_id", self.instance_id);
    v("reason", self.reason);
  }
};

// instance.lost: The instance's node stayed unreachable past the grace period (or is down); it no
// longer counts and is replaced.
struct InstanceLost {
  static constexpr std::string_view kType = "instance.lost";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "instance";

  std::string instance_id;
  std::string node_id;
  std::string reason;

  [[nodiscard]] const std::string& aggregateId() const { return instance_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("instance_id", self.instance_id);
    v("node_id", self.node_id);
    v("reason", self.reason);
  }
};

// instance.restart_scheduled: The scheduler restarts a crashed instance in place as its next
// generation, after a backoff.
struct InstanceRestartScheduled {
  static constexpr std::string_view kType = "instance.restart_scheduled";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "instance";

  std::string instance_id;
  std::string node_id;
  int64_t generation = 0;
  int64_t restarts = 0;
  std::string not_before;
  std::string reason;

  [[nodiscard]] const std::string& aggregateId() const { return instance_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("instance_id", self.instance_id);
    v("node_id", self.node_id);
    v("generation", self.generation);
    v("restarts", self.restarts);
    v("not_before", self.not_before);
    v("reason", self.reason);
  }
};

// instance.status_reported: A node agent reported an instance's phase. Reports are idempotent by
// (instance, generation, seq): only reports newer than the last accepted one become events.
struct InstanceStatusReported {
  static constexpr std::string_view kType = "instance.status_reported";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "instance";

  std::string instance_id;
  std::string node_id;
  int64_t generation = 0;
  int64_t seq = 0;
  std::string phase;
  std::optional<int64_t> exit_code;
  std::string reason;
  json::Json timings = json::Json::object();

  [[nodiscard]] const std::string& aggregateId() const { return instance_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("instance_id", self.instance_id);
    v("node_id", self.node_id);
    v("generation", self.generation);
    v("seq", self.seq);
    v("phase", self.phase);
    v("exit_code", self.exit_code);
    v("reason", self.reason);
    v("timings", self.timings);
  }
};

// instance.stop_requested: The scheduler asked for an immediate stop (a stale copy of a lost
// instance).
struct InstanceStopRequested {
  static constexpr std::string_view kType = "instance.stop_requested";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "instance";

  std::string instance_id;
  std::string reason;

  [[nodiscard]] const std::string& aggregateId() const { return instance_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("instance_id", self.instance_id);
    v("reason", self.reason);
  }
};

// node.enrolled: A node traded an enrollment token for its id, IPv6 /64 and credential.
struct NodeEnrolled {
  static constexpr std::string_view kType = "node.enrolled";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "node";

  std::string node_id;
  std::string enrollment_id;
  std::string hostname;
  int64_t cores = 0;
  int64_t memory_mb = 0;
  int64_t disk_mb = 0;
  std::map<std::string, std::string> labels;
  std::string wireguard_public_key;
  std::string underlay_address;
  std::vector<std::string> runtimes;
  std::string ipv6_prefix;
  // The node's WireGuard UDP port and role ("worker" | "edge"); absent (null)
  // in events written before the mesh: 51820 and "worker".
  std::optional<int64_t> mesh_port;
  std::optional<std::string> role;

  [[nodiscard]] const std::string& aggregateId() const { return node_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("node_id", self.node_id);
    v("enrollment_id", self.enrollment_id);
    v("hostname", self.hostname);
    v("cores", self.cores);
    v("memory_mb", self.memory_mb);
    v("disk_mb", self.disk_mb);
    v("labels", self.labels);
    v("wireguard_public_key", self.wireguard_public_key);
    v("underlay_address", self.underlay_address);
    v("runtimes", self.runtimes);
    v("ipv6_prefix", self.ipv6_prefix);
    v("mesh_port", self.mesh_port);
    v("role", self.role);
  }
};

// node.enrollment_created: A platform admin created a one-time enrollment token. The token and its
// hash are never part of an event.
struct NodeEnrollmentCreated {
  static constexpr std::string_view kType = "node.enrollment_created";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "enrollment";

  std::string enrollment_id;
  std::string expires_at;

  [[nodiscard]] const std::string& aggregateId() const { return enrollment_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("enrollment_id", self.enrollment_id);
    v("expires_at", self.expires_at);
  }
};

// node.mesh_key_rotated: The node switched its mesh traffic to its staged WireGuard key and port
// (POST /v1/nodes/{node_id}/mesh-key, phase current); they are its current ones now.
struct NodeMeshKeyRotated {
  static constexpr std::string_view kType = "node.mesh_key_rotated";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "node";

  std::string node_id;
  std::string public_key;
  int64_t listen_port = 0;
  std::string previous_public_key;

  [[nodiscard]] const std::string& aggregateId() const { return node_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("node_id", self.node_id);
    v("public_key", self.public_key);
    v("listen_port", self.listen_port);
    v("previous_public_key", self.previous_public_key);
  }
};

// node.mesh_key_rotation_requested: A platform admin (`vt nodes rotate-key`) or the key's age
// asked the node to rotate its mesh WireGuard key.
struct NodeMeshKeyRotationRequested {
  static constexpr std::string_view kType = "node.mesh_key_rotation_requested";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "node";

  std::string node_id;
  std::string reason;  // "operator" | "age"

  [[nodiscard]] const std::string& aggregateId() const { return node_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("node_id", self.node_id);
    v("reason", self.reason);
  }
};

// node.mesh_key_staged: The node published the public key and port of its second mesh interface
// (POST /v1/nodes/{node_id}/mesh-key, phase next); its peers add it. Never a private key.
struct NodeMeshKeyStaged {
  static constexpr std::string_view kType = "node.mesh_key_staged";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "node";

  std::string node_id;
  std::string public_key;
  int64_t listen_port = 0;

  [[nodiscard]] const std::string& aggregateId() const { return node_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("node_id", self.node_id);
    v("public_key", self.public_key);
    v("listen_port", self.listen_port);
  }
};

// node.removed: A platform admin removed a node (`vt nodes rm`): its credentials are revoked
// (token.revoked), it is down for good (node.state_changed), and its instances are replaced like
// those of a lost node.
struct NodeRemoved {
  static constexpr std::string_view kType = "node.removed";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "node";

  std::string node_id;
  std::string hostname;
  int64_t revoked_tokens = 0;

  [[nodiscard]] const std::string& aggregateId() const { return node_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("node_id", self.node_id);
    v("hostname", self.hostname);
    v("revoked_tokens", self.revoked_tokens);
  }
};

// node.scheduling_changed: A platform admin cordoned, drained or uncordoned a node.
struct NodeSchedulingChanged {
  static constexpr std::string_view kType = "node.scheduling_changed";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "node";

  std::string node_id;
  bool cordoned = false;
  bool draining = false;

  [[nodiscard]] const std::string& aggregateId() const { return node_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("node_id", self.node_id);
    v("cordoned", self.cordoned);
    v("draining", self.draining);
  }
};

// node.state_changed: A node's liveness changed: heartbeats stopped (unreachable), it stayed away
// (down), or it came back (active).
struct NodeStateChanged {
  static constexpr std::string_view kType = "node.state_changed";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "node";

  std::string node_id;
  std::string from;
  std::string to;
  std::string reason;

  [[nodiscard]] const std::string& aggregateId() const { return node_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("node_id", self.node_id);
    v("from", self.from);
    v("to", self.to);
    v("reason", self.reason);
  }
};

// org.created: An org was created.
struct OrgCreated {
  static constexpr std::string_view kType = "org.created";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "org";

  std::string org_id;
  std::string name;

  [[nodiscard]] const std::string& aggregateId() const { return org_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("org_id", self.org_id);
    v("name", self.name);
  }
};

// org.deleted: An org (with no apps left) was deleted by an owner.
struct OrgDeleted {
  static constexpr std::string_view kType = "org.deleted";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "org";

  std::string org_id;

  [[nodiscard]] const std::string& aggregateId() const { return org_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("org_id", self.org_id);
  }
};

// org.member_added: A user joined an org, or its role in the org changed.
struct OrgMemberAdded {
  static constexpr std::string_view kType = "org.member_added";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "org";

  std::string org_id;
  std::string user_id;
  std::string role;

  [[nodiscard]] const std::string& aggregateId() const { return org_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("org_id", self.org_id);
    v("user_id", self.user_id);
    v("role", self.role);
  }
};

// org.member_removed: A user left an org.
struct OrgMemberRemoved {
  static constexpr std::string_view kType = "org.member_removed";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "org";

  std::string org_id;
  std::string user_id;

  [[nodiscard]] const std::string& aggregateId() const { return org_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("org_id", self.org_id);
    v("user_id", self.user_id);
  }
};

// org.quotas_set: A platform admin set an org's quota overrides; null is the operator's default.
struct OrgQuotasSet {
  static constexpr std::string_view kType = "org.quotas_set";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "org";

  std::string org_id;
  std::optional<int64_t> instances;
  std::optional<int64_t> memory_mb;
  std::optional<int64_t> releases_per_app;
  std::optional<int64_t> routes;
  std::optional<int64_t> secrets_bytes;

  [[nodiscard]] const std::string& aggregateId() const { return org_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("org_id", self.org_id);
    v("instances", self.instances);
    v("memory_mb", self.memory_mb);
    v("releases_per_app", self.releases_per_app);
    v("routes", self.routes);
    v("secrets_bytes", self.secrets_bytes);
  }
};

// registry_credential.fetched: Audit: a node was served the credential for the registry of an
// instance allocated to it (GET /v1/nodes/{node_id}/instances/{instance_id}/registry-credentials).
// Ids only. The envelope's actor is the node.
struct RegistryCredentialFetched {
  static constexpr std::string_view kType = "registry_credential.fetched";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "registry_credential";

  std::string credential_id;
  std::string org_id;
  std::string registry;
  int64_t version = 0;
  std::string instance_id;
  std::string node_id;

  [[nodiscard]] const std::string& aggregateId() const { return credential_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("credential_id", self.credential_id);
    v("org_id", self.org_id);
    v("registry", self.registry);
    v("version", self.version);
    v("instance_id", self.instance_id);
    v("node_id", self.node_id);
  }
};

// registry_credential.removed: An org's credentials for a registry were removed (DELETE
// /v1/orgs/{org_id}/registries/{registry_host}); the sealed material is deleted. Ids, the host and
// the removed version only.
struct RegistryCredentialRemoved {
  static constexpr std::string_view kType = "registry_credential.removed";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "registry_credential";

  std::string credential_id;
  std::string org_id;
  std::string registry;
  int64_t version = 0;

  [[nodiscard]] const std::string& aggregateId() const { return credential_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("credential_id", self.credential_id);
    v("org_id", self.org_id);
    v("registry", self.registry);
    v("version", self.version);
  }
};

// registry_credential.set: An org's credentials for a registry were stored (operation created,
// version 1) or replaced (updated, the next version) with PUT
// /v1/orgs/{org_id}/registries/{registry_host}. Ids, the host and the version only: never the
// username or the secret (sealed in the write-side registry_credentials). See docs/specs/api/v1.md,
// "Registry credentials".
struct RegistryCredentialSet {
  static constexpr std::string_view kType = "registry_credential.set";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "registry_credential";

  std::string credential_id;
  std::string org_id;
  std::string registry;
  int64_t version = 0;
  std::string operation;

  [[nodiscard]] const std::string& aggregateId() const { return credential_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("credential_id", self.credential_id);
    v("org_id", self.org_id);
    v("registry", self.registry);
    v("version", self.version);
    v("operation", self.operation);
  }
};

// release.created: A release pinned an image by digest with a manifest snapshot.
struct ReleaseCreated {
  static constexpr std::string_view kType = "release.created";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "release";

  std::string release_id;
  std::string app_id;
  std::string org_id;
  std::string image_ref;
  std::string image_digest;
  json::Json manifest = json::Json::object();

  [[nodiscard]] const std::string& aggregateId() const { return release_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("release_id", self.release_id);
    v("app_id", self.app_id);
    v("org_id", self.org_id);
    v("image_ref", self.image_ref);
    v("image_digest", self.image_digest);
    v("manifest", self.manifest);
  }
};

// route.created: A route was created: a hostname on a listener port now leads to an env's process
// type.
struct RouteCreated {
  static constexpr std::string_view kType = "route.created";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "route";

  std::string route_id;
  std::string org_id;
  std::string app_id;
  std::string env_id;
  std::string hostname;
  int64_t listener_port = 0;
  std::string protocol;
  std::string process_type;
  int64_t backend_port = 0;
  std::string proxy_protocol;

  [[nodiscard]] const std::string& aggregateId() const { return route_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("route_id", self.route_id);
    v("org_id", self.org_id);
    v("app_id", self.app_id);
    v("env_id", self.env_id);
    v("hostname", self.hostname);
    v("listener_port", self.listener_port);
    v("protocol", self.protocol);
    v("process_type", self.process_type);
    v("backend_port", self.backend_port);
    v("proxy_protocol", self.proxy_protocol);
  }
};

// route.deleted: A route was deleted; its hostname and port are free again.
struct RouteDeleted {
  static constexpr std::string_view kType = "route.deleted";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "route";

  std::string route_id;
  std::string org_id;
  std::string hostname;
  int64_t listener_port = 0;

  [[nodiscard]] const std::string& aggregateId() const { return route_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("route_id", self.route_id);
    v("org_id", self.org_id);
    v("hostname", self.hostname);
    v("listener_port", self.listener_port);
  }
};

// route.updated: A route's target changed; the payload carries the values after the change.
struct RouteUpdated {
  static constexpr std::string_view kType = "route.updated";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "route";

  std::string route_id;
  std::string org_id;
  std::string process_type;
  int64_t backend_port = 0;
  std::string proxy_protocol;

  [[nodiscard]] const std::string& aggregateId() const { return route_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("route_id", self.route_id);
    v("org_id", self.org_id);
    v("process_type", self.process_type);
    v("backend_port", self.backend_port);
    v("proxy_protocol", self.proxy_protocol);
  }
};

// secrets.fetched: Audit: a node fetched the secrets material of an instance allocated to it (GET
// /v1/nodes/{node_id}/instances/{instance_id}/secrets). Ids only. The envelope's actor is the node.
// See docs/specs/secrets/delivery.md.
struct SecretsFetched {
  static constexpr std::string_view kType = "secrets.fetched";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "secret_version";

  std::string version_id;
  std::string env_id;
  std::string instance_id;
  std::string node_id;

  [[nodiscard]] const std::string& aggregateId() const { return version_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("version_id", self.version_id);
    v("env_id", self.env_id);
    v("instance_id", self.instance_id);
    v("node_id", self.node_id);
  }
};

// secrets.version_created: A new immutable version of an env's secret bundle (set, unset or
// import). It carries the version id, key names and the deploy it started, never a value nor a hash
// of one; the sealed material is in the secret_versions table only. See
// docs/specs/state/event-types.md and docs/specs/secrets/bundles.md.
struct SecretsVersionCreated {
  static constexpr std::string_view kType = "secrets.version_created";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "secret_version";

  std::string version_id;
  std::string env_id;
  std::string app_id;
  std::string org_id;
  int64_t number = 0;
  std::string operation;
  std::vector<std::string> keys;
  std::vector<std::string> set_keys;
  std::vector<std::string> unset_keys;
  std::optional<std::string> deploy_id;

  [[nodiscard]] const std::string& aggregateId() const { return version_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("version_id", self.version_id);
    v("env_id", self.env_id);
    v("app_id", self.app_id);
    v("org_id", self.org_id);
    v("number", self.number);
    v("operation", self.operation);
    v("keys", self.keys);
    v("set_keys", self.set_keys);
    v("unset_keys", self.unset_keys);
    v("deploy_id", self.deploy_id);
  }
};

// token.created: A bearer token was issued. The token and its hash are never part of an event.
struct TokenCreated {
  static constexpr std::string_view kType = "token.created";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "token";

  std::string token_id;
  std::string kind;
  std::string subject_id;

  [[nodiscard]] const std::string& aggregateId() const { return token_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("token_id", self.token_id);
    v("kind", self.kind);
    v("subject_id", self.subject_id);
  }
};

// token.revoked: A bearer token was revoked: it authenticates nothing from now on. The token and
// its hash are never part of an event.
struct TokenRevoked {
  static constexpr std::string_view kType = "token.revoked";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "token";

  std::string token_id;
  std::string kind;
  std::string subject_id;

  [[nodiscard]] const std::string& aggregateId() const { return token_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("token_id", self.token_id);
    v("kind", self.kind);
    v("subject_id", self.subject_id);
  }
};

// user.created: A user was created.
struct UserCreated {
  static constexpr std::string_view kType = "user.created";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "user";

  std::string user_id;
  std::string name;
  bool is_admin = false;

  [[nodiscard]] const std::string& aggregateId() const { return user_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("user_id", self.user_id);
    v("name", self.name);
    v("is_admin", self.is_admin);
  }
};
// volume.created: A volume was created for one slot of an env's process, pending until placed on a
// node: by the scheduler when it allocates a slot whose process has [[volumes]] (origin manifest),
// or ahead of a deploy through the API (origin api). See docs/specs/runtime/volume-mounts.md.
struct VolumeCreated {
  static constexpr std::string_view kType = "volume.created";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "volume";

  std::string volume_id;
  std::string org_id;
  std::string app_id;
  std::string env_id;
  std::string process_type;
  std::string name;
  int64_t slot = 0;
  std::string full_name;
  int64_t size_bytes = 0;
  std::string origin;

  [[nodiscard]] const std::string& aggregateId() const { return volume_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("volume_id", self.volume_id);
    v("org_id", self.org_id);
    v("app_id", self.app_id);
    v("env_id", self.env_id);
    v("process_type", self.process_type);
    v("name", self.name);
    v("slot", self.slot);
    v("full_name", self.full_name);
    v("size_bytes", self.size_bytes);
    v("origin", self.origin);
  }
};

// volume.placed: The scheduler chose the node that holds a pending volume (once; only restore or
// fork move data to another node).
struct VolumePlaced {
  static constexpr std::string_view kType = "volume.placed";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "volume";

  std::string volume_id;
  std::string env_id;
  std::string node_id;

  [[nodiscard]] const std::string& aggregateId() const { return volume_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("volume_id", self.volume_id);
    v("env_id", self.env_id);
    v("node_id", self.node_id);
  }
};

// volume.extend_requested: A volume's desired size grew (never shrinks); its node's agent grows
// the file.
struct VolumeExtendRequested {
  static constexpr std::string_view kType = "volume.extend_requested";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "volume";

  std::string volume_id;
  std::string env_id;
  int64_t size_bytes = 0;

  [[nodiscard]] const std::string& aggregateId() const { return volume_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("volume_id", self.volume_id);
    v("env_id", self.env_id);
    v("size_bytes", self.size_bytes);
  }
};

// volume.delete_requested: A placed volume is to be deleted (the API, or its env's deletion); its
// node's agent removes the file once no instance uses it, then reports volume.deleted.
struct VolumeDeleteRequested {
  static constexpr std::string_view kType = "volume.delete_requested";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "volume";

  std::string volume_id;
  std::string env_id;
  std::string reason;

  [[nodiscard]] const std::string& aggregateId() const { return volume_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("volume_id", self.volume_id);
    v("env_id", self.env_id);
    v("reason", self.reason);
  }
};

// volume.status_reported: The node agent reported a volume's file ready at a size, or failed with
// its reason (only when the state or the size changed).
struct VolumeStatusReported {
  static constexpr std::string_view kType = "volume.status_reported";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "volume";

  std::string volume_id;
  std::string node_id;
  std::string state;
  int64_t size_bytes = 0;
  std::string reason;

  [[nodiscard]] const std::string& aggregateId() const { return volume_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("volume_id", self.volume_id);
    v("node_id", self.node_id);
    v("state", self.state);
    v("size_bytes", self.size_bytes);
    v("reason", self.reason);
  }
};

// volume.deleted: A volume is gone: its node's agent removed the file, or it was never placed
// (node_id null).
struct VolumeDeleted {
  static constexpr std::string_view kType = "volume.deleted";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "volume";

  std::string volume_id;
  std::optional<std::string> node_id;

  [[nodiscard]] const std::string& aggregateId() const { return volume_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("volume_id", self.volume_id);
    v("node_id", self.node_id);
  }
};

// volume.snapshot_requested: A user asked for a snapshot of a volume; its node takes it
// (NodePlan.volume_ops). See docs/specs/runtime/volume-mounts.md, "Contracts for snapshots".
struct VolumeSnapshotRequested {
  static constexpr std::string_view kType = "volume.snapshot_requested";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "volume";

  std::string snapshot_id;
  std::string volume_id;
  std::string env_id;
  std::string node_id;
  bool freeze = false;

  [[nodiscard]] const std::string& aggregateId() const { return volume_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("snapshot_id", self.snapshot_id);
    v("volume_id", self.volume_id);
    v("env_id", self.env_id);
    v("node_id", self.node_id);
    v("freeze", self.freeze);
  }
};

// volume.snapshot_taken: A node took a snapshot of a volume (requested through the API, or on its
// own schedule: origin schedule) and holds its file.
struct VolumeSnapshotTaken {
  static constexpr std::string_view kType = "volume.snapshot_taken";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "volume";

  std::string snapshot_id;
  std::string volume_id;
  std::string env_id;
  std::string node_id;
  std::string origin;
  std::string method;
  bool consistent = false;
  int64_t freeze_ms = 0;
  int64_t size_bytes = 0;
  std::string sha256;
  std::string taken_at;

  [[nodiscard]] const std::string& aggregateId() const { return volume_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("snapshot_id", self.snapshot_id);
    v("volume_id", self.volume_id);
    v("env_id", self.env_id);
    v("node_id", self.node_id);
    v("origin", self.origin);
    v("method", self.method);
    v("consistent", self.consistent);
    v("freeze_ms", self.freeze_ms);
    v("size_bytes", self.size_bytes);
    v("sha256", self.sha256);
    v("taken_at", self.taken_at);
  }
};

// volume.snapshot_failed: A node could not take a requested snapshot (reason: the agent's words).
struct VolumeSnapshotFailed {
  static constexpr std::string_view kType = "volume.snapshot_failed";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "volume";

  std::string snapshot_id;
  std::string volume_id;
  std::string node_id;
  std::string reason;

  [[nodiscard]] const std::string& aggregateId() const { return volume_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("snapshot_id", self.snapshot_id);
    v("volume_id", self.volume_id);
    v("node_id", self.node_id);
    v("reason", self.reason);
  }
};

// volume.backed_up: A node shipped a taken snapshot to its backup repository (backup_id: restic's
// snapshot id).
struct VolumeBackedUp {
  static constexpr std::string_view kType = "volume.backed_up";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "volume";

  std::string snapshot_id;
  std::string volume_id;
  std::string node_id;
  std::string backup_id;
  int64_t bytes_added = 0;
  int64_t duration_ms = 0;

  [[nodiscard]] const std::string& aggregateId() const { return volume_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("snapshot_id", self.snapshot_id);
    v("volume_id", self.volume_id);
    v("node_id", self.node_id);
    v("backup_id", self.backup_id);
    v("bytes_added", self.bytes_added);
    v("duration_ms", self.duration_ms);
  }
};

// volume.snapshot_expired: A node removed a snapshot's local file (local) or forgot its backup in
// the repository (backup): what is gone now.
struct VolumeSnapshotExpired {
  static constexpr std::string_view kType = "volume.snapshot_expired";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "volume";

  std::string snapshot_id;
  std::string volume_id;
  std::string node_id;
  bool local = false;
  bool backup = false;

  [[nodiscard]] const std::string& aggregateId() const { return volume_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("snapshot_id", self.snapshot_id);
    v("volume_id", self.volume_id);
    v("node_id", self.node_id);
    v("local", self.local);
    v("backup", self.backup);
  }
};

// volume.restore_requested: A restore of a snapshot into a volume (a new one, or in place) was
// requested; the volume is restoring until its node reports volume.restored.
struct VolumeRestoreRequested {
  static constexpr std::string_view kType = "volume.restore_requested";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "volume";

  std::string op_id;
  std::string volume_id;
  std::string source_volume_id;
  std::string snapshot_id;
  std::string node_id;
  std::string source;
  bool in_place = false;

  [[nodiscard]] const std::string& aggregateId() const { return volume_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("op_id", self.op_id);
    v("volume_id", self.volume_id);
    v("source_volume_id", self.source_volume_id);
    v("snapshot_id", self.snapshot_id);
    v("node_id", self.node_id);
    v("source", self.source);
    v("in_place", self.in_place);
  }
};

// volume.restored: A node finished a restore op: ok, or failed with its reason (the file of an
// in-place restore is then untouched).
struct VolumeRestored {
  static constexpr std::string_view kType = "volume.restored";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "volume";

  std::string op_id;
  std::string volume_id;
  std::string node_id;
  bool ok = false;
  std::string reason;
  std::string sha256;

  [[nodiscard]] const std::string& aggregateId() const { return volume_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("op_id", self.op_id);
    v("volume_id", self.volume_id);
    v("node_id", self.node_id);
    v("ok", self.ok);
    v("reason", self.reason);
    v("sha256", self.sha256);
  }
};

// volume.verify_requested: A restore drill of a backed-up snapshot was requested; the volume's node
// runs it.
struct VolumeVerifyRequested {
  static constexpr std::string_view kType = "volume.verify_requested";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "volume";

  std::string op_id;
  std::string volume_id;
  std::string snapshot_id;
  std::string node_id;

  [[nodiscard]] const std::string& aggregateId() const { return volume_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("op_id", self.op_id);
    v("volume_id", self.volume_id);
    v("snapshot_id", self.snapshot_id);
    v("node_id", self.node_id);
  }
};

// volume.verified: A node ran a restore drill (requested, or its daily one: origin schedule): the
// backup restored, its sha256 matched and e2fsck passed (ok), or why not.
struct VolumeVerified {
  static constexpr std::string_view kType = "volume.verified";
  static constexpr int kVersion = 1;
  static constexpr std::string_view kAggregate = "volume";

  std::string op_id;
  std::string volume_id;
  std::string snapshot_id;
  std::string node_id;
  std::string origin;
  bool ok = false;
  std::string reason;
  int64_t duration_ms = 0;

  [[nodiscard]] const std::string& aggregateId() const { return volume_id; }
  template <class Self, class V>
  static void visit(Self& self, V&& v) {
    v("op_id", self.op_id);
    v("volume_id", self.volume_id);
    v("snapshot_id", self.snapshot_id);
    v("node_id", self.node_id);
    v("origin", self.origin);
    v("ok", self.ok);
    v("reason", self.reason);
    v("duration_ms", self.duration_ms);
  }
};
// Every event struct, for the explicit instantiations in events.cc and for
// tests that walk all types.
#define PLFM_EVENTS_FOR_EACH(X)   \
  X(AppCreated)                   \
  X(AppDeleted)                   \
  X(DeployCreated)                \
  X(DeployRollbackCreated)        \
  X(DeployStatusChanged)          \
  X(DomainCreated)                \
  X(DomainDeleted)                \
  X(DomainVerified)               \
  X(EnvCreated)                   \
  X(EnvDeleted)                   \
  X(EnvScaleSet)                  \
  X(ExecEnded)                    \
  X(ExecStarted)                  \
  X(InstanceAllocated)            \
  X(InstanceDrainReleased)        \
  X(InstanceDrainRequested)       \
  X(InstanceLost)                 \
  X(InstanceRestartScheduled)     \
  X(InstanceStatusReported)       \
  X(InstanceStopRequested)        \
  X(NodeEnrolled)                 \
  X(NodeEnrollmentCreated)        \
  X(NodeMeshKeyRotated)           \
  X(NodeMeshKeyRotationRequested) \
  X(NodeMeshKeyStaged)            \
  X(NodeRemoved)                  \
  X(NodeSchedulingChanged)        \
  X(NodeStateChanged)             \
  X(OrgCreated)                   \
  X(OrgDeleted)                   \
  X(OrgMemberAdded)               \
  X(OrgMemberRemoved)             \
  X(OrgQuotasSet)                 \
  X(RegistryCredentialFetched)    \
  X(RegistryCredentialRemoved)    \
  X(RegistryCredentialSet)        \
  X(ReleaseCreated)               \
  X(RouteCreated)                 \
  X(RouteDeleted)                 \
  X(RouteUpdated)                 \
  X(SecretsFetched)               \
  X(SecretsVersionCreated)        \
  X(TokenCreated)                 \
  X(TokenRevoked)                 \
  X(UserCreated)                  \
  X(VolumeBackedUp)               \
  X(VolumeCreated)                \
  X(VolumeDeleteRequested)        \
  X(VolumeDeleted)                \
  X(VolumeExtendRequested)        \
  X(VolumePlaced)                 \
  X(VolumeRestoreRequested)       \
  X(VolumeRestored)               \
  X(VolumeSnapshotExpired)        \
  X(VolumeSnapshotFailed)         \
  X(VolumeSnapshotRequested)      \
  X(VolumeSnapshotTaken)          \
  X(VolumeStatusReported)         \
  X(VolumeVerified)               \
  X(VolumeVerifyRequested)

// The payload as JSON / as compact JSON text with sorted keys.
template <class T>
[[nodiscard]] json::Json toJson(const T& event);
template <class T>
[[nodiscard]] std::string toPayload(const T& event);

// Reads a payload: fails with the first field that is missing or mistyped
// ("payload.app_id must be a string"). A nullable field may also be absent
// (read as null): the log holds events written before it was added. Unknown
// fields are ignored, as readers of a newer writer's events must.
template <class T>
[[nodiscard]] Result<T> fromPayload(const json::Json& payload);

// The event to append: `aggregate_seq` is the aggregate's version after it,
// `org_id` the envelope's org (empty when not org-scoped).
template <class T>
[[nodiscard]] NewEvent toNewEvent(const T& event, int aggregate_seq, std::string org_id,
                                  std::string correlation = "{}") {
  return NewEvent{std::string(T::kAggregate), event.aggregateId(),   aggregate_seq,
                  std::string(T::kType),      T::kVersion,           std::move(org_id),
                  toPayload(event),           std::move(correlation)};
}

// One row per event type, for tests and tools that walk all of them.
struct TypeInfo {
  std::string_view type;
  int version;
  std::string_view aggregate;
  // fromPayload then toPayload: the payload as this struct reads and writes it.
  Result<std::string> (*roundTrip)(const json::Json& payload);
};
[[nodiscard]] const std::vector<TypeInfo>& allTypes();

}  // namespace plfm::events
