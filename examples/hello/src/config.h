// hello's settings, read once from its environment at start (README.md, "Env
// vars"). Tests pass their own lookup function instead of the real getenv.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "plfm/core/result.h"

namespace plfm::hello {

// hello's UDP echo port (README.md, "Probes"): `hello probe ping` sends here.
inline constexpr uint16_t kDefaultEchoPort = 7007;

struct Config {
  uint16_t port = 8443;                   // HTTPS; 0 picks a free port (tests)
  uint16_t health_port = 8080;            // plain HTTP /healthz; 0 picks a free port
  uint16_t echo_port = kDefaultEchoPort;  // UDP echo; 0 picks a free port
  std::string cert_file = "/etc/hello/cert.pem";
  std::string key_file = "/etc/hello/key.pem";
  std::string secrets_file = "/run/secrets/platform.env";
  std::string instance_id;  // PLFM_INSTANCE_ID, set by the platform
  std::string release_id;   // PLFM_RELEASE_ID
  std::string greeting;     // GREETING, from the manifest's [env]
};

using EnvLookup = std::function<const char*(const char*)>;

// Fails on a port that is not a decimal number from 0 to 65535.
[[nodiscard]] Result<Config> configFromEnv(const EnvLookup& lookup);

}  // namespace plfm::hello
