#include "config_file.h"

#include <CLI/CLI.hpp>

namespace plfm::agent {

void applyConfigFile(CLI::App& run, const std::string& path) {
  if (path.empty()) return;
  const std::vector<CLI::ConfigItem> items = CLI::ConfigTOML().from_file(path);
  for (const CLI::ConfigItem& item : items) {
    if (item.name == "++" || item.name == "--") continue;  // section markers
    CLI::Option* opt = nullptr;
    if (item.parents.empty()) {
      opt = run.get_option_no_throw("--" + item.name);
    } else if (item.parents.size() == 1 && item.parents[0] == "backup") {
      opt = run.get_option_no_throw("--backup-" + item.name);
      if (opt == nullptr) opt = run.get_option_no_throw("--" + item.name);
      if (opt != nullptr && opt->get_name().find("backup") == std::string::npos &&
          opt->get_name() != "--restic-binary" && opt->get_name() != "--verify-every") {
        opt = nullptr;  // only backup settings live in [backup]
      }
    }
    if (opt == nullptr || opt->get_name() == "--config") {
      throw CLI::ConfigError("unknown setting '" + item.fullname() + "' in " + path);
    }
    if (opt->count() > 0) continue;  // a flag or the environment said otherwise
    std::vector<std::string> inputs = item.inputs;
    if (opt->get_type_size() == 0 && inputs.empty()) inputs = {"true"};  // a bare flag
    for (const auto& v : inputs) opt->add_result(v);
    opt->run_callback();
  }
}

}  // namespace plfm::agent
