// vt-init's sequence as PID 1 (guest-init.md §Boot sequence). main() calls
// runInit(); it never returns (the VM powers off at the end).
#pragma once

namespace plfm::init {

[[noreturn]] void runInit();

}  // namespace plfm::init
