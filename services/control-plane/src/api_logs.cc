// GET /v1/envs/{env_id}/logs: the log relay (docs/specs/runtime/logs.md).
// The control plane keeps no log lines: it asks the agent of every instance
// of the env (recently stopped ones too, while their node keeps the files)
// for its lines after the caller's cursor, merges them in timestamp order and
// answers with a new cursor. `follow=true` holds the request (polling the
// agents, with no database connection held) until a line arrives or `wait`
// runs out; `vt logs -f` loops on it.
//
// Every request to an agent is signed for its target, node and instance
// (libs/relay-auth) and goes over TLS pinned to the certificate the agent
// reported; its answer is capped in size while it is read and in time. A
// request asks at most kRelayWorkers agents at once, and an org holds at
// most max_log_followers_per_org followers (429 beyond).
#include <atomic>
#include <thread>

#include "api.h"
#include "log_relay.h"
#include "plfm/core/log.h"

namespace plfm::cp {
namespace {

constexpr int kMaxInstances = 50;
// Each agent exchange, whole (connect, TLS, request, the page): a slow or
// stuck agent costs at most this.
constexpr auto kAgentTimeout = std::chrono::seconds(5);
constexpr auto kFollowPoll = std::chrono::milliseconds(500);
// An agent's page is at most `limit` lines of at most 64 KiB each; anything
// bigger is refused while it is read, not after.
constexpr size_t kMaxAgentPageBytes = size_t{8} << 20;
// Agents asked at once by one request: a fixed pool, whatever the number of
// instances (at most kMaxInstances).
constexpr size_t kRelayWorkers = 8;

struct Target {
  std::string instance_id;
  std::string process_type;
  std::string node_id;
  std::string agent_url;
  std::string agent_cert_sha256;
};

struct Fetched {
  std::optional<InstancePage> page;
  std::string error;  // why the agent could not be read
};

struct FetchContext {
  const relay::SigningKey* key;
  int64_t now_unix;
  size_t limit;
  bool tail;
};

// The request to an agent: signed for exactly this target, node and
// instance, over TLS pinned to the agent's reported certificate (plain http
// only to a loopback agent, which checkAgentEndpoint allowed).
http::ClientRequest agentRequest(const Target& t, const InstanceCursor& after,
                                 const FetchContext& c) {
  const std::string target = "/v1/instances/" + t.instance_id +
                             "/logs?limit=" + std::to_string(c.limit) + (c.tail ? "&tail=1" : "") +
                             "&skip=" + std::to_string(after.skip) +
                             (after.ts.empty() ? "" : "&after=" + after.ts);
  http::ClientRequest req;
  req.url = t.agent_url + target;
  const relay::SignedRequest signed_req{"GET", target, t.node_id, t.instance_id,
                                        c.now_unix + relay::kTtlSeconds};
  req.headers.set(std::string(relay::kExpiresHeader), std::to_string(signed_req.expires_unix));
  req.headers.set(std::string(relay::kSignatureHeader), c.key->sign(signed_req));
  req.timeout = kAgentTimeout;
  req.max_response_body_bytes = kMaxAgentPageBytes;
  req.tls.pinned_cert_sha256 = t.agent_cert_sha256;
  return req;
}

Fetched fetchOne(const Target& t, const InstanceCursor& after, const FetchContext& c) {
  Fetched f;
  if (t.agent_url.empty() || c.key == nullptr) {
    f.error = "node " + t.node_id + " reported no agent log endpoint (agent --listen)";
    return f;
  }
  if (t.agent_url.starts_with("https://") && t.agent_cert_sha256.empty()) {
    f.error = "node " + t.node_id + " reported no certificate for its agent log endpoint";
    return f;
  }
  auto resp = http::request(agentRequest(t, after, c));
  if (!resp) {
    f.error = resp.error().is(plfm::errc::kResourceExhausted)
                  ? "agent of node " + t.node_id + " answered more than 8 MiB"
                  : "agent of node " + t.node_id + " unreachable: " + resp.error().message();
    return f;
  }
  if (resp->status != 200) {
    f.error = "agent of node " + t.node_id + " answered " + std::to_string(resp->status);
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
  if ((*j)["lines"].size() > c.limit) {
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

// The relay targets among the instances `where` selects (a condition on
// instances_view i) that have a node: the newest first, at most kMaxInstances.
Result<std::vector<Target>> queryTargets(pg::Connection& db, const std::string& where,
                                         const pg::Params& params) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs,
      db.exec("SELECT i.instance_id, i.process_type, i.node_id, "
              "coalesce(l.agent_url, ''), coalesce(l.agent_cert_sha256, '') FROM "
              "instances_view i LEFT JOIN node_liveness l ON l.node_id = i.node_id "
              "WHERE i.node_id IS NOT NULL AND " +
                  where + " ORDER BY i.instance_id DESC LIMIT " + std::to_string(kMaxInstances),
              params));
  std::vector<Target> targets;
  targets.reserve(static_cast<size_t>(rs.rows()));
  for (int i = 0; i < rs.rows(); ++i) {
    targets.push_back({std::string(rs.text(i, 0)), std::string(rs.text(i, 1)),
                       std::string(rs.text(i, 2)), std::string(rs.text(i, 3)),
                       std::string(rs.text(i, 4))});
  }
  return targets;
}

// One round: every target asked by at most kRelayWorkers threads (this one
// included), each taking the next target until none is left.
std::vector<Fetched> fetchAll(const std::vector<Target>& targets, RelayCursor& cursor,
                              const FetchContext& c) {
  std::vector<Fetched> out(targets.size());
  std::vector<const InstanceCursor*> afters;
  afters.reserve(targets.size());
  for (const auto& t : targets) afters.push_back(&cursor[t.instance_id]);
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < targets.size(); i = next++) {
      out[i] = fetchOne(targets[i], *afters[i], c);
    }
  };
  std::vector<std::thread> pool;
  const size_t helpers = std::min(kRelayWorkers, targets.size()) - (targets.empty() ? 0 : 1);
  for (size_t i = 0; i < helpers; ++i) {
    try {
      pool.emplace_back(work);
    } catch (const std::system_error& e) {
      // Fewer threads only make the round slower.
      log::warn("log relay: cannot start a fetch thread", {{"error", e.what()}});
      break;
    }
  }
  work();
  for (auto& th : pool) th.join();
  return out;
}

}  // namespace

std::string Api::relayPublicKey() const {
  return deps_.relay_key != nullptr ? deps_.relay_key->publicKey().text() : std::string();
}

Result<json::Json> Api::instanceLogTail(Ctx& ctx, const std::string& instance_id, size_t lines) {
  PLFM_ASSIGN_OR_RETURN(auto targets, queryTargets(ctx.db(), "i.instance_id = $1", {instance_id}));
  ctx.lease.reset();  // no connection held while the agent answers
  json::Json items = json::Json::array();
  if (targets.empty()) {
    return json::Json{{"items", std::move(items)},
                      {"unavailable", "the instance has not been placed on a node"}};
  }
  Fetched f = fetchOne(targets[0], InstanceCursor{},
                       FetchContext{deps_.relay_key, unixSeconds(deps_.clock), lines, true});
  if (!f.page) return json::Json{{"items", std::move(items)}, {"unavailable", f.error}};
  RelayCursor cursor;
  for (const auto& l : mergeLogPages({std::move(*f.page)}, lines, true, cursor)) {
    items.push_back(relayLineJson(l));
  }
  return json::Json{{"items", std::move(items)}, {"unavailable", nullptr}};
}

void Api::registerLogRoutes(http::Router& r) {
  followers_ = std::make_shared<FollowerSlots>(deps_.options.max_log_followers_per_org);
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
          // A follower holds a server thread and polls agents: a bounded
          // number per org (max_log_followers_per_org), refused with 429.
          std::optional<FollowerSlots::Lease> slot;
          if (follow == "true") {
            PLFM_ASSIGN_OR_RETURN(
                auto org,
                ctx.db().exec("SELECT org_id FROM envs_view WHERE env_id = $1", {env.str()}));
            const std::string org_id = org.rows() == 1 ? std::string(org.text(0, 0)) : "";
            slot = followers_->tryAcquire(org_id);
            if (!slot) {
              return Error(apierr::kTooManyLogFollowers,
                           "this org already holds " + std::to_string(followers_->max()) +
                               " log followers (logs?follow=true), the control plane's "
                               "max_log_followers_per_org; end one or retry later")
                  .with("limit", "max_log_followers_per_org");
            }
          }
          // The newest instances first (ids sort by creation), stopped ones
          // included: their node may still have their lines.
          PLFM_ASSIGN_OR_RETURN(
              auto targets,
              queryTargets(ctx.db(),
                           "i.env_id = $1 AND ($2 = '' OR i.process_type = $2) AND ($3 = '' OR "
                           "i.instance_id = $3)",
                           {env.str(), process, instance}));
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
            const FetchContext fc{deps_.relay_key, unixSeconds(deps_.clock), want, tail};
            std::vector<Fetched> fetched = fetchAll(targets, cursor, fc);
            std::vector<InstancePage> pages;
            json::Json unavailable = json::Json::array();
            for (size_t i = 0; i < fetched.size(); ++i) {
              Fetched& f = fetched[i];
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
