#include "plfm/events/events.h"

#include <gtest/gtest.h>

#include <set>

namespace plfm::events {
namespace {

using json::Json;

TEST(EventsTest, ToNewEventFillsTheEnvelopeFromTheStruct) {
  AppCreated e{.app_id = "app_1", .org_id = "org_1", .name = "web", .description = ""};
  const NewEvent n = toNewEvent(e, 1, "org_1");
  EXPECT_EQ(n.aggregate_type, "app");
  EXPECT_EQ(n.aggregate_id, "app_1");
  EXPECT_EQ(n.aggregate_seq, 1);
  EXPECT_EQ(n.event_type, "app.created");
  EXPECT_EQ(n.event_version, 1);
  EXPECT_EQ(n.org_id, "org_1");
  EXPECT_EQ(n.correlation, "{}");
  // Compact, keys sorted: the bytes the handlers wrote before the structs.
  EXPECT_EQ(n.payload, R"({"app_id":"app_1","description":"","name":"web","org_id":"org_1"})");
}

TEST(EventsTest, NullableFieldsWriteNullAndReadNullOrAbsent) {
  DeployCreated d{.deploy_id = "dep_1",
                  .app_id = "app_1",
                  .env_id = "env_1",
                  .org_id = "org_1",
                  .release_id = "rel_1",
                  .strategy = "rolling",
                  .secrets_version = std::nullopt};
  Json j = toJson(d);
  EXPECT_TRUE(j["secrets_version"].is_null());
  j.erase("secrets_version");
  auto back = fromPayload<DeployCreated>(j);
  ASSERT_TRUE(back) << back.error().toString();
  EXPECT_EQ(back->secrets_version, std::nullopt);
  j["secrets_version"] = "sv_1";
  EXPECT_EQ(fromPayload<DeployCreated>(j)->secrets_version, "sv_1");
}

TEST(EventsTest, FromPayloadNamesTheMissingOrMistypedField) {
  Json j = toJson(OrgCreated{.org_id = "org_1", .name = "acme"});
  j.erase("name");
  auto r = fromPayload<OrgCreated>(j);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().toString().find("org.created: payload.name is missing"), std::string::npos)
      << r.error().toString();

  j["name"] = 7;
  r = fromPayload<OrgCreated>(j);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().toString().find("payload.name must be a string"), std::string::npos);

  Json scale = toJson(EnvScaleSet{.env_id = "env_1", .org_id = "org_1", .processes = {{"web", 2}}});
  EXPECT_EQ(json::dump(scale), R"({"env_id":"env_1","org_id":"org_1","processes":{"web":2}})");
  scale["processes"]["web"] = "two";
  auto s = fromPayload<EnvScaleSet>(scale);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().toString().find("payload.processes.web must be an integer"),
            std::string::npos);

  EXPECT_FALSE(fromPayload<OrgCreated>(Json::array()));
}

TEST(EventsTest, EveryTypeIsListedOnceWithItsAggregate) {
  std::set<std::string_view> types;
  for (const auto& t : allTypes()) {
    EXPECT_TRUE(types.insert(t.type).second) << t.type;
    EXPECT_EQ(t.version, 1) << t.type;
    EXPECT_FALSE(t.aggregate.empty()) << t.type;
  }
  EXPECT_EQ(types.size(), 60U);
  EXPECT_EQ(NodeEnrollmentCreated::kAggregate, "enrollment");
  EXPECT_EQ(SecretsFetched::kAggregate, "secret_version");
  EXPECT_EQ(ExecEnded::kAggregate, "exec");
}

}  // namespace
}  // namespace plfm::events
