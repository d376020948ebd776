// A real control plane for API tests: started in-process on [::1]:0 over a
// fresh migrated database, with an HTTP client that checks every response
// against the OpenAPI contract as it goes.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "control_plane.h"
#include "cp_test_support.h"
#include "plfm/core/json.h"
#include "plfm/http/http.h"
#include "plfm/testing/temp_dir.h"
#include "schema_support.h"

namespace plfm::cp::testsupport {

struct Reply {
  int status = 0;
  json::Json body;
  std::string raw;
  http::Headers headers;
  std::string header(std::string_view name) const {
    return std::string(headers.get(name).value_or(""));
  }
};

class ApiTest : public CpTest {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Adjusts the control plane's configuration before it starts.
  virtual void configure(Config& /*cfg*/) {}
  // The clock the control plane runs on (nullptr: the real one).
  virtual const Clock* serverClock() { return nullptr; }

  // Sends a request. `token` defaults to the admin's; pass "" for none.
  // Mutations get a fresh Idempotency-Key unless `headers` has one (pass
  // {"Idempotency-Key", ""} via noKey to send none).
  Reply call(const std::string& method, const std::string& path, const std::string& body = "",
             const std::optional<std::string>& token = std::nullopt, http::Headers headers = {});
  Reply callJson(const std::string& method, const std::string& path, const json::Json& body,
                 const std::optional<std::string>& token = std::nullopt) {
    return call(method, path, json::dump(body), token);
  }

  // Creates a user through the API; returns {user_id, token}.
  std::pair<std::string, std::string> makeUser(const std::string& name);
  std::string makeOrg(const std::string& name,
                      const std::optional<std::string>& token = std::nullopt);
  std::string makeApp(const std::string& org, const std::string& name);
  std::string makeEnv(const std::string& app, const std::string& name);
  std::string makeRelease(const std::string& app);

  int64_t countEvents(const std::string& type);

  // A node agent's side: an enrollment token from the admin, then
  // enrollment; returns {node_id, node credential}.
  std::string makeEnrollmentToken(int ttl_seconds = 900);
  std::pair<std::string, std::string> enrollNode(
      const std::string& hostname, int cores = 4, int memory_mb = 4096,
      const std::string& underlay_address = "2001:db8::10");
  // The manifest JSON of a release with one process `web` of the given size.
  static json::Json webManifest(int vcpus = 1, int memory_mb = 256);
  std::string makeReleaseWith(const std::string& app, const json::Json& manifest);

  // The OpenAPI path template matching a concrete path, or "".
  std::string templateFor(const std::string& method, const std::string& path) const;

  std::unique_ptr<testing::TempDir> state_;
  std::unique_ptr<ControlPlane> cp_;
  std::string base_;
  std::string admin_token_;
  static inline json::Json openapi_;
  static inline std::vector<std::pair<std::string, std::string>> routes_;
  bool validate_ = true;  // check every response against the OpenAPI
};

}  // namespace plfm::cp::testsupport
