#include "runtime/firecracker_contract.h"

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "schema_support.h"

#ifndef PLFM_SOURCE_DIR
#error "PLFM_SOURCE_DIR must be defined (plfm_add_test does it)"
#endif

namespace plfm::runtime::testing {

std::string firecrackerContractPath() {
  const char* dir = std::getenv("PLFM_REFERENCE_DIR");
  const std::string base = dir != nullptr && *dir != '\0'
                               ? std::string(dir)
                               : std::string(PLFM_SOURCE_DIR) + "/../shared/reference";
  return std::filesystem::path(base + "/firecracker/firecracker.yaml").lexically_normal().string();
}

std::optional<std::string> checkFirecrackerRequest(const std::string& method,
                                                   const std::string& path,
                                                   const std::string& body) {
  static std::once_flag once;
  static nlohmann::json doc;
  static std::string load_error;
  std::call_once(once, [] {
    const std::string file = firecrackerContractPath();
    if (!std::filesystem::exists(file)) {
      load_error = "Firecracker's API contract is missing at " + file +
                   " (set PLFM_REFERENCE_DIR to the directory holding firecracker/)";
      return;
    }
    try {
      doc = cp::testsupport::loadYamlFile(file);
    } catch (const std::exception& e) {
      load_error = e.what();
    }
  });
  if (!load_error.empty()) return load_error;
  return cp::testsupport::validateSwaggerRequest(doc, method, path, body);
}

}  // namespace plfm::runtime::testing
