// Test harness for `vt`: a real control plane process on a real PostgreSQL,
// the real `vt` binary run as a subprocess, and output normalisation for
// golden files (ids, times, URLs and elapsed times vary between runs).
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::vt::testing {

struct ControlPlaneProcess {
  Process proc;
  std::string url;          // "http://[::1]:PORT"
  std::string admin_token;  // bootstrap admin
  std::string log_path;
};

// Starts `plfm-control-plane serve` against `conninfo` with its state in
// `dir`; waits until it listens. Aborts the test binary on failure. `env`
// adds NAME=VALUE entries (e.g. PLFM_CP_SECRETS_MASTER_KEY_FILE=...).
ControlPlaneProcess startControlPlane(const std::string& conninfo,
                                      const plfm::testing::TempDir& dir,
                                      const std::vector<std::string>& env = {});

// A control plane on a fresh database of the shared test cluster, its state
// in a fresh temp dir: what a test suite's SetUpTestSuite starts.
struct SuiteControlPlane {
  std::unique_ptr<plfm::testing::TempDir> state;
  std::unique_ptr<ControlPlaneProcess> cp;
};
SuiteControlPlane startSuiteControlPlane(const std::vector<std::string>& env = {});

struct VtResult {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs the vt binary with `args`, config in `config_dir`, NO_COLOR=1, and
// extra environment entries; stdin from `stdin_text`.
VtResult runVt(const std::vector<std::string>& args, const std::string& config_dir,
               const std::vector<std::string>& env = {}, const std::string& stdin_text = "");

// What a node agent does, over plain HTTP (no agent binary in these tests).
// Trades an enrollment token for a node (8 cores, 16 GiB): the response's
// node_id and token. Fails the test on error.
nlohmann::json enrollAgent(const std::string& url, const std::string& enrollment_token,
                           const std::string& hostname);
// `vt nodes enroll -q` with the config in `config_dir`, then enrollAgent
// with its token: the node's node_id and token ({} and a test failure on
// error).
nlohmann::json enrollAgentWithVt(const std::string& url, const std::string& config_dir,
                                 const std::string& hostname);
// GET /v1/nodes/{id}/plan?wait=0 with the node's credential ({} on error).
nlohmann::json nodePlan(const std::string& url, const std::string& node_id,
                        const std::string& node_token);
// POST /v1/nodes/{id}/heartbeat; returns the HTTP status.
int nodeHeartbeat(const std::string& url, const std::string& node_id,
                  const std::string& node_token);
// POST `path` (below /v1/nodes/{id}/) with the node's credential, as its
// agent would: "heartbeat", "volumes/{vid}/status". Returns the HTTP status.
int agentPost(const std::string& url, const std::string& node_id, const std::string& node_token,
              const std::string& path, const nlohmann::json& body);
// POST /v1/nodes/{id}/instances/{iid}/status; returns the HTTP status.
int reportInstance(const std::string& url, const std::string& node_id,
                   const std::string& node_token, const std::string& instance_id,
                   const nlohmann::json& report);

// Starts vt in the background (e.g. `events tail --follow`), stdout and
// stderr appended to the given files, with runVt's environment.
[[nodiscard]] Result<Process> startVt(const std::vector<std::string>& args,
                                      const std::string& config_dir, const std::string& out_path,
                                      const std::string& err_path,
                                      const std::vector<std::string>& env = {});
// One transcript entry: "$ cmd", stdout, each stderr line as "stderr| ...",
// then "[exit N]" (the texts already normalised).
std::string transcriptEntry(const std::string& cmd, const std::string& out, const std::string& err,
                            int code);

// Replaces typed ids with <prefix_N> (numbered by first appearance across
// calls on the same Normalizer), RFC 3339 and table times with <time>,
// elapsed "12.3s" with <elapsed>, and the given literal strings with their
// placeholders.
class Normalizer {
 public:
  void literal(std::string text, std::string placeholder);
  [[nodiscard]] std::string apply(const std::string& text);

 private:
  std::map<std::string, std::string> ids_;
  std::map<std::string, int> counters_;
  std::vector<std::pair<std::string, std::string>> literals_;
};

// Tokens differ on every run: they become <token>.
[[nodiscard]] std::string maskTokens(const std::string& s);

// A golden transcript of vt runs: each command line, its stdout, its stderr
// (prefixed "stderr| ") and its exit code, normalized.
class Transcript {
 public:
  Transcript(std::string config_dir, Normalizer& norm)
      : config_dir_(std::move(config_dir)), norm_(norm) {}

  VtResult run(const std::vector<std::string>& args, const std::string& stdin_text = "");
  void note(const std::string& line) { text_ += "# " + norm_.apply(line) + "\n\n"; }
  [[nodiscard]] const std::string& text() const { return text_; }

 private:
  std::string config_dir_;
  Normalizer& norm_;
  std::string text_;
};

// A fresh control plane per test (its extra environment from
// controlPlaneEnv()), logged in as the admin, with an org `acme` that vt's
// context points at; the transcript starts with those three commands.
class AcmeOrgTest : public ::testing::Test {
 protected:
  void SetUp() override;
  [[nodiscard]] virtual std::vector<std::string> controlPlaneEnv() const { return {}; }

  plfm::testing::TempDir state_{"vt-cp"};
  plfm::testing::TempDir config_{"vt-config"};
  std::unique_ptr<ControlPlaneProcess> cp_;
  Normalizer norm_;
  Transcript t_{config_.path(), norm_};
};

// One control plane for every test of a suite: derive the fixture from it.
class SuiteTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    suite_ = new SuiteControlPlane(startSuiteControlPlane());
    cp_ = suite_->cp.get();
  }
  static void TearDownTestSuite() { delete suite_; }

  static inline SuiteControlPlane* suite_ = nullptr;
  static inline ControlPlaneProcess* cp_ = nullptr;
};

// One control plane for every test of a suite, with a secrets master key
// (made at suite start), for the tests of secrets and registry credentials.
class SecretsSuiteTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();

  static inline plfm::testing::TempDir* keys_ = nullptr;
  static inline SuiteControlPlane* suite_ = nullptr;
  static inline ControlPlaneProcess* cp_ = nullptr;
  static inline plfm::testing::TempDir* state_ = nullptr;
};

// A transcript in a fresh config dir, with the URL and the dir normalized,
// after `vt login` as the bootstrap admin (its exit code in `login_code`).
struct AdminSession {
  explicit AdminSession(const ControlPlaneProcess& cp) : config("vt-config") {
    norm.literal(cp.url, "<url>");
    norm.literal(config.path(), "<config>");
    login_code = t.run({"login", "--url", cp.url}, cp.admin_token + "\n").code;
  }
  plfm::testing::TempDir config;
  Normalizer norm;
  Transcript t{config.path(), norm};
  int login_code = -1;
};

}  // namespace plfm::vt::testing
