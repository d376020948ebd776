// Test harness for `vt`: a real control plane process on a real PostgreSQL,
// the real `vt` binary run as a subprocess, and output normalisation for
// golden files (ids, times, URLs and elapsed times vary between runs).
#pragma once

#include <map>
#include <memory>
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

}  // namespace plfm::vt::testing
