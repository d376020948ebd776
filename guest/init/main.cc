// vt-init: PID 1 of every plfm microVM (docs/specs/runtime/guest-init.md).
#include <unistd.h>

#include <cstdio>

#include "boot.h"

int main() {
  if (::getpid() != 1) {
    std::fprintf(stderr, "vt-init: must run as PID 1 inside a plfm microVM\n");
    return 2;
  }
  plfm::init::runInit();
}
