#include "cli.h"

#include <unistd.h>

#include <exception>
#include <nlohmann/json.hpp>
#include <ostream>

#include "commands.h"
#include "exec_pump.h"
#include "invocation.h"

namespace plfm::vt {
namespace {

int completion(Invocation& inv, const Command* root) {
  const std::string& shell = inv.args.positionals[0];
  if (shell == "bash") {
    inv.out.out() << bashCompletion(*root);
  } else if (shell == "zsh") {
    inv.out.out() << zshCompletion(*root);
  } else {
    inv.out.error("unknown shell `" + shell + "`; vt can complete bash and zsh", "");
    return exitcode::kUsage;
  }
  return 0;
}

}  // namespace

Command completionCommand(const Command* root) {
  return {.name = "completion",
          .summary = "Print a shell completion script (bash or zsh)",
          .help =
              "Examples:\n"
              "  vt completion bash > /etc/bash_completion.d/vt\n"
              "  vt completion zsh > \"${fpath[1]}/_vt\"",
          .positionals = {{.name = "SHELL", .help = "bash or zsh"}},
          .run = [root](Invocation& inv) { return completion(inv, root); }};
}

Command buildRootCommand() {
  Command root{.name = "vt",
               .summary = "vt: deploy and operate apps on plfm-vt, one microVM per instance",
               .help =
                   "Start here:\n"
                   "  vt login --url http://[::1]:8080 < admin-token   save a context\n"
                   "  vt orgs create acme                              an org owns apps\n"
                   "  vt deploy                                        ship ./vt.toml\n"
                   "  vt instances list                                desired vs current\n"
                   "  vt instances get INSTANCE                        events, checks and logs\n"
                   "  vt logs -f                                       the workload's output\n"
                   "  vt exec -- sh                                    a shell in an instance\n"
                   "  vt events tail -f                                what is happening\n\n"
                   "Output: tables on a terminal, JSON otherwise (--format json|table).\n"
                   "Progress goes to stderr, results to stdout. NO_COLOR disables colour.\n"
                   "Exit codes: 0 ok, 1 user error, 2 usage, 3 server or network, 4 conflict,\n"
                   "5 auth, 6 deploy failed. vt exec exits with the remote command's status,\n"
                   "or 255 when vt itself failed."};
  root.children.push_back(loginCommand());
  root.children.push_back(contextCommand());
  root.children.push_back(whoamiCommand());
  root.children.push_back(orgsCommand());
  root.children.push_back(appsCommand());
  root.children.push_back(envsCommand());
  root.children.push_back(deployCommand());
  root.children.push_back(rollbackCommand());
  root.children.push_back(releasesCommand());
  root.children.push_back(deploysCommand());
  root.children.push_back(scaleCommand());
  root.children.push_back(instancesCommand());
  root.children.push_back(logsCommand());
  root.children.push_back(execCommand());
  root.children.push_back(secretsCommand());
  root.children.push_back(registriesCommand());
  root.children.push_back(nodesCommand());
  root.children.push_back(systemCommand());
  root.children.push_back(tokensCommand());
  root.children.push_back(routesCommand());
  root.children.push_back(domainsCommand());
  root.children.push_back(volumesCommand());
  root.children.push_back(eventsCommand());
  root.children.push_back(manifestCommand());
  root.children.push_back(devCommand());
  return root;
}

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
        bool stdout_is_tty) {
  static const Command root = [] {
    Command r = buildRootCommand();
    return r;
  }();
  // The completion command needs the finished tree, so it is added last and
  // points at the static root.
  static const Command full = [] {
    Command r = root;
    r.children.push_back(completionCommand(&root));
    return r;
  }();
  if (args.empty()) {
    out << renderHelp({&full});
    return exitcode::kOk;
  }
  auto parsed = parseArgs(full, args);
  Format format = stdout_is_tty ? Format::kTable : Format::kJson;
  bool color = stdout_is_tty && colorAllowed(1);
  // stderr is often a terminal when stdout is a pipe (`vt ... | jq`), and the
  // other way round: each stream's colour follows its own file descriptor.
  const bool err_color = colorAllowed(2);
  if (!parsed) {
    if (parsed.error().detail("command") == "vt exec") {
      // Like ssh: every failure of vt itself is 255, so that a script can
      // tell it from the remote command's own statuses.
      err << "vt: " << parsed.error().message() << "\n";
      return kExecFailureStatus;
    }
    Output o(out, err, format, false, false, err_color);
    o.error(parsed.error().message(), "");
    return exitcode::kUsage;
  }
  if (auto f = parsed->value("format")) {
    if (*f == "json") {
      format = Format::kJson;
    } else if (*f == "table") {
      format = Format::kTable;
    } else {
      Output o(out, err, format, false, false, err_color);
      o.error("--format must be table or json (got `" + *f + "`)", "");
      return exitcode::kUsage;
    }
  }
  // --quiet prints IDs, which the table renderer does; explicit JSON wins.
  if (parsed->has("quiet") && !parsed->has("format")) format = Format::kTable;
  if (format == Format::kJson) color = false;
  Output output(out, err, format, parsed->has("quiet"), color, err_color);
  if (parsed->help) {
    out << renderHelp(parsed->path);
    return exitcode::kOk;
  }
  Invocation inv(std::move(*parsed), output);
  // The client checks status codes, not every field of every body: a server
  // of another version (or a proxy's error page) can answer with JSON of an
  // unexpected shape, and the json library throws. One clear line, not a
  // terminate.
  try {
    return inv.args.command().run(inv);
  } catch (const nlohmann::json::exception& e) {
    output.error("unexpected response from the control plane (" + std::string(e.what()) + ")",
                 "check that vt and the control plane are the same version (`vt context show` "
                 "names the URL)");
  } catch (const std::exception& e) {
    output.error("vt failed unexpectedly: " + std::string(e.what()),
                 "this is a vt bug; please report it with the command you ran");
  }
  return exitcode::kUnavailable;
}

}  // namespace plfm::vt
