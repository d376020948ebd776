// A control plane with a master key, for the secrets API and leak tests:
// helpers to make an env, deploy it onto an enrolled node and wait for its
// instance, and to call the secrets routes.
#pragma once

#include <chrono>
#include <thread>

#include "api_test_support.h"
#include "secrets_crypto.h"

namespace plfm::cp::testsupport {

class SecretsApiTest : public ApiTest {
 protected:
  void configure(Config& cfg) override {
    key_file_ = keys_.file("master.key");
    auto id = crypto::generateMasterKeyFile(key_file_);
    ASSERT_TRUE(id.has_value()) << id.error().toString();
    cfg.secrets_master_key_file = key_file_;
    cfg.scheduler_interval = std::chrono::milliseconds(200);
    cfg.max_body_bytes = size_t{1} << 20;  // the default: values up to the limit fit
    cfg.restart_backoff_base = std::chrono::milliseconds(10);  // crashes fail deploys fast
    cfg.restart_backoff_max = std::chrono::milliseconds(50);
    config_ = cfg;
  }

  struct Deployed {
    std::string org, app, env, release, deploy, node, node_token, instance;
  };

  // An org/app/env with a release of a `web` process scaled to 1, deployed,
  // and placed on a fresh node; `instance` is its instance.
  Deployed deployedEnv(const std::string& org_name) {
    Deployed d;
    d.org = makeOrg(org_name);
    d.app = makeApp(d.org, "web");
    d.env = makeEnv(d.app, "prod");
    d.release = makeReleaseWith(d.app, webManifest(1, 256));
    std::tie(d.node, d.node_token) = enrollNode(org_name + ".node", 4, 4096);
    auto sc = callJson("PUT", "/v1/envs/" + d.env + "/scale", {{"processes", {{"web", 1}}}});
    EXPECT_EQ(sc.status, 200) << sc.raw;
    auto dep = callJson("POST", "/v1/envs/" + d.env + "/deploys", {{"release_id", d.release}});
    EXPECT_EQ(dep.status, 201) << dep.raw;
    d.deploy = dep.body.value("id", "");
    d.instance = waitInstance(d.env, "");
    return d;
  }

  // Plays the node agent once: every instance of `d`'s node that should run
  // reports healthy, every one being drained reports stopped, so rollouts
  // move on as they would with a real agent.
  // Instances pinned to `crashing` (a secrets version) exit with code 1
  // instead, as a workload would on bad secrets.
  void agentTick(const Deployed& d, const std::string& crashing = "") {
    auto plan = call("GET", "/v1/nodes/" + d.node + "/plan?after=0&wait=0", "", d.node_token);
    for (const auto& spec : plan.body.value("instances", json::Json::array())) {
      const std::string inst = spec["instance_id"];
      json::Json report = {{"generation", spec["generation"]}, {"seq", ++report_seq_[inst]}};
      if (spec["desired"] != "run") {
        report["phase"] = "stopped";
      } else if (!crashing.empty() && spec["secrets"]["version"] == crashing) {
        report["phase"] = "exited";
        report["exit_code"] = 1;
      } else {
        report["phase"] = "healthy";
      }
      callJson("POST", "/v1/nodes/" + d.node + "/instances/" + inst + "/status", report,
               d.node_token);
    }
  }

  // The env's instance pinned to `secrets_version` ("" for none), waiting
  // (bounded) for the scheduler; with `d`, also plays its node's agent.
  std::string waitInstance(const std::string& env, const std::string& secrets_version,
                           const Deployed* d = nullptr) {
    for (int i = 0; i < 100; ++i) {
      if (d == nullptr) {
        auto list = call("GET", "/v1/envs/" + env + "/instances");
        for (const auto& it : list.body.value("items", json::Json::array())) {
          if (it["desired_state"] == "run") return it["id"];
        }
      } else {
        auto plan = call("GET", "/v1/nodes/" + d->node + "/plan?after=0&wait=0", "", d->node_token);
        for (const auto& spec : plan.body.value("instances", json::Json::array())) {
          if (spec["env_id"] == env && spec["desired"] == "run" &&
              spec["secrets"]["version"] ==
                  (secrets_version.empty() ? json::Json() : json::Json(secrets_version))) {
            return spec["instance_id"];
          }
        }
        agentTick(*d);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "no instance of " << env << " with secrets version '" << secrets_version
                  << "'";
    return "";
  }

  Reply setSecrets(const std::string& env, const json::Json& values, bool stage = false) {
    return callJson("POST", "/v1/envs/" + env + "/secrets/set",
                    {{"values", values}, {"stage", stage}});
  }

  Reply fetch(const Deployed& d, const std::string& instance, const std::string& query = "") {
    return call("GET", "/v1/nodes/" + d.node + "/instances/" + instance + "/secrets" + query, "",
                d.node_token);
  }

  std::map<std::string, int64_t> report_seq_;
  plfm::testing::TempDir keys_{"plfm-keys"};
  std::string key_file_;
  Config config_;
};

}  // namespace plfm::cp::testsupport
