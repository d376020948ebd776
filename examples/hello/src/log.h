// hello's log: one line per event on stdout, which the platform collects
// (`vt logs`). Lines from concurrent connections never interleave. Nothing
// logged comes from a secret: values of /run/secrets/platform.env are never
// read, only the file's presence.
#pragma once

#include <string_view>

namespace plfm::hello {

void logLine(std::string_view line);

}  // namespace plfm::hello
