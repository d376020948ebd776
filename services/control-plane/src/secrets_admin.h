// `plfm-control-plane secrets ...`: offline key management.
//   generate-key PATH            a new random 32-byte master key file, mode 0600
//   rotate-master-key --new-key-file PATH
//       makes PATH's key the primary and re-wraps every data key under it,
//       while servers keep running (docs/specs/secrets/encryption.md).
#pragma once

#include <string>

#include "config.h"

namespace plfm::cp {

[[nodiscard]] int secretsGenerateKey(const std::string& path);
[[nodiscard]] int secretsRotateMasterKey(const Config& cfg, const std::string& new_key_file);

}  // namespace plfm::cp
