#include "args.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "plfm/core/strings.h"

namespace plfm::vt {
namespace {

Error usage(std::string message) { return Error("usage", std::move(message)); }

std::string pathText(const std::vector<const Command*>& path) {
  std::string out;
  for (const Command* c : path) {
    if (!out.empty()) out += ' ';
    out += c->name;
  }
  return out;
}

const Flag* findFlag(const Command& cmd, std::string_view name, char short_name) {
  auto match = [&](const Flag& f) {
    return short_name != 0 ? f.short_name == short_name : f.name == name;
  };
  for (const Flag& f : cmd.flags) {
    if (match(f)) return &f;
  }
  for (const Flag& f : globalFlags()) {
    if (match(f)) return &f;
  }
  return nullptr;
}

std::string didYouMean(std::string_view word, const std::vector<std::string>& candidates,
                       std::string_view prefix) {
  std::vector<std::string_view> views(candidates.begin(), candidates.end());
  std::optional<std::string> best = closestMatch(word, views);
  if (!best) return "";
  return " (did you mean `" + std::string(prefix) + *best + "`?)";
}

std::vector<std::string> flagNames(const Command& cmd) {
  std::vector<std::string> names;
  for (const Flag& f : cmd.flags) names.push_back(f.name);
  for (const Flag& f : globalFlags()) names.push_back(f.name);
  return names;
}

std::vector<std::string> childNames(const Command& cmd) {
  std::vector<std::string> names;
  for (const Command& c : cmd.children) names.push_back(c.name);
  return names;
}

const Command* findChild(const Command& cmd, std::string_view name) {
  for (const Command& c : cmd.children) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::string usageLine(const std::vector<const Command*>& path) {
  const Command& cmd = *path.back();
  std::string line = pathText(path);
  if (!cmd.children.empty() && !cmd.run) return line + " <command> [flags]";
  if (!cmd.children.empty()) line += " [<command>]";
  for (const Positional& p : cmd.positionals) {
    std::string name = p.name + (p.variadic ? "..." : "");
    line += ' ';
    line += p.required ? name : "[" + name + "]";
  }
  return line + " [flags]";
}

void renderFlags(std::string& out, const std::vector<Flag>& flags) {
  std::vector<std::pair<std::string, std::string>> rows;
  size_t width = 0;
  for (const Flag& f : flags) {
    std::string left = f.short_name != 0 ? std::string("-") + f.short_name + ", " : "    ";
    left += "--" + f.name;
    if (!f.value_name.empty()) left += " " + f.value_name;
    width = std::max(width, left.size());
    rows.emplace_back(std::move(left), f.help + (f.repeatable ? " (repeatable)" : ""));
  }
  for (const auto& row : rows) {
    out += "  " + row.first + std::string(width - row.first.size() + 3, ' ') + row.second + "\n";
  }
}

// Every command path below root ("apps", "apps create"), with the words that
// may follow it.
void collectPaths(const Command& cmd, const std::string& prefix,
                  std::vector<std::pair<std::string, std::vector<std::string>>>& out) {
  std::vector<std::string> words = childNames(cmd);
  for (const Flag& f : cmd.flags) words.push_back("--" + f.name);
  for (const Flag& f : globalFlags()) words.push_back("--" + f.name);
  out.emplace_back(prefix, words);
  for (const Command& c : cmd.children) {
    collectPaths(c, prefix.empty() ? c.name : prefix + " " + c.name, out);
  }
}

std::string joinWords(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) {
    if (!out.empty()) out += ' ';
    out += w;
  }
  return out;
}

}  // namespace

const std::vector<Flag>& globalFlags() {
  static const std::vector<Flag> flags = {
      {.name = "format",
       .value_name = "table|json",
       .help = "output format (default: table on a terminal, json otherwise)"},
      {.name = "quiet", .short_name = 'q', .help = "print only IDs and errors"},
      {.name = "context",
       .value_name = "NAME",
       .help = "use this context instead of the current one"},
      {.name = "org", .value_name = "ORG", .help = "org name or id (default: the context's org)"},
      {.name = "app",
       .value_name = "APP",
       .help = "app name or id (default: ./vt.toml, then the context)"},
      {.name = "env",
       .value_name = "ENV",
       .help = "env name or id (default: the context's env, else prod)"},
      {.name = "help", .short_name = 'h', .help = "show help for the command"},
  };
  return flags;
}

std::optional<std::string> Parsed::value(const std::string& flag) const {
  auto it = flags.find(flag);
  if (it == flags.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::string Parsed::commandLine() const { return pathText(path); }

namespace {

// Every short flag of `-abc` when each is a known switch (no value), so
// `vt exec -it` reads as `-i -t`; nullopt otherwise.
std::optional<std::vector<const Flag*>> bundledSwitches(const Command& cmd, std::string_view arg) {
  std::vector<const Flag*> flags;
  for (char c : arg.substr(1)) {
    const Flag* f = findFlag(cmd, "", c);
    if (f == nullptr || !f->value_name.empty()) return std::nullopt;
    flags.push_back(f);
  }
  return flags;
}

Result<void> parseInto(const std::vector<std::string>& args, Parsed& parsed) {
  bool only_positionals = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    const Command& cmd = *parsed.path.back();
    if (!only_positionals && arg == "--") {
      only_positionals = true;
      continue;
    }
    if (!only_positionals && arg.size() > 1 && arg[0] == '-' &&
        !(std::isdigit(static_cast<unsigned char>(arg[1])) != 0)) {
      bool is_long = arg.rfind("--", 0) == 0;
      std::string name;
      std::optional<std::string> inline_value;
      if (is_long) {
        name = arg.substr(2);
        if (auto eq = name.find('='); eq != std::string::npos) {
          inline_value = name.substr(eq + 1);
          name.resize(eq);
        }
      } else if (arg.size() != 2) {
        if (auto bundle = bundledSwitches(cmd, arg)) {
          for (const Flag* f : *bundle) {
            if (f->name == "help") {
              parsed.help = true;
            } else {
              parsed.flags[f->name].emplace_back("true");
            }
          }
          continue;
        }
        return usage("unknown flag `" + arg + "` for `" + pathText(parsed.path) +
                     "`; short flags take one letter, e.g. -q");
      }
      const Flag* flag = findFlag(cmd, name, is_long ? 0 : arg[1]);
      if (flag == nullptr) {
        return usage("unknown flag `" + arg + "` for `" + pathText(parsed.path) + "`" +
                     (is_long ? didYouMean(name, flagNames(cmd), "--") : "") + "; see `" +
                     pathText(parsed.path) + " --help`");
      }
      if (flag->name == "help") {
        parsed.help = true;
        continue;
      }
      if (flag->value_name.empty()) {
        if (inline_value) return usage("flag --" + flag->name + " takes no value");
        parsed.flags[flag->name].emplace_back("true");
        continue;
      }
      std::string value;
      if (inline_value) {
        value = *inline_value;
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return usage("flag --" + flag->name + " needs a value (" + flag->value_name + ")");
      }
      auto& values = parsed.flags[flag->name];
      if (!values.empty() && !flag->repeatable) {
        return usage("flag --" + flag->name + " given more than once");
      }
      values.push_back(std::move(value));
      continue;
    }
    if (!only_positionals && parsed.positionals.empty() && !cmd.children.empty()) {
      if (const Command* child = findChild(cmd, arg)) {
        parsed.path.push_back(child);
        continue;
      }
      if (!cmd.run || cmd.positionals.empty()) {
        return usage("unknown command `" + arg + "` for `" + pathText(parsed.path) + "`" +
                     didYouMean(arg, childNames(cmd), "") + "; see `" + pathText(parsed.path) +
                     " --help`");
      }
    }
    parsed.positionals.push_back(arg);
  }
  if (parsed.help) return {};
  const Command& cmd = *parsed.path.back();
  if (!cmd.run) {
    std::vector<std::string> names = childNames(cmd);
    return usage("`" + pathText(parsed.path) + "` needs a command: " + joinWords(names) +
                 "; see `" + pathText(parsed.path) + " --help`");
  }
  size_t required = 0;
  bool variadic = false;
  for (const Positional& p : cmd.positionals) {
    if (p.required) ++required;
    if (p.variadic) variadic = true;
  }
  if (parsed.positionals.size() < required) {
    const Positional& missing = cmd.positionals[parsed.positionals.size()];
    return usage("`" + pathText(parsed.path) + "` needs " + missing.name + " (" + missing.help +
                 "); usage: " + usageLine(parsed.path));
  }
  if (!variadic && parsed.positionals.size() > cmd.positionals.size()) {
    return usage("unexpected argument `" + parsed.positionals[cmd.positionals.size()] +
                 "`; usage: " + usageLine(parsed.path));
  }
  return {};
}

}  // namespace

Result<Parsed> parseArgs(const Command& root, const std::vector<std::string>& args) {
  Parsed parsed;
  parsed.path.push_back(&root);
  if (auto r = parseInto(args, parsed); !r) {
    // The command reached so far, for callers with their own exit codes
    // (`vt exec` exits 255 on its own failures).
    return std::move(r.error()).with("command", pathText(parsed.path));
  }
  return parsed;
}

std::string renderHelp(const std::vector<const Command*>& path) {
  const Command& cmd = *path.back();
  std::string out = cmd.summary + "\n\nUsage:\n  " + usageLine(path) + "\n";
  if (!cmd.help.empty()) out += "\n" + cmd.help + (cmd.help.back() == '\n' ? "" : "\n");
  if (!cmd.children.empty()) {
    out += "\nCommands:\n";
    size_t width = 0;
    for (const Command& c : cmd.children) width = std::max(width, c.name.size());
    for (const Command& c : cmd.children) {
      out += "  " + c.name + std::string(width - c.name.size() + 3, ' ') + c.summary + "\n";
    }
  }
  if (!cmd.positionals.empty()) {
    out += "\nArguments:\n";
    size_t width = 0;
    for (const Positional& p : cmd.positionals) width = std::max(width, p.name.size());
    for (const Positional& p : cmd.positionals) {
      out += "  " + p.name + std::string(width - p.name.size() + 3, ' ') + p.help +
             (p.required ? "" : " (optional)") + "\n";
    }
  }
  if (!cmd.flags.empty()) {
    out += "\nFlags:\n";
    renderFlags(out, cmd.flags);
  }
  out += "\nGlobal flags:\n";
  renderFlags(out, globalFlags());
  if (!cmd.children.empty()) {
    out += "\nRun `" + pathText(path) + " <command> --help` for more about a command.\n";
  }
  return out;
}

// The `case` patterns of every command path ("apps"|"apps create"|...) and
// one case arm per path, shaped by `arm` (path, its words).
static std::pair<std::string, std::string> completionCases(
    const Command& root,
    const std::function<std::string(const std::string&, const std::string&)>& arm) {
  std::vector<std::pair<std::string, std::vector<std::string>>> paths;
  collectPaths(root, "", paths);
  std::string known;
  std::string cases;
  for (const auto& [p, words] : paths) {
    if (!p.empty()) known += (known.empty() ? "" : "|") + std::string("\"") + p + "\"";
    cases += arm(p, joinWords(words));
  }
  return {known, cases};
}

std::string bashCompletion(const Command& root) {
  auto [known, cases] = completionCases(root, [](const std::string& p, const std::string& w) {
    return "    \"" + p + "\") words=\"" + w + "\" ;;\n";
  });
  return "# bash completion for vt. Install: vt completion bash > "
         "/etc/bash_completion.d/vt\n"
         "_vt() {\n"
         "  local cur=${COMP_WORDS[COMP_CWORD]} path=\"\" cand w i words\n"
         "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
         "    w=${COMP_WORDS[i]}\n"
         "    [[ $w == -* ]] && continue\n"
         "    cand=${path:+$path }$w\n"
         "    case \"$cand\" in\n"
         "      " +
         known +
         ") path=$cand ;;\n"
         "    esac\n"
         "  done\n"
         "  case \"$path\" in\n" +
         cases +
         "    *) words=\"\" ;;\n"
         "  esac\n"
         "  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
         "}\n"
         "complete -F _vt vt\n";
}

std::string zshCompletion(const Command& root) {
  auto [known, cases] = completionCases(root, [](const std::string& p, const std::string& w) {
    return "    (\"" + p + "\") opts=(" + w + ") ;;\n";
  });
  return "#compdef vt\n"
         "# zsh completion for vt. Install: vt completion zsh > \"${fpath[1]}/_vt\"\n"
         "_vt() {\n"
         "  local p=\"\" cand w\n"
         "  local -a opts\n"
         "  for w in ${words[2,CURRENT-1]}; do\n"
         "    [[ $w == -* ]] && continue\n"
         "    cand=${p:+$p }$w\n"
         "    case \"$cand\" in\n"
         "      (" +
         known +
         ") p=$cand ;;\n"
         "    esac\n"
         "  done\n"
         "  case \"$p\" in\n" +
         cases +
         "    (*) opts=() ;;\n"
         "  esac\n"
         "  compadd -- $opts\n"
         "}\n"
         "compdef _vt vt\n";
}

}  // namespace plfm::vt
