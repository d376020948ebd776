// LeakScanner: the proof that no secret value leaks (issue 9). A test
// registers canaries (distinctive random values it stores as secrets), runs
// every flow it can reach, then hands the scanner every place a value could
// have ended up: response bodies, log files, whole directory trees (state
// dirs), and every table of a database except the ones named as holding
// sealed material. expectClean() fails the test for each finding, naming
// the place and the canary by its label, never by its value.
//
//   LeakScanner scan;
//   const std::string token = scan.addCanary("API_TOKEN");  // random, unique
//   ... set it, list, deploy, fetch ...
//   scan.scanText("POST /secrets/set response", reply.raw);
//   scan.scanDir(state_dir);
//   scan.scanDatabase(conn, {"secret_versions"});
//   scan.expectClean();
//
// Each canary is searched in the forms a value takes on its way through the
// system: raw, JSON-escaped, and by its random core alone (which survives any
// escaping of the surrounding text). Binary files are searched as bytes.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/pg/pg.h"

namespace plfm::testing {

class LeakScanner {
 public:
  struct Finding {
    std::string where;  // "file /tmp/x/control-plane.log", "table events", ...
    std::string label;  // the canary's label
  };

  // A fresh canary, e.g. "cnry-<label>-<32 random hex>-\"q\"=\\n" : it
  // contains characters that need escaping in JSON, dotenv and the secrets
  // file, so escaped forms are exercised. Registers and returns it.
  std::string addCanary(std::string_view label);
  // The same with a value of the caller's choosing (at least 16 bytes).
  void addCanaryValue(std::string_view label, std::string value);

  void scanText(std::string_view where, std::string_view text);
  void scanFile(const std::string& path);
  // Every regular file under `dir`, recursively (symlinks are not followed).
  void scanDir(const std::string& dir);
  // Every base table of the connection's `public` schema but `exclude`, row
  // by row as text. Returns the tables scanned (so a test can assert that
  // the ones it cares about were among them).
  std::vector<std::string> scanDatabase(pg::Connection& conn, const std::set<std::string>& exclude);

  [[nodiscard]] const std::vector<Finding>& findings() const { return findings_; }
  // How many texts, files and tables were scanned (to catch an empty scan).
  [[nodiscard]] int scanned() const { return scanned_; }
  // One GoogleTest failure per finding.
  void expectClean() const;

 private:
  struct Canary {
    std::string label;
    std::vector<std::string> forms;
  };
  std::vector<Canary> canaries_;
  std::vector<Finding> findings_;
  int scanned_ = 0;
};

}  // namespace plfm::testing
