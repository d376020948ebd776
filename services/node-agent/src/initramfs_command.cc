// `plfm-node-agent initramfs`: builds the guest initramfs (vt-init plus the
// kernel's virtio modules) into a cache dir and prints its path, so that
// operators and `vt dev up` can pass it to `run --initramfs` without linking
// the builder (docs/specs/runtime/guest-init-delivery.md).
#include <CLI/CLI.hpp>
#include <iostream>

#include "command_line.h"
#include "runtime/initramfs.h"

namespace plfm::agent {
namespace {

struct InitramfsFlags {
  std::string init_binary;
  std::string kernel_dir;
  std::string out_dir;
};

int buildCommand(const InitramfsFlags& f) {
  runtime::InitramfsInputs in;
  in.init_binary = f.init_binary;
  if (!f.kernel_dir.empty()) in.modules_dir = f.kernel_dir + "/modules";
  auto path = runtime::buildInitramfs(in, f.out_dir);
  if (!path) {
    std::cerr << "plfm-node-agent: " << path.error().message() << "\n";
    return 1;
  }
  std::cout << *path << "\n";
  return 0;
}

}  // namespace

void registerInitramfsCommand(CLI::App& app, CommandAction* action) {
  auto flags = std::make_shared<InitramfsFlags>();
  auto* cmd = app.add_subcommand(
      "initramfs",
      "Build the guest initramfs (vt-init and the kernel's virtio modules) into a cache dir "
      "and print its path, for `run --initramfs`. Cached by content hash.");
  cmd->add_option("--init", flags->init_binary, "The static vt-init binary")->required();
  cmd->add_option("--kernel-dir", flags->kernel_dir,
                  "Kernel release dir from `scripts/fetch-kernel --print-dir` (its modules/ and "
                  "modules.order); omit for no modules");
  cmd->add_option("--out-dir", flags->out_dir, "Cache dir for initramfs-<sha256>.cpio")->required();
  cmd->callback([flags, action] { *action = [flags] { return buildCommand(*flags); }; });
}

}  // namespace plfm::agent
