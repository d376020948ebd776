// Secret bundles (docs/specs/secrets/bundles.md): set, unset and import
// create a new immutable version of an env's bundle (and, unless staged, a
// deploy of the env's current release pinned to it); list and versions show
// names and metadata only. No user route ever returns a value. Nodes fetch
// the material of an instance allocated to them (docs/specs/secrets/delivery.md).
//
// Secret hygiene here: error messages name keys (never values, never an
// invalid key, which might be a value pasted in the wrong place), the
// idempotency record stores a keyed MAC instead of a hash of the request,
// and the request body and decoded values are wiped once handled.
#include <algorithm>

#include "api.h"
#include "deploy_create.h"
#include "plfm/secrets/dotenv.h"
#include "plfm/secrets/format.h"
#include "secrets_crypto.h"
#include "secrets_store.h"

namespace plfm::cp {
namespace {

namespace sf = plfm::secrets;

const std::string kVersionColumns =
    "version_id AS id, org_id, env_id, number, operation, keys, set_keys, unset_keys, "
    "deploy_id, " +
    ts("created_at") + " AS created_at, created_by";

enum class Op { kSet, kUnset, kImport };

std::string_view opName(Op op) {
  switch (op) {
    case Op::kSet:
      return "set";
    case Op::kUnset:
      return "unset";
    case Op::kImport:
      return "import";
  }
  return "set";
}

// A parsed change. Owns the new values and wipes them.
struct Change {
  Op op = Op::kSet;
  sf::SecretMap set;
  std::vector<std::string> unset;
  bool stage = false;

  Change() = default;
  Change(const Change&) = delete;
  Change& operator=(const Change&) = delete;
  ~Change() { sf::wipe(set); }
};

Error invalid(std::string_view field, const std::string& message) {
  return Error(apierr::kInvalidField, message).with("field", std::string(field));
}

// Wipes every string of a JSON tree (the parsed request carries values).
void wipeJson(json::Json& j) {
  if (j.is_string()) {
    sf::wipe(j.get_ref<std::string&>());
  } else if (j.is_structured()) {
    for (auto& v : j) wipeJson(v);
  }
}

// Never echoes an invalid key: it might be a value typed in the wrong place.
Result<void> checkKey(std::string_view field, const std::string& key, size_t index) {
  if (sf::validKey(key)) return ok();
  return invalid(field, "entry " + std::to_string(index + 1) + " of '" + std::string(field) +
                            "' has an invalid key: keys match [A-Z_][A-Z0-9_]* and are at most " +
                            std::to_string(sf::kMaxKeyBytes) + " bytes");
}

Result<void> checkValue(const std::string& key, std::string_view value) {
  if (value.size() <= sf::kMaxValueBytes) return ok();
  return invalid("values." + key, "the value of secret " + key + " is " +
                                      std::to_string(value.size()) +
                                      " bytes; values are limited to " +
                                      std::to_string(sf::kMaxValueBytes) + " bytes");
}

Result<json::Json> parseSecretsBody(const http::Request& req, std::string_view field) {
  return field == "values" ? parseSecretBody(req, {"values", "stage"})
         : field == "keys" ? parseSecretBody(req, {"keys", "stage"})
                           : parseSecretBody(req, {"dotenv", "stage"});
}

Result<bool> parseStage(const json::Json& body) {
  auto it = body.find("stage");
  if (it == body.end() || it->is_null()) return false;
  if (!it->is_boolean()) return invalid("stage", "field 'stage' must be a boolean");
  return it->get<bool>();
}

Result<void> parseSet(const json::Json& body, Change& c) {
  auto values = body.find("values");
  if (values == body.end() || !values->is_object() || values->empty()) {
    return invalid("values", R"(field 'values' must be a non-empty object like {"KEY": "value"})");
  }
  if (values->size() > sf::kMaxKeys) {
    return invalid("values", "field 'values' has " + std::to_string(values->size()) +
                                 " entries; an env holds at most " + std::to_string(sf::kMaxKeys) +
                                 " secrets");
  }
  size_t i = 0;
  for (const auto& [key, value] : values->items()) {
    PLFM_TRY(checkKey("values", key, i++));
    if (!value.is_string()) {
      return invalid("values." + key, "the value of secret " + key + " must be a string");
    }
    PLFM_TRY(checkValue(key, value.get_ref<const std::string&>()));
    c.set.insert_or_assign(key, value.get<std::string>());
  }
  return ok();
}

Result<void> parseUnset(const json::Json& body, Change& c) {
  auto keys = body.find("keys");
  if (keys == body.end() || !keys->is_array() || keys->empty() || keys->size() > sf::kMaxKeys) {
    return invalid("keys", "field 'keys' must be a list of 1 to " + std::to_string(sf::kMaxKeys) +
                               " key names");
  }
  for (size_t i = 0; i < keys->size(); ++i) {
    const auto& k = (*keys)[i];
    const std::string key = k.is_string() ? k.get<std::string>() : std::string();
    PLFM_TRY(checkKey("keys", key, i));
    if (std::find(c.unset.begin(), c.unset.end(), key) == c.unset.end()) c.unset.push_back(key);
  }
  std::sort(c.unset.begin(), c.unset.end());
  return ok();
}

Result<void> parseImport(const json::Json& body, Change& c) {
  auto text = body.find("dotenv");
  if (text == body.end() || !text->is_string()) {
    return invalid("dotenv", "field 'dotenv' must be the text of a dotenv file");
  }
  auto parsed = sf::parseDotenv(text->get_ref<const std::string&>());
  if (!parsed) {
    const auto& e = parsed.error();
    return invalid("dotenv", "dotenv " + e.toString())
        .with("line", std::to_string(e.line))
        .with("column", std::to_string(e.column))
        .with("code", std::string(sf::codeName(e.code)));
  }
  if (parsed->empty()) return invalid("dotenv", "the dotenv file defines no secrets");
  c.set = std::move(*parsed);
  return ok();
}

json::Json names(const std::vector<std::string>& v) { return json::Json(v); }

std::vector<std::string> keysOf(const sf::SecretMap& m) {
  std::vector<std::string> out;
  out.reserve(m.size());
  for (const auto& [k, _] : m) out.push_back(k);
  return out;  // std::map: already sorted by byte order
}

Error secretsDisabled() {
  return Error(plfm::errc::kUnavailable,
               "secrets are disabled on this control plane: it has no secrets_master_key_file "
               "(docs/specs/secrets/encryption.md)");
}

// The secrets_bytes quota: the org's other envs plus this env's new secrets
// (key and value bytes) must fit. Records the env's new size, in the same
// transaction as its version. Runs under the org's lock.
Result<void> checkSecretsSize(pg::Transaction& tx, const QuotaLimits& limits,
                              const std::string& env, const std::string& org,
                              const sf::SecretMap& values) {
  int64_t bytes = 0;
  for (const auto& [k, v] : values) bytes += static_cast<int64_t>(k.size() + v.size());
  PLFM_ASSIGN_OR_RETURN(int64_t others, secretsBytesOfOrg(tx.connection(), org, env));
  PLFM_ASSIGN_OR_RETURN(auto rs,
                        tx.exec("SELECT bytes FROM secret_bundle_sizes WHERE env_id = $1", {env}));
  const int64_t current = rs.rows() == 1 ? rs.int64(0, 0).value_or(0) : 0;
  PLFM_TRY(checkQuota(Quota::kSecretsBytes, limits[Quota::kSecretsBytes], others + current,
                      others + bytes));
  PLFM_TRY(
      tx.exec("INSERT INTO secret_bundle_sizes (env_id, org_id, bytes) VALUES ($1, $2, $3) "
              "ON CONFLICT (env_id) DO UPDATE SET bytes = $3",
              {env, org, bytes}));
  return ok();
}

Result<Mutation> secretsChange(ApiDeps& deps_, pg::Transaction& tx, Ctx& ctx, const Change& change,
                               const std::string& env, const std::string& org,
                               const std::string& app, const QuotaLimits& limits) {
  PLFM_ASSIGN_OR_RETURN(auto head, secretstore::lockHead(tx, env, org));
  sf::SecretMap values;
  if (head) {
    PLFM_ASSIGN_OR_RETURN(values,
                          secretstore::readMap(tx.connection(), *deps_.keyring, head->version_id));
  }
  struct Wipe {
    sf::SecretMap& m;
    ~Wipe() { sf::wipe(m); }
  } wipe{values};
  for (const auto& key : change.unset) {
    auto it = values.find(key);
    if (it == values.end()) {
      std::string msg = "secret ";
      msg.append(key).append(" is not set in env ").append(env);
      return Error(plfm::errc::kNotFound, msg).with("field", "keys");
    }
    sf::wipe(it->second);
    values.erase(it);
  }
  for (const auto& [key, value] : change.set) values.insert_or_assign(key, value);
  if (values.size() > sf::kMaxKeys) {
    return invalid(change.op == Op::kImport ? "dotenv" : "values",
                   "the env would hold " + std::to_string(values.size()) +
                       " secrets; the limit is " + std::to_string(sf::kMaxKeys));
  }
  PLFM_TRY(checkSecretsSize(tx, limits, env, org, values));
  secretstore::NewVersion v;
  v.env_id = env;
  v.org_id = org;
  v.version_id = SecretVersionId::generate().str();
  v.number = head ? head->number + 1 : 1;
  v.actor = ctx.who.id;
  v.created_at = toRfc3339(deps_.clock.now());
  PLFM_TRY(secretstore::writeVersion(tx, *deps_.keyring, v, values));

  Mutation m;
  std::optional<std::string> release;
  if (!change.stage) {
    PLFM_ASSIGN_OR_RETURN(release, redeployableRelease(tx.connection(), env));
  }
  json::Json deploy;
  if (release) {
    auto d = newDeploy({org, app, env, *release, "rolling", v.version_id}, v.created_at);
    deploy = d.body;
    m.settle = true;
    m.events.push_back(std::move(d.event));
  }
  const std::vector<std::string> all = keysOf(values);
  const std::vector<std::string> set = keysOf(change.set);
  const json::Json deploy_id = release ? deploy["id"] : json::Json();
  json::Json version = {{"id", v.version_id},
                        {"org_id", org},
                        {"env_id", env},
                        {"number", v.number},
                        {"operation", std::string(opName(change.op))},
                        {"keys", names(all)},
                        {"set_keys", names(set)},
                        {"unset_keys", names(change.unset)},
                        {"deploy_id", deploy_id},
                        {"created_at", v.created_at},
                        {"created_by", v.actor}};
  // The version event first: the deploy it starts pins it.
  m.events.insert(
      m.events.begin(),
      events::toNewEvent(
          events::SecretsVersionCreated{
              .version_id = v.version_id,
              .env_id = env,
              .app_id = app,
              .org_id = org,
              .number = v.number,
              .operation = std::string(opName(change.op)),
              .keys = all,
              .set_keys = set,
              .unset_keys = change.unset,
              .deploy_id = release ? std::optional<std::string>(deploy["id"]) : std::nullopt},
          1, org));
  m.status = 201;
  m.body = {{"env_id", env},
            {"version", std::move(version)},
            {"deploy", std::move(deploy)},
            {"staged", !release.has_value()}};
  return m;
}

Result<http::Response> fetchSecrets(Api& api, Ctx& ctx, const std::string& node,
                                    const std::string& inst,
                                    const std::optional<std::string>& expected) {
  std::string file;
  std::string version;
  ApiDeps& deps_ = api.deps();
  auto resp = api.runWrite(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
    PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec("SELECT node_id, secrets_version, env_id, org_id FROM "
                                           "instances_view WHERE instance_id = $1 AND "
                                           "current_state <> 'stopped'",
                                           {inst}));
    if (rs.rows() != 1 || rs.text(0, 0) != node) {
      return Error(plfm::errc::kNotFound, "instance " + inst + " not found on node " + node)
          .with("instance_id", inst);
    }
    if (rs.isNull(0, 1)) {
      return Error(plfm::errc::kNotFound, "instance " + inst + " has no secrets")
          .with("instance_id", inst);
    }
    version = rs.text(0, 1);
    if (expected && *expected != version) {
      return Error(plfm::errc::kFailedPrecondition,
                   "instance " + inst + " runs secrets version " + version +
                       ", not the one asked for; fetch the plan again")
          .with("field", "version");
    }
    sf::wipe(file);
    PLFM_ASSIGN_OR_RETURN(file, secretstore::readFile(tx.connection(), *deps_.keyring, version));
    PLFM_TRY(EventStore::lockLog(tx));
    PLFM_ASSIGN_OR_RETURN(auto seqs, EventStore::aggregateSeqs(tx, {version}));
    Mutation m;
    m.status = 200;
    m.events = {events::toNewEvent(events::SecretsFetched{.version_id = version,
                                                          .env_id = std::string(rs.text(0, 2)),
                                                          .instance_id = inst,
                                                          .node_id = node},
                                   seqs[version] + 1, std::string(rs.text(0, 3)))};
    return m;
  });
  if (!resp) {
    sf::wipe(file);
    return resp;
  }
  deps_.metrics
      .counter("plfm_secrets_fetches_total", "Secrets files served to nodes (each one audited).")
      .inc();
  // The audit event is committed; the material is the answer.
  http::Response out;
  out.status = 200;
  out.body = std::move(file);
  out.headers.set("Content-Type", "text/plain; charset=utf-8");
  out.headers.set("Cache-Control", "no-store");
  out.headers.set("X-Secrets-Version", version);
  out.headers.set("X-Event-Seq", std::string(resp->headers.get("X-Event-Seq").value_or("0")));
  return out;
}

}  // namespace

void Api::registerSecretRoutes(http::Router& r) {
  // set / unset / import share everything but the parser.
  auto mutate = [this](Op op) {
    return [this, op](Ctx& ctx) -> Result<http::Response> {
      if (deps_.keyring == nullptr) return secretsDisabled();
      PLFM_ASSIGN_OR_RETURN(auto env, pathId<EnvId>(ctx.req, "env_id"));
      const std::string fingerprint =
          deps_.keyring->fingerprint(ctx.req.method + "\n" + ctx.req.path + "\n" + ctx.req.body);
      auto result = [&]() -> Result<http::Response> {
        auto body = parseSecretsBody(ctx.req, op == Op::kSet     ? "values"
                                              : op == Op::kUnset ? "keys"
                                                                 : "dotenv");
        if (!body) return unexpected(std::move(body).error());
        Change change;
        change.op = op;
        auto parsed = op == Op::kSet     ? parseSet(*body, change)
                      : op == Op::kUnset ? parseUnset(*body, change)
                                         : parseImport(*body, change);
        auto stage = parseStage(*body);
        wipeJson(*body);
        if (!parsed) return unexpected(std::move(parsed).error());
        if (!stage) return unexpected(std::move(stage).error());
        change.stage = *stage;
        PLFM_ASSIGN_OR_RETURN(auto e, visibleEnv(ctx, env));
        const std::string org = e["org_id"];
        const std::string app = e["app_id"];
        return runMutation(
            ctx,
            [&](pg::Transaction& tx) -> Result<Mutation> {
              // The org's lock first, then the env's secrets head.
              PLFM_ASSIGN_OR_RETURN(auto limits, lockOrgQuotas(tx, org));
              return secretsChange(deps_, tx, ctx, change, env.str(), org, app, limits);
            },
            fingerprint);
      }();
      sf::wipe(ctx.req.body);
      if (result && result->status == 201 && !result->headers.get("Idempotent-Replayed")) {
        deps_.metrics
            .counter("plfm_secrets_versions_total", "Secrets versions created, by operation.")
            .inc({{"operation", std::string(opName(op))}});
      }
      return result;
    };
  };
  route(r, "POST", "/v1/envs/{env_id}/secrets/set", Access::kUser, mutate(Op::kSet));
  route(r, "POST", "/v1/envs/{env_id}/secrets/unset", Access::kUser, mutate(Op::kUnset));
  route(r, "POST", "/v1/envs/{env_id}/secrets/import", Access::kUser, mutate(Op::kImport));

  route(
      r, "GET", "/v1/envs/{env_id}/secrets", Access::kUser, [](Ctx& ctx) -> Result<http::Response> {
        PLFM_ASSIGN_OR_RETURN(auto env, pathId<EnvId>(ctx.req, "env_id"));
        PLFM_TRY(visibleEnv(ctx, env));
        PLFM_ASSIGN_OR_RETURN(auto head, ctx.db().exec("SELECT version_id, number FROM "
                                                       "secret_versions_view WHERE env_id = $1 "
                                                       "ORDER BY number DESC LIMIT 1",
                                                       {env.str()}));
        PLFM_ASSIGN_OR_RETURN(auto rs,
                              ctx.db().exec("SELECT key, number AS version, " + ts("updated_at") +
                                                " AS updated_at, updated_by FROM "
                                                "secret_keys_view WHERE env_id = $1 "
                                                "ORDER BY key COLLATE \"C\"",
                                            {env.str()}));
        json::Json version = head.rows() == 1 ? json::Json{{"id", std::string(head.text(0, 0))},
                                                           {"number", head.int64(0, 1).value_or(0)}}
                                              : json::Json();
        return jsonResponse(
            200, {{"env_id", env.str()}, {"version", version}, {"items", rowsToJson(rs)}});
      });

  route(r, "GET", "/v1/envs/{env_id}/secrets/versions", Access::kUser,
        [](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto env, pathId<EnvId>(ctx.req, "env_id"));
          PLFM_ASSIGN_OR_RETURN(auto page, parsePage(ctx.req, "sv"));
          PLFM_TRY(visibleEnv(ctx, env));
          return listChildren(ctx, kVersionColumns, "secret_versions_view", "version_id", "env_id",
                              env.str(), page);
        });

  route(r, "GET", "/v1/nodes/{node_id}/instances/{instance_id}/secrets", Access::kNode,
        [this](Ctx& ctx) -> Result<http::Response> {
          if (deps_.keyring == nullptr) return secretsDisabled();
          PLFM_ASSIGN_OR_RETURN(auto node, pathId<NodeId>(ctx.req, "node_id"));
          PLFM_ASSIGN_OR_RETURN(auto inst, pathId<InstanceId>(ctx.req, "instance_id"));
          std::optional<std::string> expected;
          if (auto v = ctx.req.queryParam("version")) {
            if (!SecretVersionId::parse(*v)) {
              return Error(apierr::kInvalidQuery,
                           "query parameter 'version' must be a secrets version id (sv_...)")
                  .with("field", "version");
            }
            expected = std::string(*v);
          }
          return fetchSecrets(*this, ctx, node.str(), inst.str(), expected);
        });
}

}  // namespace plfm::cp
