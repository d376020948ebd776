// GET /v1/envs/{env_id}/logs: the log relay (docs/specs/runtime/logs.md).
// The control plane keeps no log lines: it asks the agent of every instance
// of the env (recently stopped ones too, while their node keeps the files)
// for its lines after the caller's cursor, merges them in timestamp order and
// answers with a new cursor. `follow=true` holds the request (polling the
// agents, with no database connection held) until a line arrives or `wait`
// runs out; `vt logs -f` loops on it.
#include <future>
#include <thread>

#include "api.h"
#include "log_relay.h"

namespace plfm::cp {
namespace {

constexpr int kMaxInstances = 50;
constexpr auto kAgentTimeout = std::chrono::seconds(5);
constexpr auto kFollowPoll = std::chrono::milliseconds(500);
// An agent's page is at most `limit` lines of at most 64 KiB each; anything
// bigger is refused rather than merged.
constexpr size_t kMaxAgentPageBytes = size_t{8} << 20;

struct Target {
  std::string instance_id;
  std::string process_type;
  std::string node_id;
  std::string agent_url;
  std::string relay_key;
};

struct Fetched {
  std::optional<InstancePage> page;
  std::string error;  // why the agent could not be read
};

Fetched fetchOne(const Target& t, const InstanceCursor& after, size_t limit, bool tail) {
  Fetched f;
  if (t.agent_url.empty() || t.relay_key.empty()) {
    f.error = "node " + t.node_id + " reported no agent log endpoint (agent --listen)";
    return f;
  }
  http::ClientRequest req;
  req.url = t.agent_url + "/v1/instances/" + t.instance_id +
            "/logs?limit=" + std::to_string(limit) + (tail ? "&tail=1" : "") +
            "&skip=" + std::to_string(after.skip) + (after.ts.empty() ? "" : "&after=" + after.ts);
  req.headers.set("Authorization", "Bearer " + t.relay_key);
  req.timeout = kAgentTimeout;
  // Control plane -> agent relays are not encrypted yet (docs/security.md,
  // "Control plane: TLS"); agents listen on their node's address, so opt in
  // to plain HTTP here explicitly rather than fail every multi-node relay.
  req.tls.unsafe_allow_plain_http = true;
  auto resp = http::request(req);
  if (!resp) {
    f.error = "agent of node " + t.node_id + " unreachable: " + resp.error().message();
    return f;
  }
  if (resp->status != 200) {
    f.error = "agent of node " + t.node_id + " answered " + std::to_string(resp->status);
    return f;
  }
  if (resp->body.size() > kMaxAgentPageBytes) {
    f.error = "agent of node " + t.node_id + " answered more than 8 MiB";
    return f;
  }
  auto j = json::parse(resp->body);
  if (!j || !j->is_object() || !(*j)["lines"].is_array()) {
    f.error = "agent of node " + t.node_id + " answered something that is not a log page";
    return f;
  }
  InstancePage p;
  p.instance_id = t.instance_id;
  p.process_type = t.process_type;
  p.start = after;
  if ((*j)["lines"].size() > limit) {
    f.error = "agent of node " + t.node_id + " answered more lines than asked for";
    return f;
  }
  for (auto& l : (*j)["lines"]) p.lines.push_back(std::move(l));
  const auto& next = (*j)["next"];
  p.next = after;
  // The agent's cursor goes back into a URL: only the agent's ts form.
  if (next.is_object() && next.value("after", json::Json()).is_string() &&
      validCursorTs(next["after"].get<std::string>()) &&
      next.value("skip", json::Json()).is_number_integer() && next["skip"].get<int64_t>() >= 0) {
    p.next = InstanceCursor{next["after"].get<std::string>(), next["skip"].get<int64_t>()};
  }
  f.page = std::move(p);
  return f;
}

}  // namespace

void Api::registerLogRoutes(http::Router& r) {
  route(r, "GET", "/v1/envs/{env_id}/logs", Access::kUser,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto env, pathId<EnvId>(ctx.req, "env_id"));
          PLFM_ASSIGN_OR_RETURN(auto e, visibleEnv(ctx, env));
          (void)e;
          const std::string process(ctx.req.queryParam("process").value_or(""));
          if (!process.empty() && !validProcessName(process)) {
            return Error(apierr::kInvalidQuery, "query parameter 'process' is not a process type")
                .with("field", "process");
          }
          const std::string instance(ctx.req.queryParam("instance").value_or(""));
          if (!instance.empty() && !InstanceId::parse(instance)) {
            return Error(apierr::kInvalidQuery, "query parameter 'instance' is not an instance id")
                .with("field", "instance");
          }
          PLFM_ASSIGN_OR_RETURN(auto cursor,
                                decodeCursor(ctx.req.queryParam("cursor").value_or("")));
          PLFM_ASSIGN_OR_RETURN(
              auto since, parseSince(ctx.req.queryParam("since").value_or(""), deps_.clock.now()));
          PLFM_ASSIGN_OR_RETURN(int64_t tail_n, queryInt(ctx.req, "tail", 0, 0, 5000));
          PLFM_ASSIGN_OR_RETURN(int64_t limit, queryInt(ctx.req, "limit", 1000, 1, 5000));
          const std::string follow(ctx.req.queryParam("follow").value_or("false"));
          if (follow != "true" && follow != "false") {
            return Error(apierr::kInvalidQuery, "query parameter 'follow' must be true or false")
                .with("field", "follow");
          }
          PLFM_ASSIGN_OR_RETURN(
              int64_t wait, queryInt(ctx.req, "wait", 20, 0, deps_.options.max_long_poll.count()));
          // The newest instances first (ids sort by creation), stopped ones
          // included: their node may still have their lines.
          PLFM_ASSIGN_OR_RETURN(
              auto rs,
              ctx.db().exec("SELECT i.instance_id, i.process_type, i.node_id, "
                            "coalesce(l.agent_url, ''), coalesce(l.relay_key, '') FROM "
                            "instances_view i LEFT JOIN node_liveness l ON l.node_id = i.node_id "
                            "WHERE i.env_id = $1 AND i.node_id IS NOT NULL AND ($2 = '' OR "
                            "i.process_type = $2) AND ($3 = '' OR i.instance_id = $3) ORDER BY "
                            "i.instance_id DESC LIMIT " +
                                std::to_string(kMaxInstances),
                            {env.str(), process, instance}));
          std::vector<Target> targets;
          targets.reserve(static_cast<size_t>(rs.rows()));
          for (int i = 0; i < rs.rows(); ++i) {
            targets.push_back({std::string(rs.text(i, 0)), std::string(rs.text(i, 1)),
                               std::string(rs.text(i, 2)), std::string(rs.text(i, 3)),
                               std::string(rs.text(i, 4))});
          }
          // No connection held while the agents answer (or a follow waits).
          ctx.lease.reset();
          const bool tail = tail_n > 0 && cursor.empty();
          const auto want = static_cast<size_t>(tail ? tail_n : limit);
          for (const auto& t : targets) {
            if (cursor.count(t.instance_id) == 0) cursor[t.instance_id] = InstanceCursor{since, 0};
          }
          // Polls, not a deadline: each round takes at least kFollowPoll.
          int64_t rounds = wait * 1000 / kFollowPoll.count();
          for (;;) {
            std::vector<std::future<Fetched>> futures;
            futures.reserve(targets.size());
            for (const auto& t : targets) {
              futures.push_back(
                  std::async(std::launch::async, fetchOne, t, cursor[t.instance_id], want, tail));
            }
            std::vector<InstancePage> pages;
            json::Json unavailable = json::Json::array();
            for (size_t i = 0; i < futures.size(); ++i) {
              Fetched f = futures[i].get();
              if (f.page) {
                pages.push_back(std::move(*f.page));
              } else {
                unavailable.push_back({{"instance_id", targets[i].instance_id},
                                       {"node_id", targets[i].node_id},
                                       {"reason", f.error}});
              }
            }
            auto lines = mergeLogPages(pages, want, tail, cursor);
            const bool done = !lines.empty() || follow != "true" || rounds-- <= 0;
            if (done) {
              json::Json items = json::Json::array();
              for (const auto& l : lines) items.push_back(relayLineJson(l));
              return jsonResponse(200, {{"items", std::move(items)},
                                        {"cursor", encodeCursor(cursor)},
                                        {"unavailable", std::move(unavailable)}});
            }
            std::this_thread::sleep_for(kFollowPoll);
          }
        });
}

}  // namespace plfm::cp
