// The control plane's HTTP API: shared machinery for every resource file
// (api_*.cc). A handler parses the request into typed values, checks access,
// then either reads views or runs a mutation through runMutation(), which
// provides idempotency, event append and read-your-writes in one place.
// See docs/specs/api/v1.md and docs/specs/api/idempotency.md.
#pragma once

#include <chrono>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "auth.h"
#include "event_store.h"
#include "group_commit.h"
#include "plfm/core/clock.h"
#include "plfm/core/json.h"
#include "plfm/core/metrics.h"
#include "plfm/http/http.h"
#include "plfm/http/websocket.h"
#include "plfm/pg/pool.h"
#include "plfm/relay_auth/relay_auth.h"
#include "projections.h"
#include "quotas.h"

namespace plfm::cp {

namespace apierr {
inline constexpr std::string_view kInvalidJson = "invalid_json";
inline constexpr std::string_view kUnknownField = "unknown_field";
inline constexpr std::string_view kInvalidField = "invalid_field";
inline constexpr std::string_view kInvalidId = "invalid_id";
inline constexpr std::string_view kInvalidQuery = "invalid_query";
inline constexpr std::string_view kKeyRequired = "idempotency_key_required";
inline constexpr std::string_view kKeyInvalid = "idempotency_key_invalid";
inline constexpr std::string_view kKeyReused = "idempotency_key_reused";
inline constexpr std::string_view kKeyInProgress = "idempotency_in_progress";
// A route's (listener port, hostname) is taken, in any org (api_routes.cc).
inline constexpr std::string_view kHostnameConflict = "hostname_conflict";
// A mutation would take an org over one of its quotas (quotas.h).
inline constexpr std::string_view kQuotaExceeded = kQuotaExceededCode;
// An org holds max_log_followers_per_org `logs?follow=true` requests (429).
inline constexpr std::string_view kTooManyLogFollowers = "too_many_log_followers";
// An org holds max_exec_sessions_per_org exec sessions (429).
inline constexpr std::string_view kTooManyExecSessions = "too_many_exec_sessions";
// An extend asks for a size no larger than the volume's (422, api_volumes.cc).
inline constexpr std::string_view kVolumeNotGrown = "volume_not_grown";
}  // namespace apierr

struct ApiOptions {
  std::chrono::milliseconds read_your_writes_wait{2000};
  // How long a request waits for the scheduler to react (Scheduler::waitSettled).
  std::chrono::milliseconds scheduler_wait{2000};
  std::chrono::milliseconds db_acquire_timeout{5000};
  // How long a request waits for an authentication connection (DbLane::auth)
  // before it gets 503: short, so a flood cannot queue the API behind it.
  std::chrono::milliseconds auth_acquire_timeout{1000};
  std::chrono::seconds max_long_poll{60};
  std::chrono::seconds default_plan_wait{30};
  std::chrono::seconds idempotency_lock_timeout{10};
  std::string cluster_ipv6_prefix = "fd7a:5c00::/48";
  std::chrono::seconds heartbeat_interval{10};  // told to agents
  std::chrono::seconds heartbeat_timeout{30};   // told to agents
  std::chrono::seconds max_enrollment_ttl{86'400};
  // How long after its first use an enrollment token may be retried (the
  // agent lost the answer), as long as the node's credential is unused.
  std::chrono::seconds enrollment_retry_window{10};
  std::chrono::seconds max_edge_wait{30};  // the edge feed's long-poll cap
  // Domain ownership proofs (api_domains.cc): the DNS server TXT challenges
  // are checked against ("" refuses verification) and its timeout, and the
  // public suffix list wildcard routes are checked against.
  std::string dns_resolver;
  std::chrono::seconds dns_timeout{2};
  std::string public_suffix_file = "/usr/share/publicsuffix/public_suffix_list.dat";
  QuotaLimits quotas{};                // the operator's per-org defaults
  int max_log_followers_per_org = 8;   // concurrent logs?follow=true per org
  int max_exec_sessions_per_org = 32;  // open exec sessions (GET /v1/exec) per org
};

class Scheduler;
class PlanFeed;
class VersionFeed;
namespace crypto {
class Keyring;
}
class FollowerSlots;
struct ExecSessionStart;  // api_exec.cc

// The database budget of one class of traffic. A request first looks up
// its credential on an `auth` connection (held only for that lookup, with
// a short wait), and takes a `handlers` connection only once it is
// authenticated. Users and nodes (agents and the edge) have lanes of their
// own, so neither an unauthenticated flood nor one user's slow requests can
// take the connections that heartbeats and plan polls need.
struct DbLane {
  pg::Pool* handlers = nullptr;  // nullptr: ApiDeps::pool
  pg::Pool* auth = nullptr;      // nullptr: the lane's handlers pool
};

struct ApiDeps {
  pg::Pool& pool;
  EventStore& store;
  ProjectionWorker& worker;
  const Clock& clock;
  metrics::Registry& metrics;
  ApiOptions options;
  Scheduler* scheduler;                // nullptr: nothing schedules in this process
  PlanFeed* plans;                     // nullptr: plan long-polls wait on any view change
  VersionFeed* edge = nullptr;         // nullptr: edge long-polls wait on any view change
  crypto::Keyring* keyring = nullptr;  // nullptr: secrets are disabled (503)
  DbLane user_lane = {};               // every route but the node traffic below
  DbLane node_lane = {};               // Access::kNode, kEnroll and kEdge routes
  // Signs log relay requests to agents; nullptr: the relay has no agent to
  // ask (every instance is listed as unavailable).
  const relay::SigningKey* relay_key = nullptr;
  // nullptr: services long-polls wait on any view change.
  VersionFeed* services = nullptr;
};

// Per-request state handed to handlers.
struct Ctx {
  http::Request& req;
  std::string request_id;
  Principal who;                         // empty kind for public routes
  std::optional<pg::Pool::Lease> lease;  // released by long-polls while they wait
  pg::Pool* pool = nullptr;              // the lane's handlers pool, for `lease`

  pg::Connection& db() { return **lease; }
  [[nodiscard]] AppendContext appendContext() const { return {who.id, request_id}; }
};

// What a mutation produces inside its transaction.
struct Mutation {
  int status = 201;
  json::Json body;                        // the response
  std::vector<NewEvent> events;           // appended last, in the same transaction
  std::optional<json::Json> replay_body;  // saved instead of `body` (credentials redacted)
  // Also wait for the scheduler's reaction before answering (the change
  // affects desired state: deploys, scale, nodes).
  bool settle = false;
  std::string actor{};  // the events' actor when not the caller (enrollment: the new node)
  // Called on `body` once the events are appended (runMutation only), for an
  // answer that shows their time (a mesh key's key_since).
  std::function<void(json::Json& body, const AppendResult& appended)> stamp{};
};

using MutationFn = std::function<Result<Mutation>(pg::Transaction&)>;

// A 201 that shows a new credential once: `body` gets "token_redacted":
// false, and the replay saved for the Idempotency-Key has "token" null and
// "token_redacted" true, so a retry never sees the credential again.
[[nodiscard]] Mutation showTokenOnce(json::Json body, std::vector<NewEvent> events);

// kNode: a node credential, for the node named by the {node_id} path
// parameter only. kEnroll: the handler checks an enrollment token itself.
// kEdge: an edge credential (the ingress).
// kExecTicket: no bearer token; the handler consumes an exec ticket itself
// (GET /v1/exec, api_exec.cc). Served on the user listener only.
enum class Access { kPublic, kUser, kAdmin, kNode, kEnroll, kEdge, kExecTicket };

// The routes of node agents and the edge: served on the node listener when
// there is one (and only there), and on the node DbLane.
[[nodiscard]] constexpr bool isNodeTraffic(Access a) {
  return a == Access::kNode || a == Access::kEnroll || a == Access::kEdge;
}

class Api;

// One row of a resource's route table (api_routes.cc is the pattern): the
// handler is a named function, so the table reads as the resource's list of
// routes and Api::addRoutes() registers it exactly as route() would.
struct RouteSpec {
  std::string_view method;
  std::string_view pattern;
  Access access;
  Result<http::Response> (*handler)(Api& api, Ctx& ctx);
};

class Api {
 public:
  explicit Api(ApiDeps deps);

  // Registers every route of API v1 on `router`. With `node_router`, node
  // and edge routes (isNodeTraffic) go there instead, and public ones
  // (/healthz, /metrics) go to both.
  void registerRoutes(http::Router& router, http::Router* node_router = nullptr);

  // The server's handler: assigns the request id, dispatches, and makes sure
  // even router-level errors (404/405) carry X-Request-Id.
  http::Response handle(http::Request& req, const http::Router& router);

  // ---- for the resource files ----
  using Handler = std::function<Result<http::Response>(Ctx&)>;
  void route(http::Router& r, std::string method, std::string pattern, Access access, Handler h);
  // route() for each row of `table`, in order.
  void addRoutes(http::Router& r, std::span<const RouteSpec> table);

  // `request_hash` replaces the default SHA-256 of the request in the
  // idempotency record (secrets mutations pass a keyed MAC: no plain hash
  // of a secret value is stored anywhere).
  [[nodiscard]] Result<http::Response> runMutation(
      Ctx& ctx, const MutationFn& fn,
      const std::optional<std::string>& request_hash = std::nullopt);

  // A write whose route is idempotent by its own contract (enrollment by
  // token, heartbeats, status reports by (instance, generation, seq)), so it
  // takes no Idempotency-Key: runs `fn` in a transaction (retried on
  // conflicts), appends its events and answers with read-your-writes.
  [[nodiscard]] Result<http::Response> runWrite(Ctx& ctx, const MutationFn& fn);

  // For reads of what the scheduler derives (instances, deploys, nodes):
  // waits, bounded and without holding a connection, until the scheduler
  // has reacted to everything the views hold now.
  [[nodiscard]] Result<void> awaitScheduler(Ctx& ctx);

  // Takes a handlers connection of the request's lane again (after a
  // long-poll gave its lease back).
  [[nodiscard]] Result<void> reacquire(Ctx& ctx);
  // A node's long-poll (api_agent.cc): waits until `version` is above
  // `after`, the `wait` query parameter's seconds pass or `feed` stops,
  // without holding a connection, rechecking the credential after each wait.
  // `feed` nullptr: wakes on any view change.
  [[nodiscard]] Result<void> awaitNodeVersion(Ctx& ctx, int64_t after, VersionFeed* feed,
                                              const std::string& key,
                                              const std::function<Result<int64_t>()>& version);

  [[nodiscard]] ApiDeps& deps() { return deps_; }
  // "ed25519:<hex>", told to agents at enrollment and in heartbeats; "" when
  // this control plane has no relay key.
  [[nodiscard]] std::string relayPublicKey() const;

  // Takes the org's write lock inside a mutation (lockOrg in quotas.h:
  // serialized per org, views current for it) and returns its limits.
  [[nodiscard]] Result<QuotaLimits> lockOrgQuotas(pg::Transaction& tx, const std::string& org_id);

  // The last `lines` log lines of one instance (api_logs.cc), relayed from
  // its node's agent as GET /v1/envs/{env_id}/logs?instance=ID&tail=N relays
  // them: {"items": [log line...], "unavailable": null or why they could not
  // be read}. Gives the request's database connection back first.
  [[nodiscard]] Result<json::Json> instanceLogTail(Ctx& ctx, const std::string& instance_id,
                                                   size_t lines);

 private:
  void registerOrgRoutes(http::Router& r);
  void registerAppRoutes(http::Router& r);
  void registerReleaseRoutes(http::Router& r);
  void registerSystemRoutes(http::Router& r);
  void registerNodeRoutes(http::Router& r);
  void registerAgentRoutes(http::Router& r);
  void registerAgentVolumeRoutes(http::Router& r);     // api_agent_volumes.cc
  void registerMeshKeyRoutes(http::Router& r);         // api_mesh_key.cc
  void registerRouteRoutes(http::Router& r);           // api_routes.cc
  void registerEdgeRoutes(http::Router& r);            // api_edge.cc
  void registerSecretRoutes(http::Router& r);          // api_secrets.cc
  void registerLogRoutes(http::Router& r);             // api_logs.cc
  void registerTokenRoutes(http::Router& r);           // api_tokens.cc
  void registerRegistryRoutes(http::Router& r);        // api_registries.cc
  void registerDomainRoutes(http::Router& r);          // api_domains.cc
  void registerQuotaRoutes(http::Router& r);           // api_quotas.cc
  void registerInstanceRoutes(http::Router& r);        // api_instances.cc
  void registerExecRoutes(http::Router& r);            // api_exec.cc
  void registerVolumeRoutes(http::Router& r);          // api_volumes.cc
  void registerVolumeSnapshotRoutes(http::Router& r);  // api_volumes.cc

  // An exec session after its upgrade, on the connection's thread
  // (api_exec.cc), and the audit events it appends on its own.
  void runExecSession(http::WebSocket& client, const ExecSessionStart& start);
  void appendExecEvents(const std::string& actor, const std::string& request_id,
                        const std::vector<NewEvent>& events);

  // The answer of a committed write: waits for the views (and the scheduler
  // when `settle`), then the saved status and body, or 202.
  http::Response finishWrite(Ctx& ctx, int status, const std::string& body, int64_t seq,
                             bool settle);

  // Authenticates the caller for `access` on the lane's auth pool, before
  // any handlers connection is taken.
  [[nodiscard]] Result<void> authorize(Ctx& ctx, Access access, const DbLane& lane);
  [[nodiscard]] DbLane laneFor(Access access) const;

  ApiDeps deps_;
  http::Router* node_router_ = nullptr;
  metrics::Counter& requests_;
  metrics::Histogram& latency_;
  metrics::Counter& mutations_;
  metrics::Counter& replays_;
  metrics::Counter& rw_timeouts_;
  // Runs runMutation's commands in shared transactions (api_mutation.cc).
  std::unique_ptr<GroupCommitter> committer_;
  std::shared_ptr<FollowerSlots> followers_;      // api_logs.cc
  std::shared_ptr<FollowerSlots> exec_sessions_;  // api_exec.cc
};

// ---- request parsing helpers (each error names the field) ----

// Parses the body as a JSON object and rejects fields not in `allowed`.
[[nodiscard]] Result<json::Json> parseBody(const http::Request& req,
                                           std::initializer_list<std::string_view> allowed);
// parseBody() for bodies that carry secrets: an unknown field is named
// only when it looks like a field name ([a-z_], at most 32 bytes), so a
// secret pasted as a JSON key never comes back in the error.
[[nodiscard]] Result<json::Json> parseSecretBody(const http::Request& req,
                                                 std::initializer_list<std::string_view> allowed);
// invalid_field: "field '<field>' <why>", with details.field.
[[nodiscard]] Error invalidField(std::string_view field, const std::string& why);
[[nodiscard]] Result<std::string> requireString(const json::Json& body, std::string_view field);
[[nodiscard]] Result<std::optional<std::string>> optionalString(const json::Json& body,
                                                                std::string_view field);
// Names: 1-63 of [a-z0-9-], starting with a letter, not ending with '-'.
[[nodiscard]] Result<void> checkName(std::string_view field, std::string_view value);
// Process types: [a-z][a-z0-9-]{0,29}.
[[nodiscard]] bool validProcessName(std::string_view p);

// POST /v1/envs/{env_id}/volumes, parsed (api_volumes.cc): names and size
// by the manifest's volume rules, so `full_name` ("<name>-<slot>") is always
// a name of at most 63 characters. Pure, for the request fuzzer.
struct CreateVolume {
  std::string process;
  std::string name;
  int64_t slot = 0;
  uint64_t size_bytes = 0;
  std::string full_name;
};
[[nodiscard]] Result<CreateVolume> parseCreateVolume(const http::Request& req);

// PUT /v1/edge/status, parsed (api_edge.cc): addresses in canonical form.
struct EdgeStatus {
  struct Backend {
    std::string address;
    int port = 0;
    int64_t active = 0;
  };
  int64_t cursor = 0;
  std::vector<Backend> draining;
};
inline constexpr size_t kMaxEdgeStatusBackends = 10'000;
[[nodiscard]] Result<EdgeStatus> parseEdgeStatus(const json::Json& body);

template <class Id>
[[nodiscard]] Result<Id> pathId(const http::Request& req, std::string_view param) {
  auto id = Id::parse(req.param(param));
  if (!id) {
    return Error(apierr::kInvalidId, id.error().message()).with("field", std::string(param));
  }
  return id;
}

template <class Id>
[[nodiscard]] Result<Id> bodyId(const json::Json& body, std::string_view field) {
  PLFM_ASSIGN_OR_RETURN(auto s, requireString(body, field));
  auto id = Id::parse(s);
  if (!id) {
    return Error(apierr::kInvalidField, id.error().message()).with("field", std::string(field));
  }
  return id;
}

// ?name=N within lo..hi, `def` when absent; invalid_query otherwise.
[[nodiscard]] Result<int64_t> queryInt(const http::Request& req, std::string_view name, int64_t def,
                                       int64_t lo, int64_t hi);

struct Page {
  int limit = 50;
  std::optional<std::string> cursor;  // the last id of the previous page
};
// ?limit=1..200 and ?cursor=<id with this prefix>.
[[nodiscard]] Result<Page> parsePage(const http::Request& req, std::string_view id_prefix);

// Runs `sql` (which must end with "ORDER BY <id> LIMIT $n") and wraps the rows
// as {"items": [...], "next_cursor": ...}. `params` must leave room: the
// helper appends the cursor condition value and the limit.
[[nodiscard]] json::Json rowsToJson(const pg::ResultSet& rs);
[[nodiscard]] json::Json rowToJson(const pg::ResultSet& rs, int row);
[[nodiscard]] json::Json pageJson(const pg::ResultSet& rs, const Page& page);

[[nodiscard]] http::Response jsonResponse(int status, const json::Json& body);

// One page of the rows of `table` whose `parent_col` is `parent_id`, in
// `id_col` order (ids are time-sortable, so creation order), as
// {"items": [...], "next_cursor": ...}. Names are code constants, never input.
[[nodiscard]] Result<http::Response> listChildren(Ctx& ctx, const std::string& columns,
                                                  const std::string& table,
                                                  const std::string& id_col,
                                                  const std::string& parent_col,
                                                  const std::string& parent_id, const Page& page);

// The columns of an instance as the API shows it (api_releases.cc): the
// `Instance` schema, selected from instances_view.
[[nodiscard]] const std::string& instanceColumns();

// SQL for an RFC 3339 UTC timestamp with microseconds, from a timestamptz.
inline std::string ts(std::string_view col) {
  return "to_char(" + std::string(col) + R"( AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))";
}

// The next aggregate_seq for `aggregate_id`, read from the log itself (the
// write-side truth; views may lag).
[[nodiscard]] Result<int> nextAggregateSeq(pg::Transaction& tx, std::string_view aggregate_id);

// Reserves `name` in `scope` within the transaction; already_exists if taken.
[[nodiscard]] Result<void> reserveName(pg::Transaction& tx, const std::string& scope,
                                       const std::string& name, const std::string& owner_id,
                                       std::string_view what);
[[nodiscard]] Result<void> releaseName(pg::Transaction& tx, const std::string& scope,
                                       const std::string& owner_id);

// Runs `select_sql` (one row by $1 = id, with an org_id column) and returns
// the row if the caller is a member of its org; otherwise not_found naming
// `what`, the same whether the row is missing or in another org.
[[nodiscard]] Result<json::Json> visibleRow(Ctx& ctx, const std::string& select_sql,
                                            const std::string& id, const std::string& what);

// An app or env the caller may see (a member of its org); not_found
// otherwise, indistinguishable from a missing one. Returns its JSON.
[[nodiscard]] Result<json::Json> visibleApp(Ctx& ctx, const AppId& app);
[[nodiscard]] Result<json::Json> visibleEnv(Ctx& ctx, const EnvId& env);

// permission_denied unless the caller is an owner of `org_id` (members may
// deploy but not delete apps or envs, nor change members). The error names
// the caller's role.
[[nodiscard]] Result<void> requireOwner(Ctx& ctx, const std::string& org_id);

// Completes an error the HTTP layer wrote on its own (413, malformed
// request, handler exception): a fresh request id in the header and in the
// envelope, and an empty details object.
void stampServerError(http::Response& resp);
// Puts `rid` into an error envelope's request_id (and an empty details
// object where there is none) and into the X-Request-Id header.
void completeEnvelope(http::Response& resp, const std::string& rid);

// HTTP status for an error code.
[[nodiscard]] int statusFor(std::string_view code);
[[nodiscard]] http::Response errorResponse(const Error& e, const std::string& request_id);

}  // namespace plfm::cp
