#include "registry_fixture.h"

#include <chrono>
#include <csignal>
#include <filesystem>
#include <thread>

#include "plfm/core/process.h"
#include "plfm/http/http.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::image::testing {

Result<void> run(const std::vector<std::string>& argv, const std::string& log_path) {
  SpawnOptions so;
  so.stdout_path = log_path;
  return runChecked(argv, so);
}

Result<std::unique_ptr<Registry>> Registry::start(const std::string& dir,
                                                  const RegistryOptions& options) {
  std::unique_ptr<Registry> r(new Registry());
  r->dir_ = dir;
  r->options_ = options;
  r->log_ = dir + "/registry.log";
  std::filesystem::create_directories(dir + "/storage");
  std::string auth;
  if (!options.username.empty()) {
    PLFM_TRY(run({"htpasswd", "-Bbc", dir + "/htpasswd", options.username, options.password},
                 dir + "/htpasswd.log"));
    auth = "auth:\n  htpasswd:\n    realm: test-registry\n    path: " + dir + "/htpasswd\n";
  }
  // freeTcpPort() can race with another process; retry a few ports.
  for (int attempt = 0; attempt < 5; ++attempt) {
    r->port_ = plfm::testing::freeTcpPort();
    std::string config =
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        "storage:\n  delete:\n    enabled: true\n  filesystem:\n    rootdirectory: ";
    config += dir;
    config += "/storage\nhttp:\n  addr: 127.0.0.1:";
    config += std::to_string(r->port_);
    config += '\n';
    config += auth;
    PLFM_TRY(writeFileAtomic(dir + "/config.yml", config));
    SpawnOptions so;
    so.stdout_path = r->log_;
    // --pdeathsig: the registry dies with the test even on kill -9.
    PLFM_ASSIGN_OR_RETURN(r->process_, spawn({"setpriv", "--pdeathsig", "KILL", "docker-registry",
                                              "serve", dir + "/config.yml"},
                                             so));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (std::chrono::steady_clock::now() < deadline) {
      if (r->process_.poll()) break;
      http::ClientRequest req;
      req.url = "http://127.0.0.1:" + std::to_string(r->port_) + "/v2/";
      req.timeout = std::chrono::milliseconds(500);
      auto resp = http::request(req);
      if (resp && (resp->status == 200 || resp->status == 401)) return r;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    r->process_ = Process();
  }
  return Error(errc::kUnavailable, "docker-registry did not start:\n" + tailFile(r->log_, 20));
}

Registry::~Registry() {
  if (process_.valid()) {
    process_.signal(SIGTERM);
    if (!process_.waitFor(std::chrono::seconds(5))) process_.signal(SIGKILL);
  }
}

std::string Registry::blobDataPath(const std::string& hex) const {
  return dir_ + "/storage/docker/registry/v2/blobs/sha256/" + hex.substr(0, 2) + "/" + hex +
         "/data";
}

Result<void> Registry::push(const std::string& layout, const std::string& tag,
                            const std::string& repo_and_tag, const std::string& format) const {
  std::vector<std::string> argv = {"skopeo", "copy", "--all", "--dest-tls-verify=false"};
  if (format.empty()) {
    argv.emplace_back("--preserve-digests");
  } else {
    argv.emplace_back("--format");
    argv.push_back(format);
  }
  if (!options_.username.empty()) {
    argv.emplace_back("--dest-creds");
    argv.push_back(options_.username + ":" + options_.password);
  }
  argv.push_back("oci:" + layout + ":" + tag);
  argv.push_back("docker://" + host() + "/" + repo_and_tag);
  return run(argv, dir_ + "/skopeo.log");
}

}  // namespace plfm::image::testing
