// vt: the plfm-vt CLI. All logic lives in src/; see src/cli.h.
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "cli.h"

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  std::vector<std::string> args(
      argv + 1, argv + argc);  // NOLINT(cppcoreguidelines-pro-bounds-pointer-arithmetic)
  return plfm::vt::run(args, std::cout, std::cerr, ::isatty(1) == 1);
}
