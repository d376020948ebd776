// Reading secrets from the user: a line from stdin with echo off on a
// terminal (the prompt and the newline go to stderr, the value nowhere).
#pragma once

#include <string>

namespace plfm::vt {

// One line from stdin without its line ending; on a terminal, `prompt` is
// shown on stderr and the typed text is not echoed.
[[nodiscard]] std::string readHiddenLine(const std::string& prompt);

// True when stdin is a terminal.
[[nodiscard]] bool stdinIsTerminal();

}  // namespace plfm::vt
