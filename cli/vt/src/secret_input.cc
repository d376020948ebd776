#include "secret_input.h"

#include <termios.h>
#include <unistd.h>

#include <iostream>

namespace plfm::vt {

bool stdinIsTerminal() { return ::isatty(0) == 1; }

std::string readHiddenLine(const std::string& prompt) {
  const bool tty = stdinIsTerminal();
  termios old{};
  if (tty) {
    std::cerr << prompt << std::flush;
    ::tcgetattr(0, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(0, TCSANOW, &quiet);
  }
  std::string line;
  std::getline(std::cin, line);
  if (tty) {
    ::tcsetattr(0, TCSANOW, &old);
    std::cerr << "\n";
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace plfm::vt
