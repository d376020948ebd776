// Per-org registry credentials (docs/specs/api/v1.md, "Registry
// credentials"): PUT stores or replaces an org's username and password (or
// token) for one registry host, sealed like secrets; GET lists hosts and
// usernames, never a secret; DELETE removes one. Any member of the org may
// do all three, as with secrets; other callers get 404. A node fetches the
// credential for the registry of an instance allocated to it, and only that
// (least exposure: no org's credentials reach a node that runs nothing of
// that org, and only for the registry its image names).
//
// Secret hygiene as in api_secrets.cc: errors name fields, never values; the
// idempotency record holds a keyed MAC of the request; events carry ids, the
// registry host and the version only; the request body is wiped once handled.
#include "api.h"
#include "plfm/secrets/format.h"
#include "registry_credentials.h"
#include "secrets_crypto.h"

namespace plfm::cp {
namespace {

namespace sf = plfm::secrets;

json::Json entryJson(const registry::Entry& e) {
  return {{"registry", e.registry},     {"org_id", e.org_id},         {"id", e.credential_id},
          {"version", e.version},       {"username", e.username},     {"created_at", e.created_at},
          {"created_by", e.created_by}, {"updated_at", e.updated_at}, {"updated_by", e.updated_by}};
}

// One of the registry_credential.* events of `e`: the fields they share
// filled from the entry, the rest by the caller.
template <class T>
T credentialEvent(const registry::Entry& e) {
  T ev;
  ev.credential_id = e.credential_id;
  ev.org_id = e.org_id;
  ev.registry = e.registry;
  ev.version = e.version;
  return ev;
}

Error registriesDisabled() {
  return Error(plfm::errc::kUnavailable,
               "registry credentials are disabled on this control plane: it has no "
               "secrets_master_key_file to seal them with (docs/specs/secrets/encryption.md)");
}

Error noCredential(const std::string& org, const std::string& host) {
  return Error(plfm::errc::kNotFound, "org " + org + " has no credentials for registry " + host)
      .with("registry", host);
}

// PUT's body, parsed. Wipes the secret.
struct Login {
  std::string username;
  std::string secret;
  Login() = default;
  Login(const Login&) = delete;
  Login& operator=(const Login&) = delete;
  ~Login() { sf::wipe(secret); }
};

Result<void> parseLogin(const http::Request& req, Login& out) {
  PLFM_ASSIGN_OR_RETURN(auto body, parseSecretBody(req, {"username", "password"}));
  auto username = requireString(body, "username");
  auto secret = requireString(body, "password");
  for (auto& [_, v] : body.items()) {
    if (v.is_string()) sf::wipe(v.get_ref<std::string&>());
  }
  if (!username) return unexpected(std::move(username).error());
  PLFM_TRY(registry::checkUsername(*username));
  if (!secret) return unexpected(std::move(secret).error());
  out.username = std::move(*username);
  out.secret = std::move(*secret);
  return registry::checkSecret(out.secret);
}

// The caller's org (any member) and the host of the path.
Result<std::pair<std::string, std::string>> orgAndHost(Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(auto org, pathId<OrgId>(ctx.req, "org_id"));
  PLFM_ASSIGN_OR_RETURN(auto host,
                        registry::parseHost(ctx.req.param("registry_host"), "registry_host"));
  PLFM_TRY(roleIn(ctx.db(), ctx.who, org.str()));
  return std::pair{org.str(), host};
}

// The node's view of an instance allocated to it: its org and the registry
// its release's image names.
struct Placed {
  std::string org_id;
  std::string registry;
};

Result<Placed> placedInstance(pg::Connection& conn, const std::string& node,
                              const std::string& inst) {
  PLFM_ASSIGN_OR_RETURN(auto rs, conn.exec("SELECT i.node_id, i.org_id, r.image_ref FROM "
                                           "instances_view i JOIN releases_view r ON "
                                           "r.release_id = i.release_id WHERE i.instance_id = $1 "
                                           "AND i.current_state <> 'stopped'",
                                           {inst}));
  if (rs.rows() != 1 || rs.text(0, 0) != node) {
    return Error(plfm::errc::kNotFound, "instance " + inst + " not found on node " + node)
        .with("instance_id", inst);
  }
  return Placed{std::string(rs.text(0, 1)), registry::hostOfImageRef(rs.text(0, 2))};
}

}  // namespace

void Api::registerRegistryRoutes(http::Router& r) {
  route(r, "GET", "/v1/orgs/{org_id}/registries", Access::kUser,
        [](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto org, pathId<OrgId>(ctx.req, "org_id"));
          PLFM_TRY(roleIn(ctx.db(), ctx.who, org.str()));
          PLFM_ASSIGN_OR_RETURN(auto entries, registry::list(ctx.db(), org.str()));
          json::Json items = json::Json::array();
          for (const auto& e : entries) items.push_back(entryJson(e));
          return jsonResponse(200, {{"org_id", org.str()}, {"items", std::move(items)}});
        });

  route(
      r, "PUT", "/v1/orgs/{org_id}/registries/{registry_host}", Access::kUser,
      [this](Ctx& ctx) -> Result<http::Response> {
        if (deps_.keyring == nullptr) return registriesDisabled();
        const std::string fingerprint =
            deps_.keyring->fingerprint(ctx.req.method + "\n" + ctx.req.path + "\n" + ctx.req.body);
        auto result = [&]() -> Result<http::Response> {
          Login login;
          PLFM_TRY(parseLogin(ctx.req, login));
          PLFM_ASSIGN_OR_RETURN(auto target, orgAndHost(ctx));
          const std::string& org = target.first;
          const std::string& host = target.second;
          return runMutation(
              ctx,
              [&](pg::Transaction& tx) -> Result<Mutation> {
                bool created = false;
                PLFM_ASSIGN_OR_RETURN(auto e, registry::put(tx, *deps_.keyring,
                                                            {org, host, login.username, ctx.who.id,
                                                             toRfc3339(deps_.clock.now())},
                                                            login.secret, &created));
                PLFM_TRY(EventStore::lockLog(tx));
                PLFM_ASSIGN_OR_RETURN(int seq, nextAggregateSeq(tx, e.credential_id));
                Mutation m;
                m.status = created ? 201 : 200;
                auto ev = credentialEvent<events::RegistryCredentialSet>(e);
                ev.operation = created ? "created" : "updated";
                m.events = {events::toNewEvent(ev, seq, e.org_id)};
                m.body = entryJson(e);
                return m;
              },
              fingerprint);
        }();
        sf::wipe(ctx.req.body);
        return result;
      });

  route(r, "DELETE", "/v1/orgs/{org_id}/registries/{registry_host}", Access::kUser,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto target, orgAndHost(ctx));
          const std::string& org = target.first;
          const std::string& host = target.second;
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            PLFM_ASSIGN_OR_RETURN(auto gone, registry::remove(tx, org, host));
            if (!gone) return noCredential(org, host);
            PLFM_TRY(EventStore::lockLog(tx));
            PLFM_ASSIGN_OR_RETURN(int seq, nextAggregateSeq(tx, gone->credential_id));
            Mutation m;
            m.status = 200;
            m.events = {events::toNewEvent(
                credentialEvent<events::RegistryCredentialRemoved>(*gone), seq, gone->org_id)};
            m.body = entryJson(*gone);
            m.body["removed"] = true;
            return m;
          });
        });

  route(
      r, "GET", "/v1/nodes/{node_id}/instances/{instance_id}/registry-credentials", Access::kNode,
      [this](Ctx& ctx) -> Result<http::Response> {
        if (deps_.keyring == nullptr) return registriesDisabled();
        PLFM_ASSIGN_OR_RETURN(auto node, pathId<NodeId>(ctx.req, "node_id"));
        PLFM_ASSIGN_OR_RETURN(auto inst, pathId<InstanceId>(ctx.req, "instance_id"));
        std::optional<registry::Opened> opened;
        struct Wipe {
          std::optional<registry::Opened>& o;
          ~Wipe() {
            if (o) sf::wipe(o->secret);
          }
        } wipe{opened};
        auto resp = runWrite(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
          PLFM_ASSIGN_OR_RETURN(auto placed,
                                placedInstance(tx.connection(), node.str(), inst.str()));
          if (opened) sf::wipe(opened->secret);
          PLFM_ASSIGN_OR_RETURN(opened, registry::open(tx.connection(), *deps_.keyring,
                                                       placed.org_id, placed.registry));
          if (!opened) return noCredential(placed.org_id, placed.registry);
          PLFM_TRY(EventStore::lockLog(tx));
          const std::string& id = opened->entry.credential_id;
          PLFM_ASSIGN_OR_RETURN(auto seqs, EventStore::aggregateSeqs(tx, {id}));
          Mutation m;
          m.status = 200;
          auto ev = credentialEvent<events::RegistryCredentialFetched>(opened->entry);
          ev.instance_id = inst.str();
          ev.node_id = node.str();
          m.events = {events::toNewEvent(ev, static_cast<int>(seqs[id] + 1), opened->entry.org_id)};
          return m;
        });
        if (!resp) return resp;
        // The audit event is committed; the credential is the answer.
        json::Json body = {{"registry", opened->entry.registry},
                           {"username", opened->entry.username},
                           {"password", opened->secret},
                           {"id", opened->entry.credential_id},
                           {"version", opened->entry.version}};
        http::Response out = jsonResponse(200, body);
        sf::wipe(body["password"].get_ref<std::string&>());
        out.headers.set("Cache-Control", "no-store");
        out.headers.set("X-Event-Seq", std::string(resp->headers.get("X-Event-Seq").value_or("0")));
        return out;
      });
}

}  // namespace plfm::cp
