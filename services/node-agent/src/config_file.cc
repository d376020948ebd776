#include "config_file.h"

#include <CLI/CLI.hpp>
#include <charconv>

#include "plfm/core/config_table.h"

namespace plfm::agent {

namespace {

// A TOML value as the command line would have spelled it.
std::optional<std::string> asFlagValue(const config::Scalar& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  if (const auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  if (const auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  if (const auto* d = std::get_if<double>(&v)) {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, *d);
    return std::string(buf, r.ptr);
  }
  return std::nullopt;
}

// Feeds the entry to `opt` as if given on the command line, unless a flag or
// the environment already set it; the option's own checks decide.
config::ConfigTable::Setter feed(CLI::Option* opt) {
  return [opt](const config::Entry& e) -> Result<void> {
    if (opt->count() > 0) return ok();  // a flag or the environment said otherwise
    std::vector<std::string> inputs;
    for (const config::Scalar& v : e.is_array ? e.items : std::vector<config::Scalar>{e.value}) {
      auto s = asFlagValue(v);
      if (!s) return e.invalid("must be a string, a number, true or false, or an array of them");
      inputs.push_back(std::move(*s));
    }
    if (opt->get_type_size() == 0 && inputs.empty()) inputs = {"true"};  // a bare flag
    try {
      for (const auto& v : inputs) opt->add_result(v);
      opt->run_callback();
    } catch (const CLI::Error& x) {
      return e.invalid(std::string("is refused: ") + x.what());
    }
    return ok();
  };
}

// [backup] holds the backup settings without their prefix: `repository` for
// --backup-repository, and restic-binary and verify-every.
bool isBackupSetting(const CLI::Option& opt) {
  const std::string& name = opt.get_name();
  return name.find("backup") != std::string::npos || name == "--restic-binary" ||
         name == "--verify-every";
}

}  // namespace

void applyConfigFile(CLI::App& run, const std::string& path) {
  if (path.empty()) return;
  config::ConfigTable table;
  for (CLI::Option* opt : run.get_options()) {
    if (opt->get_name() == "--config" || opt == run.get_help_ptr() ||
        opt == run.get_help_all_ptr()) {
      continue;
    }
    for (const std::string& name : opt->get_lnames()) {
      table.add(name, feed(opt));
      if (!isBackupSetting(*opt)) continue;
      table.add("backup." + name, feed(opt));
      if (name.starts_with("backup-")) table.add("backup." + name.substr(7), feed(opt));
    }
  }
  if (auto r = table.load(path); !r) throw CLI::ConfigError(r.error().message());
}

}  // namespace plfm::agent
