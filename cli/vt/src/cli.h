// Entry point of the `vt` CLI, separate from main() so that tests can run
// it in-process.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace plfm::vt {

// Runs `vt <args>`; returns the exit code (docs/specs/cli/output.md).
int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        bool stdout_is_tty);

}  // namespace plfm::vt
