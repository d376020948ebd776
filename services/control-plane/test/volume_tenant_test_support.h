// The fixture base of the user volume API tests (volumes_api_test.cc,
// volume_snapshots_api_test.cc): tenants, each a non-admin user with an org,
// an app and an env, and the error code and field of a refusal.
#pragma once

#include <string>

#include "api_test_support.h"

namespace plfm::cp::testsupport {

class VolumeTenantTest : public ApiTest {
 protected:
  struct Tenant {
    std::string token, org, app, env;
  };
  // A non-admin user with an org, an app and an env.
  Tenant tenant(const std::string& name) {
    Tenant t;
    t.token = makeUser(name).second;
    t.org = makeOrg(name + "-org", t.token);
    auto app = callJson("POST", "/v1/orgs/" + t.org + "/apps", {{"name", "web"}}, t.token);
    t.app = app.body.value("id", "");
    auto env = callJson("POST", "/v1/apps/" + t.app + "/envs", {{"name", "prod"}}, t.token);
    t.env = env.body.value("id", "");
    return t;
  }
  static std::string code(const Reply& r) {
    return r.body.contains("error") ? r.body["error"].value("code", "") : "";
  }
  static std::string field(const Reply& r) {
    return r.body.contains("error") ? r.body["error"]["details"].value("field", "") : "";
  }
};

}  // namespace plfm::cp::testsupport
