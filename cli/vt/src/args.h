// The `vt` command tree and its argument parser.
//
// Every command is declared once, as data: its name, a one-line summary, a
// longer help text with examples, its flags and positionals, and its handler.
// The same tree drives parsing, `--help`, "did you mean" for typos, and the
// bash/zsh completion scripts, so they can never disagree.
//
// Grammar: `vt [global flags] <command> [<subcommand>...] [flags] [args]`.
// Flags may appear anywhere after the command path; `--flag=value` and
// `--flag value` are both accepted; `--` ends flag parsing. Global flags
// (--format, --quiet, --context, --org, --app, --env, --help) are accepted by
// every command.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::vt {

struct Invocation;

struct Flag {
  std::string name{};        // "image" for --image
  char short_name = 0;       // 'f' for -f, 0 for none
  std::string value_name{};  // "REF"; empty for a boolean switch
  std::string help{};
  bool repeatable = false;
};

struct Positional {
  std::string name{};  // "NAME"
  std::string help{};
  bool required = true;
  bool variadic = false;  // takes the rest (must be last)
};

struct Command {
  std::string name{};
  std::string summary{};  // one line, shown in the parent's command list
  std::string help{};     // paragraphs and examples, shown by --help
  std::vector<Flag> flags{};
  std::vector<Positional> positionals{};
  std::vector<Command> children{};
  bool mutating = false;  // prints a receipt; sends an Idempotency-Key
  std::function<int(Invocation&)> run{};
};

struct Parsed {
  std::vector<const Command*> path{};  // root first
  std::map<std::string, std::vector<std::string>> flags;
  std::vector<std::string> positionals{};
  bool help = false;

  [[nodiscard]] const Command& command() const { return *path.back(); }
  [[nodiscard]] bool has(const std::string& flag) const { return flags.count(flag) != 0; }
  // The last value given for a flag, if any.
  [[nodiscard]] std::optional<std::string> value(const std::string& flag) const;
  [[nodiscard]] std::string commandLine() const;  // "vt apps create"
};

// The flags every command accepts.
const std::vector<Flag>& globalFlags();

// Parses argv (without argv[0]). Usage errors (unknown command or flag,
// missing value, wrong number of arguments) are Errors with code
// "usage"; their message is one line and names the problem and, for
// typos, the closest known word.
[[nodiscard]] Result<Parsed> parseArgs(const Command& root, const std::vector<std::string>& args);

// Help text for the command at the end of `path`.
[[nodiscard]] std::string renderHelp(const std::vector<const Command*>& path);

// Shell completion scripts generated from the tree.
[[nodiscard]] std::string bashCompletion(const Command& root);
[[nodiscard]] std::string zshCompletion(const Command& root);

}  // namespace plfm::vt
