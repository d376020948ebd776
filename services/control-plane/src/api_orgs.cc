// whoami, users, orgs and org members.
#include "api.h"

namespace plfm::cp {
namespace {

const std::string kOrgColumns = "org_id AS id, name, " + ts("created_at") + " AS created_at, " +
                                ts("updated_at") + " AS updated_at";
const std::string kMemberColumns = "org_id, user_id, role, " + ts("created_at") + " AS created_at";

Result<json::Json> loadOrg(pg::Connection& db, const std::string& org_id) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs, db.exec("SELECT " + kOrgColumns + " FROM orgs_view WHERE org_id = $1", {org_id}));
  if (rs.rows() != 1) {
    return Error(plfm::errc::kNotFound, "org " + org_id + " not found").with("org_id", org_id);
  }
  return rowToJson(rs, 0);
}

// The members of `org_id` who are owners, and `user_id`'s role ("" when not
// a member). Read under the org's lock (Api::lockOrgQuotas), so exact.
struct Owners {
  int64_t owners = 0;
  std::string role;
};
Result<Owners> owners(pg::Transaction& tx, const std::string& org_id, const std::string& user_id) {
  PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec("SELECT count(*) FILTER (WHERE role = 'owner'), "
                                         "coalesce(max(role) FILTER (WHERE user_id = $2), '') "
                                         "FROM org_members_view WHERE org_id = $1",
                                         {org_id, user_id}));
  Owners o;
  PLFM_ASSIGN_OR_RETURN(o.owners, rs.int64(0, 0));
  o.role = rs.text(0, 1);
  return o;
}

// The caller's role again, under the org's lock: an owner demoted by a
// concurrent request is a member by now.
Result<void> stillOwner(pg::Transaction& tx, const std::string& org_id, const std::string& caller) {
  PLFM_ASSIGN_OR_RETURN(auto me, owners(tx, org_id, caller));
  if (me.role == "owner") return ok();
  return Error(plfm::errc::kPermissionDenied,
               "only owners of org " + org_id + " may do this; your role is now '" + me.role + "'")
      .with("org_id", org_id)
      .with("role", me.role);
}

Error lastOwner(const std::string& org_id, std::string_view what) {
  return Error(plfm::errc::kFailedPrecondition, "the last owner of org " + org_id + " cannot " +
                                                    std::string(what) +
                                                    "; make another member an owner first")
      .with("field", "user_id");
}

}  // namespace

Result<void> requireOwner(Ctx& ctx, const std::string& org_id) {
  PLFM_ASSIGN_OR_RETURN(auto role, roleIn(ctx.db(), ctx.who, org_id));
  if (role != "owner") {
    return Error(plfm::errc::kPermissionDenied,
                 "only owners of org " + org_id + " may do this; your role is '" + role + "'")
        .with("org_id", org_id)
        .with("role", role);
  }
  return ok();
}

void Api::registerOrgRoutes(http::Router& r) {
  route(r, "GET", "/v1/whoami", Access::kUser, [](Ctx& ctx) -> Result<http::Response> {
    return jsonResponse(200, {{"kind", ctx.who.kind},
                              {"user_id", ctx.who.id},
                              {"name", ctx.who.name},
                              {"is_admin", ctx.who.is_admin}});
  });

  route(r, "POST", "/v1/users", Access::kAdmin, [this](Ctx& ctx) -> Result<http::Response> {
    PLFM_ASSIGN_OR_RETURN(auto body, parseBody(ctx.req, {"name", "is_admin"}));
    PLFM_ASSIGN_OR_RETURN(auto name, requireString(body, "name"));
    PLFM_TRY(checkName("name", name));
    bool admin = false;
    if (auto it = body.find("is_admin"); it != body.end()) {
      if (!it->is_boolean()) {
        return Error(apierr::kInvalidField, "field 'is_admin' must be a boolean")
            .with("field", "is_admin");
      }
      admin = it->get<bool>();
    }
    return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
      PLFM_ASSIGN_OR_RETURN(auto created, createUser(tx, deps_.clock, name, admin));
      const NewUser& u = created.first;
      return showTokenOnce({{"id", u.user_id},
                            {"name", u.name},
                            {"is_admin", u.is_admin},
                            {"created_at", u.created_at},
                            {"token", u.token}},
                           std::move(created.second));
    });
  });

  route(r, "POST", "/v1/orgs", Access::kUser, [this](Ctx& ctx) -> Result<http::Response> {
    PLFM_ASSIGN_OR_RETURN(auto body, parseBody(ctx.req, {"name"}));
    PLFM_ASSIGN_OR_RETURN(auto name, requireString(body, "name"));
    PLFM_TRY(checkName("name", name));
    return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
      const std::string org = OrgId::generate().str();
      PLFM_TRY(reserveName(tx, "org", name, org, "an org"));
      // The org's network tag, in the same transaction: no org is ever
      // without one (docs/specs/networking/mesh.md, Addressing).
      PLFM_TRY(tx.exec("INSERT INTO org_net_tags (org_id) VALUES ($1)", {org}));
      const std::string now = toRfc3339(deps_.clock.now());
      Mutation m;
      m.body = {{"id", org}, {"name", name}, {"created_at", now}, {"updated_at", now}};
      m.events = {
          events::toNewEvent(events::OrgCreated{.org_id = org, .name = name}, 1, org),
          events::toNewEvent(
              events::OrgMemberAdded{.org_id = org, .user_id = ctx.who.id, .role = "owner"}, 2,
              org),
      };
      return m;
    });
  });

  route(r, "GET", "/v1/orgs", Access::kUser, [](Ctx& ctx) -> Result<http::Response> {
    PLFM_ASSIGN_OR_RETURN(auto page, parsePage(ctx.req, "org"));
    PLFM_ASSIGN_OR_RETURN(
        auto rs, ctx.db().exec("SELECT " + kOrgColumns +
                                   " FROM orgs_view o WHERE EXISTS (SELECT 1 FROM "
                                   "org_members_view m WHERE m.org_id = o.org_id AND m.user_id = "
                                   "$1) AND ($2::text IS NULL OR o.org_id > $2) "
                                   "ORDER BY o.org_id LIMIT $3",
                               {ctx.who.id, page.cursor, page.limit}));
    return jsonResponse(200, pageJson(rs, page));
  });

  route(r, "GET", "/v1/orgs/{org_id}", Access::kUser, [](Ctx& ctx) -> Result<http::Response> {
    PLFM_ASSIGN_OR_RETURN(auto org, pathId<OrgId>(ctx.req, "org_id"));
    PLFM_TRY(roleIn(ctx.db(), ctx.who, org.str()));
    PLFM_ASSIGN_OR_RETURN(auto j, loadOrg(ctx.db(), org.str()));
    return jsonResponse(200, j);
  });

  route(
      r, "DELETE", "/v1/orgs/{org_id}", Access::kUser, [this](Ctx& ctx) -> Result<http::Response> {
        PLFM_ASSIGN_OR_RETURN(auto org, pathId<OrgId>(ctx.req, "org_id"));
        PLFM_TRY(requireOwner(ctx, org.str()));
        return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
          PLFM_ASSIGN_OR_RETURN(auto apps, tx.exec("SELECT count(*) FROM name_reservations "
                                                   "WHERE scope = $1",
                                                   {"app:" + org.str()}));
          if (apps.int64(0, 0).value_or(0) > 0) {
            return Error(plfm::errc::kFailedPrecondition,
                         "org " + org.str() + " still has apps; delete them first");
          }
          PLFM_TRY(releaseName(tx, "org", org.str()));
          PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, org.str()));
          Mutation m;
          m.status = 200;
          m.body = {{"deleted", true}, {"id", org.str()}};
          m.events = {events::toNewEvent(events::OrgDeleted{.org_id = org.str()}, next, org.str())};
          return m;
        });
      });

  route(r, "GET", "/v1/orgs/{org_id}/members", Access::kUser,
        [](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto org, pathId<OrgId>(ctx.req, "org_id"));
          PLFM_TRY(roleIn(ctx.db(), ctx.who, org.str()));
          PLFM_ASSIGN_OR_RETURN(auto rs, ctx.db().exec("SELECT " + kMemberColumns +
                                                           " FROM org_members_view WHERE "
                                                           "org_id = $1 ORDER BY user_id",
                                                       {org.str()}));
          return jsonResponse(200, {{"items", rowsToJson(rs)}, {"next_cursor", nullptr}});
        });

  route(r, "POST", "/v1/orgs/{org_id}/members", Access::kUser,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto org, pathId<OrgId>(ctx.req, "org_id"));
          PLFM_ASSIGN_OR_RETURN(auto body, parseBody(ctx.req, {"user_id", "role"}));
          PLFM_ASSIGN_OR_RETURN(auto user, bodyId<UserId>(body, "user_id"));
          PLFM_ASSIGN_OR_RETURN(auto role, requireString(body, "role"));
          if (role != "owner" && role != "member") {
            return Error(apierr::kInvalidField, "field 'role' must be 'owner' or 'member'")
                .with("field", "role");
          }
          PLFM_TRY(requireOwner(ctx, org.str()));
          PLFM_ASSIGN_OR_RETURN(auto exists, ctx.db().exec("SELECT 1 FROM users WHERE "
                                                           "user_id = $1",
                                                           {user.str()}));
          if (exists.rows() == 0) {
            return Error(plfm::errc::kNotFound, "user " + user.str() + " not found")
                .with("field", "user_id");
          }
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            // A role change that would leave the org without an owner is
            // refused; the org's lock makes the count exact.
            PLFM_TRY(lockOrgQuotas(tx, org.str()));
            PLFM_TRY(stillOwner(tx, org.str(), ctx.who.id));
            PLFM_ASSIGN_OR_RETURN(auto o, owners(tx, org.str(), user.str()));
            if (o.role == "owner" && role != "owner" && o.owners <= 1) {
              return lastOwner(org.str(), "become a member");
            }
            PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, org.str()));
            Mutation m;
            m.body = {{"org_id", org.str()},
                      {"user_id", user.str()},
                      {"role", role},
                      {"created_at", toRfc3339(deps_.clock.now())}};
            m.events = {events::toNewEvent(
                events::OrgMemberAdded{.org_id = org.str(), .user_id = user.str(), .role = role},
                next, org.str())};
            return m;
          });
        });

  route(r, "DELETE", "/v1/orgs/{org_id}/members/{user_id}", Access::kUser,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto org, pathId<OrgId>(ctx.req, "org_id"));
          PLFM_ASSIGN_OR_RETURN(auto user, pathId<UserId>(ctx.req, "user_id"));
          PLFM_TRY(requireOwner(ctx, org.str()));
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            PLFM_TRY(lockOrgQuotas(tx, org.str()));
            PLFM_TRY(stillOwner(tx, org.str(), ctx.who.id));
            PLFM_ASSIGN_OR_RETURN(auto o, owners(tx, org.str(), user.str()));
            if (o.role.empty()) {
              return Error(plfm::errc::kNotFound,
                           "user " + user.str() + " is not a member of org " + org.str())
                  .with("field", "user_id");
            }
            if (o.role == "owner" && o.owners <= 1) return lastOwner(org.str(), "leave the org");
            PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, org.str()));
            Mutation m;
            m.status = 200;
            m.body = {{"deleted", true}, {"org_id", org.str()}, {"user_id", user.str()}};
            m.events = {events::toNewEvent(
                events::OrgMemberRemoved{.org_id = org.str(), .user_id = user.str()}, next,
                org.str())};
            return m;
          });
        });
}

}  // namespace plfm::cp
