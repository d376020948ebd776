// ImageConfig is the part of an OCI image config (config.md) that decides
// how the workload runs: entrypoint, cmd, env, working dir, user and exposed
// ports, plus the layers' diff_ids that pulls verify against. toJson() gives
// the WorkloadSpec-ready form the agent hands to vt-init.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "image/digest.h"
#include "plfm/core/result.h"

namespace plfm::image {

struct ImageConfig {
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;            // "NAME=value", in image order
  std::string workdir;                     // "" means "/"
  std::string user;                        // "", "1000", "app", "1000:1000"
  std::vector<std::string> exposed_ports;  // "8080/tcp", sorted
  std::string os;
  std::string architecture;
  std::vector<Digest> diff_ids;  // sha256 of each uncompressed layer, in order

  // {"entrypoint":[...],"cmd":[...],"env":[...],"workdir":"/","user":"",
  //  "exposed_ports":[...]}; workdir defaults to "/" and user to "root".
  [[nodiscard]] nlohmann::json toJson() const;
};

// Parses the config blob. Unknown fields are ignored (the spec lets images
// carry more); a field of the wrong type is an error naming it.
[[nodiscard]] Result<ImageConfig> parseImageConfig(std::string_view bytes);

}  // namespace plfm::image
