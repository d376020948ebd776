// A real registry for tests and benchmarks: Debian's docker-registry
// (distribution v2) on 127.0.0.1, with its config, storage and log in a temp
// dir and its port from freeTcpPort(). Optionally with htpasswd basic auth.
// Images are pushed into it with `skopeo copy oci:DIR:TAG docker://...`.
#pragma once

#include <memory>
#include <string>

#include "plfm/core/process.h"
#include "plfm/core/result.h"

namespace plfm::image::testing {

struct RegistryOptions {
  std::string username;  // non-empty: require basic auth (htpasswd, bcrypt)
  std::string password;
};

class Registry {
 public:
  // Starts docker-registry under `dir` and waits until /v2/ answers.
  [[nodiscard]] static Result<std::unique_ptr<Registry>> start(const std::string& dir,
                                                               const RegistryOptions& options = {});
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  [[nodiscard]] std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] const std::string& logPath() const { return log_; }

  // skopeo copy oci:LAYOUT:TAG docker://HOST/REPO (all platforms of an
  // index). `format` "v2s2" converts to Docker schema2 on the way.
  [[nodiscard]] Result<void> push(const std::string& layout, const std::string& tag,
                                  const std::string& repo_and_tag,
                                  const std::string& format = "") const;
  // Where the registry keeps a blob's bytes (tests corrupt it).
  [[nodiscard]] std::string blobDataPath(const std::string& hex) const;

 private:
  Registry() = default;
  Process process_;
  int port_ = 0;
  std::string dir_;
  std::string log_;
  RegistryOptions options_;
};

// Runs argv, fails with its output tail unless it exits 0.
[[nodiscard]] Result<void> run(const std::vector<std::string>& argv, const std::string& log_path);

}  // namespace plfm::image::testing
