// The fixture of the node-facing volume tests (volumes_agent_api_test.cc,
// volume_ops_agent_api_test.cc): a real server and PostgreSQL, with the
// scheduler's and the user API's part stood in for by appending their
// events directly.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "api_test_support.h"
#include "plfm/core/id.h"
#include "plfm/events/events.h"

namespace plfm::cp::testsupport {

class VolumesAgentApiTest : public ApiTest {
 protected:
  // An env of a fresh app; ids only.
  struct Env {
    std::string org, app, env;
  };
  Env makeEnvIn(const std::string& org_name) {
    Env e;
    e.org = makeOrg(org_name);
    e.app = makeApp(e.org, "web");
    e.env = makeEnv(e.app, "prod");
    return e;
  }

  // What the scheduler appends for slot `slot` of `web`: volume.created,
  // and volume.placed on `node` unless it is empty. Returns the volume id
  // once the view has it.
  std::string volumeOf(const Env& e, const std::string& name, int64_t slot,
                       const std::string& node) {
    std::string id = VolumeId::generate().str();
    std::vector<NewEvent> evs = {
        events::toNewEvent(events::VolumeCreated{.volume_id = id,
                                                 .org_id = e.org,
                                                 .app_id = e.app,
                                                 .env_id = e.env,
                                                 .process_type = "web",
                                                 .name = name,
                                                 .slot = slot,
                                                 .full_name = name + "-" + std::to_string(slot),
                                                 .size_bytes = kGiB,
                                                 .origin = "manifest"},
                           1, e.org)};
    if (!node.empty()) {
      evs.push_back(events::toNewEvent(
          events::VolumePlaced{.volume_id = id, .env_id = e.env, .node_id = node}, 2, e.org));
    }
    auto conn = connect();
    appendOk(conn, evs, {"system:scheduler", ""});
    waitForView(conn, "SELECT 1 FROM volumes_view WHERE volume_id = '" + id +
                          "' AND version = " + std::to_string(evs.size()));
    return id;
  }

  // What `vt volumes rm` appends (the API's part): volume.delete_requested
  // as the volume's event `seq`; returns once the view has it.
  void requestDeletion(const Env& e, const std::string& volume, int seq) {
    auto conn = connect();
    appendOk(
        conn,
        {events::toNewEvent(
            events::VolumeDeleteRequested{.volume_id = volume, .env_id = e.env, .reason = "api"},
            seq, e.org)});
    waitForView(conn, "SELECT 1 FROM volumes_view WHERE volume_id = '" + volume +
                          "' AND state = 'deleting'");
  }

  // What the scheduler appends when it places slot `slot` of `web` on
  // `node` (instance.allocated); returns the instance id.
  std::string allocate(const Env& e, const std::string& release, const std::string& node,
                       int64_t slot) {
    std::string id = InstanceId::generate().str();
    auto conn = connect();
    appendOk(conn,
             {events::toNewEvent(
                 events::InstanceAllocated{.instance_id = id,
                                           .org_id = e.org,
                                           .app_id = e.app,
                                           .env_id = e.env,
                                           .process_type = "web",
                                           .release_id = release,
                                           .deploy_id = std::nullopt,
                                           .node_id = node,
                                           .address = "fd7a:5c00:0:1::" + std::to_string(slot + 2),
                                           .vcpus = 1,
                                           .memory_mb = 256,
                                           .reason = "placed",
                                           .secrets_version = std::nullopt,
                                           .slot = slot},
                 1, e.org)},
             {"system:scheduler", ""});
    waitForView(conn, "SELECT 1 FROM instances_view WHERE instance_id = '" + id + "'");
    return id;
  }

  // Polls `sql` until it returns a row (the projection caught up).
  void waitForView(pg::Connection& conn, const std::string& sql) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      auto rs = conn.exec(sql);
      ASSERT_TRUE(rs.has_value()) << rs.error().toString();
      if (rs->rows() > 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    FAIL() << "the view never matched: " << sql;
  }

  // The first column of the first row of `sql`, or "" when there is none.
  std::string queryText(const std::string& sql, const pg::Params& params) {
    auto conn = connect();
    auto rs = conn.exec(sql, params);
    EXPECT_TRUE(rs.has_value()) << rs.error().toString();
    return rs && rs->rows() > 0 ? std::string(rs->text(0, 0)) : std::string();
  }

  std::string viewState(const std::string& volume) {
    return queryText(
        "SELECT state || ' ' || coalesce(reported_size_bytes::text, '-') || ' ' || reason FROM "
        "volumes_view WHERE volume_id = $1",
        {volume});
  }

  Reply report(const std::string& node, const std::string& token, const std::string& volume,
               const json::Json& body) {
    return callJson("POST", "/v1/nodes/" + node + "/volumes/" + volume + "/status", body, token);
  }
};

}  // namespace plfm::cp::testsupport
