// Entry point of the plfm-ingress binary: `serve` (the proxy) and
// `inspect-clienthello FILE [--proxy-protocol]` (a debugging view of a
// captured connection start). main.cc only calls runMain.
#pragma once

namespace plfm::ingress {

int runMain(int argc, char** argv);

}  // namespace plfm::ingress
