// The `vt` command tree. Each commands_*.cc contributes the commands of one
// area; cli.cc assembles them under the root.
#pragma once

#include "args.h"

namespace plfm::vt {

Command buildRootCommand();

// Per-area builders (commands_*.cc).
Command loginCommand();
Command contextCommand();
Command whoamiCommand();
Command orgsCommand();
// vt orgs quotas | set-quotas (commands_quotas.cc), added to `orgs`.
void addQuotaCommands(Command& orgs);
Command appsCommand();
Command envsCommand();
Command deployCommand();
Command rollbackCommand();
Command releasesCommand();
Command deploysCommand();
Command scaleCommand();
Command instancesCommand();
// vt instances get | releases get (commands_describe.cc).
Command instancesGetCommand();
Command releasesGetCommand();
Command logsCommand();
// vt exec (commands_exec.cc).
Command execCommand();
Command nodesCommand();
// vt system status (commands_nodes.cc).
Command systemCommand();
Command tokensCommand();
Command routesCommand();
Command domainsCommand();
Command volumesCommand();
Command eventsCommand();
Command secretsCommand();
Command registriesCommand();
Command manifestCommand();
Command devCommand();
Command completionCommand(const Command* root);

}  // namespace plfm::vt
