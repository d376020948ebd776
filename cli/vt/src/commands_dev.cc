// vt dev up|down|status|logs|host: a local platform, one host or several in
// network namespaces (dev_platform.h, dev_hosts.h).
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "commands.h"
#include "dev_platform.h"
#include "invocation.h"
#include "plfm/core/process.h"

namespace plfm::vt {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

const Flag kStateDirFlag{.name = "state-dir",
                         .value_name = "DIR",
                         .help = "platform state (default: $XDG_STATE_HOME/plfm-dev)"};

// One spelling per directory (symlinks resolved, no trailing slash): names
// derive from it (the hosts' namespaces, the --ha formation's ROOT).
std::string stateDir(Invocation& inv) {
  std::string dir = inv.args.value("state-dir").value_or(dev::defaultStateDir());
  std::error_code ec;
  auto abs = fs::weakly_canonical(fs::absolute(dir, ec), ec);
  std::string out = ec ? dir : abs.lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

Result<dev::Settings> settings(Invocation& inv) {
  PLFM_ASSIGN_OR_RETURN(auto s, dev::loadSettings(stateDir(inv)));
  const std::vector<std::pair<const char*, int*>> ports = {
      {"control-plane-port", &s.control_plane_port},
      {"control-plane-node-port", &s.control_plane_node_port},
      {"registry-port", &s.registry_port},
      {"agent-port", &s.agent_port},
      {"ingress-port", &s.ingress_port},
      {"ingress-metrics-port", &s.ingress_metrics_port},
      {"control-plane-2-port", &s.control_plane_2_port},
      {"control-plane-2-node-port", &s.control_plane_2_node_port},
      {"pg-port", &s.pg_port}};
  for (const auto& [flag, port] : ports) {
    auto v = inv.args.value(flag);
    if (!v) continue;
    char* end = nullptr;
    long n = std::strtol(v->c_str(), &end, 10);
    if (v->empty() || *end != '\0' || n < 1 || n > 65535) {
      return Error("usage",
                   std::string("--") + flag + " must be a port 1-65535 (got `" + *v + "`)");
    }
    *port = static_cast<int>(n);
  }
  if (auto a = inv.args.value("accel")) {
    if (*a != "auto" && *a != "kvm" && *a != "tcg") {
      return Error("usage", "--accel must be auto, kvm or tcg");
    }
    s.accel = *a;
  }
  if (auto n = inv.args.value("nodes")) {
    char* end = nullptr;
    const long v = std::strtol(n->c_str(), &end, 10);
    if (n->empty() || *end != '\0' || v < 1 || v > dev::kMaxNodes) {
      return Error("usage",
                   "--nodes must be 1-" + std::to_string(dev::kMaxNodes) + " (got `" + *n + "`)");
    }
    s.nodes = static_cast<int>(v);
  }
  if (inv.args.has("ha")) s.ha = true;
  if (s.pg_port > 65533) {
    return Error("usage",
                 "--pg-port must leave room for the two data nodes after it (at most "
                 "65533)");
  }
  return s;
}

std::string seconds(SteadyClock::time_point since) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs",
                std::chrono::duration<double>(SteadyClock::now() - since).count());
  return buf;
}

Result<dev::Platform> platform(Invocation& inv) {
  PLFM_ASSIGN_OR_RETURN(auto s, settings(inv));
  dev::Binaries bins;
  if (inv.args.path.back()->name == "up" || inv.args.path.back()->name == "add") {
    PLFM_ASSIGN_OR_RETURN(bins, dev::findBinaries(inv.args.value("bin-dir").value_or("")));
  } else {
    bins.node_agent = dev::findNodeAgent("");  // down: the agents release their leftovers
    bins.pg_bindir = dev::defaultPgBindir();   // status: psql asks the formation's monitor
  }
  return dev::Platform(std::move(s), std::move(bins),
                       [&inv](const std::string& line) { inv.out.progress(line); });
}

void printStatus(Invocation& inv, const dev::Platform& p, const dev::PlatformStatus& st) {
  if (inv.out.format() == Format::kJson) {
    inv.out.json(dev::toJson(p.settings(), st));
    return;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : st.components) {
    rows.push_back({c.name, c.pid > 0 ? std::to_string(c.pid) : "-", c.address, c.health});
  }
  inv.out.table({"COMPONENT", "PID", "ADDRESS", "HEALTH"}, rows);
  if (!st.hosts.empty()) {
    std::vector<std::vector<std::string>> hosts;
    for (const auto& h : st.hosts) {
      hosts.push_back({std::string(1, h.letter), h.netns.empty() ? "(vt dev's own)" : h.netns,
                       h.underlay, h.agent + " " + h.agent_health,
                       h.instances >= 0 ? std::to_string(h.instances) : "-"});
    }
    inv.out.line("");
    inv.out.table({"HOST", "NETNS", "UNDERLAY", "AGENT", "INSTANCES"}, hosts);
  }
  if (p.settings().ha && !st.formation.empty()) {
    std::vector<std::vector<std::string>> nodes;
    for (const auto& n : st.formation) {
      nodes.push_back({"pg-" + n.name, n.reported, n.goal, n.healthy ? "yes" : "no"});
    }
    inv.out.line("");
    inv.out.table({"PG NODE", "STATE", "GOAL", "MONITOR HEALTH CHECK"}, nodes);
  }
  if (inv.out.quiet()) return;
  if (p.settings().ha && st.formation.empty()) {
    inv.out.line("formation: unknown (the monitor pg-monitor does not answer)");
  }
  if (!st.hosts.empty()) {
    inv.out.line(st.instances_total < 0
                     ? "instances: unknown (the control plane does not answer)"
                     : "instances: " + std::to_string(st.instances_total) + " placed on " +
                           std::to_string(st.hosts.size()) + " hosts");
  } else {
    inv.out.line(st.instances_total < 0
                     ? "instances: unknown (the node agent does not answer)"
                     : "instances: " + std::to_string(st.instances_running) + " running, " +
                           std::to_string(st.instances_total) + " on this node");
  }
  inv.out.line("state dir: " + p.settings().state_dir);
}

int devUp(Invocation& inv) {
  const auto t0 = SteadyClock::now();
  auto p = platform(inv);
  if (!p) return fail(inv, p.error());
  inv.out.progress("vt dev up: state dir " + p->settings().state_dir);
  if (auto r = p->up(); !r) {
    const std::string log(r.error().detail("log"));
    inv.out.error(r.error().message(), log.empty()
                                           ? ""
                                           : "see its log: " + log + "  (vt dev logs " +
                                                 std::string(r.error().detail("step")) + ")");
    if (!log.empty()) {
      std::string tail = tailFile(log, 15);
      if (!tail.empty()) inv.out.err() << "--- last lines of " << log << "\n" << tail;
    }
    return exitcode::kUnavailable;
  }
  const dev::Settings& s = p->settings();
  std::string urls;
  for (const auto& u : s.controlPlaneUrls()) urls += (urls.empty() ? "" : " and ") + u;
  Receipt r{.action = "dev.up",
            .message = "Platform up in " + seconds(t0) + "; context " + s.context + " (org " +
                       s.org + ") points at " + urls,
            .notes = {"registry: " + s.registryHost() + "  (push images here)",
                      "ingress: https://<host>:" + std::to_string(s.ingress_port) +
                          " on [::1] and 127.0.0.1"},
            .next = {"vt nodes list", "vt deploy --image " + s.registryHost() + "/hello:v1",
                     "vt dev status", "vt dev down"}};
  if (s.ha) {
    r.notes.emplace_back(
        "ha: 2 control-plane replicas; PostgreSQL primary and synchronous standby (pg-a, pg-b) "
        "and a monitor (pg-monitor), pg_auto_failover");
    r.next.insert(r.next.begin() + 2,
                  {"vt system status", "vt dev autoctl show state",
                   "vt dev autoctl perform failover  (or kill -9 -PID of pg-a's group: vt dev "
                   "status)"});
  }
  inv.out.receipt(r, dev::toJson(s, p->status()));
  return 0;
}

int devDown(Invocation& inv) {
  const auto t0 = SteadyClock::now();
  auto p = platform(inv);
  if (!p) return fail(inv, p.error());
  inv.out.progress("vt dev down: state dir " + p->settings().state_dir);
  auto left = p->down();
  if (!left) return fail(inv, left.error());
  if (!left->empty()) {
    std::string what;
    for (const auto& l : *left) what += "\n  " + l;
    inv.out.error("some things outlived `vt dev down`:" + what, "");
    return exitcode::kUnavailable;
  }
  if (inv.args.has("purge")) {
    if (auto r = p->purge(); !r) return fail(inv, r.error());
  }
  Receipt r{.action = "dev.down",
            .message = std::string("Platform stopped in ") + seconds(t0) +
                       (inv.args.has("purge") ? "; state dir removed"
                                              : "; state kept in " + p->settings().state_dir),
            .next = {"vt dev up"}};
  inv.out.receipt(r, json::object());
  return 0;
}

int devStatus(Invocation& inv) {
  auto p = platform(inv);
  if (!p) return fail(inv, p.error());
  auto st = p->status();
  printStatus(inv, *p, st);
  for (const auto& c : st.components) {
    if (c.health != "healthy") return exitcode::kUnavailable;
  }
  return 0;
}

int devHostAdd(Invocation& inv) {
  const auto t0 = SteadyClock::now();
  auto p = platform(inv);
  if (!p) return fail(inv, p.error());
  inv.out.progress("vt dev host add: state dir " + p->settings().state_dir);
  auto h = p->addHost();
  if (!h) {
    const std::string log(h.error().detail("log"));
    inv.out.error(h.error().message(), log.empty() ? "" : "see its log: " + log);
    return h.error().code() == errc::kFailedPrecondition ? exitcode::kUsage
                                                         : exitcode::kUnavailable;
  }
  const std::string letter(1, h->letter);
  Receipt r{.action = "dev.host.add",
            .message = "Host " + letter + " added in " + seconds(t0) + " at " + h->underlay + " (" +
                       h->netns + "), its agent enrolled",
            .next = {"vt nodes list", "vt dev status", "vt dev host stop " + letter}};
  inv.out.receipt(r, json{{"host", letter},
                          {"netns", h->netns},
                          {"underlay_address", h->underlay},
                          {"agent", h->component}});
  return 0;
}

int devHostStop(Invocation& inv) {
  auto p = platform(inv);
  if (!p) return fail(inv, p.error());
  const std::string& letter = inv.args.positionals[0];
  if (letter.size() != 1 || letter[0] < 'a' || letter[0] > 'a' + dev::kMaxNodes - 1) {
    return fail(inv, Error("usage", "LETTER must be a host's letter, b to " +
                                        std::string(1, 'a' + dev::kMaxNodes - 1) + " (got `" +
                                        letter + "`)"));
  }
  auto done = p->stopHost(letter[0]);
  if (!done) return fail(inv, done.error());
  for (const auto& what : *done) inv.out.progress("  " + what);
  Receipt r{.action = "dev.host.stop",
            .message = "Host " + letter + " stopped: its agent and VMs killed, its underlay " +
                       "link down",
            .next = {"vt nodes list", "vt dev up  (starts it again)", "vt dev down"}};
  inv.out.receipt(r, json{{"host", letter}, {"done", *done}});
  return 0;
}

// pg_autoctl against the formation of `vt dev up --ha`, as its user and with
// its config dirs; --pgdata defaults to the monitor's.
int devAutoctl(Invocation& inv) {
  auto s = settings(inv);
  if (!s) return fail(inv, s.error());
  if (!s->ha) {
    return fail(inv, Error("usage", "the platform in " + s->state_dir +
                                        " runs without --ha: it has no pg_auto_failover "
                                        "formation (`vt dev up --ha` on a new --state-dir)"));
  }
  const dev::Formation f(s->state_dir, s->pg_port, dev::defaultPgBindir());
  if (!std::filesystem::exists(f.pgdata(dev::Formation::kMonitor))) {
    return fail(inv, Error(errc::kFailedPrecondition,
                           "no formation at " + f.root() +
                               " (`vt dev up` makes it; as root and as another user the "
                               "formation is in different places)"));
  }
  std::vector<std::string> args = inv.args.positionals;
  const bool has_pgdata = std::any_of(args.begin(), args.end(), [](const std::string& a) {
    return a == "--pgdata" || a.starts_with("--pgdata=") || a == "-D" ||
           (a.starts_with("-D") && a.size() > 2);
  });
  if (!has_pgdata) args.insert(args.end(), {"--pgdata", f.pgdata(dev::Formation::kMonitor)});
  SpawnOptions so;
  so.stdout_fd = STDOUT_FILENO;
  so.stderr_fd = STDERR_FILENO;
  so.cwd = f.root();
  so.new_session = false;  // Ctrl-C reaches it
  auto p = spawn(f.autoctl(args), so);
  if (!p) return fail(inv, p.error());
  const int status = p->wait();
  return exitCodeOf(status);
}

// Prints what was appended to the files since `offsets`, whole lines only.
void pump(Invocation& inv, const std::vector<std::pair<std::string, std::string>>& files,
          std::map<std::string, std::streamoff>& offsets, bool prefix) {
  for (const auto& [name, file] : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) continue;
    in.seekg(0, std::ios::end);
    const std::streamoff size = in.tellg();
    std::streamoff& at = offsets[file];
    if (size < at) at = 0;  // truncated or replaced
    if (size == at) continue;
    in.seekg(at);
    std::string chunk(static_cast<size_t>(size - at), '\0');
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    const size_t last_nl = chunk.rfind('\n');
    if (last_nl == std::string::npos) continue;
    chunk.resize(last_nl + 1);
    at += static_cast<std::streamoff>(chunk.size());
    for (size_t start = 0; start < chunk.size();) {
      size_t end = chunk.find('\n', start);
      inv.out.out() << (prefix ? name + "| " : "") << chunk.substr(start, end - start) << "\n";
      start = end + 1;
    }
  }
  inv.out.out().flush();
}

int devLogs(Invocation& inv) {
  auto p = platform(inv);
  if (!p) return fail(inv, p.error());
  std::vector<std::pair<std::string, std::string>> files;
  auto names = p->components();
  if (p->settings().nodes > 1) names.emplace_back("hosts");
  if (!inv.args.positionals.empty()) {
    const std::string& c = inv.args.positionals[0];
    if (std::find(names.begin(), names.end(), c) == names.end()) {
      std::string known;
      for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
      return fail(inv, Error("usage", "unknown component `" + c + "` (one of " + known + ")"));
    }
    files.emplace_back(c, p->logPath(c));
  } else {
    for (const auto& n : names) files.emplace_back(n, p->logPath(n));
  }
  size_t lines = 40;
  if (auto n = inv.args.value("lines"))
    lines = static_cast<size_t>(std::max(0, std::atoi(n->c_str())));
  const bool prefix = files.size() > 1;
  std::map<std::string, std::streamoff> offsets;
  for (const auto& [name, file] : files) {
    std::string tail = tailFile(file, lines);
    for (size_t start = 0; start < tail.size();) {
      size_t end = tail.find('\n', start);
      if (end == std::string::npos) end = tail.size();
      inv.out.out() << (prefix ? name + "| " : "") << tail.substr(start, end - start) << "\n";
      start = end + 1;
    }
    std::error_code ec;
    offsets[file] = static_cast<std::streamoff>(fs::file_size(file, ec));
    if (ec) offsets[file] = 0;
  }
  inv.out.out().flush();
  if (!inv.args.has("follow")) return 0;
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    pump(inv, files, offsets, prefix);
  }
}

}  // namespace

Command devCommand() {
  const std::vector<Flag> port_flags = {
      kStateDirFlag,
      {.name = "bin-dir",
       .value_name = "DIR",
       .help = "look here first for the binaries (then: vt's build tree, PATH)"},
      {.name = "control-plane-port", .value_name = "PORT", .help = "on [::1] (default 8080)"},
      {.name = "control-plane-node-port",
       .value_name = "PORT",
       .help = "node listener (agent, ingress) on [::1] (default 8081)"},
      {.name = "registry-port", .value_name = "PORT", .help = "on 127.0.0.1 (default 5000)"},
      {.name = "agent-port",
       .value_name = "PORT",
       .help = "agent /healthz on [::1] (default 9102)"},
      {.name = "ingress-port",
       .value_name = "PORT",
       .help = "on [::1] and 127.0.0.1 (default 8443)"},
      {.name = "ingress-metrics-port", .value_name = "PORT", .help = "on [::1] (default 9443)"},
      {.name = "accel", .value_name = "MODE", .help = "QEMU acceleration: auto, kvm or tcg"},
      {.name = "nodes",
       .value_name = "N",
       .help = "hosts, 1-8 (default 1): hosts B... are network namespaces (root)"},
      {.name = "ha",
       .help = "2 control-plane replicas and PostgreSQL with failover (pg_auto_failover)"},
      {.name = "pg-port",
       .value_name = "PORT",
       .help = "--ha: the monitor on 127.0.0.1; pg-a and pg-b the next two (default 5440)"},
      {.name = "control-plane-2-port",
       .value_name = "PORT",
       .help = "--ha: the second replica on [::1] (default 8082)"},
      {.name = "control-plane-2-node-port",
       .value_name = "PORT",
       .help = "--ha: the second replica's node listener on [::1] (default 8083)"}};
  Command up{.name = "up",
             .summary = "Start the platform in the background (idempotent)",
             .help =
                 "Starts, in order, each with a log under STATE/logs: PostgreSQL (as the\n"
                 "postgres user when run as root), the control plane, a docker-registry on\n"
                 "127.0.0.1, the node agent (qemu driver, enrolled on first start) and the\n"
                 "ingress on [::1] and 127.0.0.1. Then writes the vt context `dev` (org dev)\n"
                 "and makes it current. What already runs and is healthy is left alone.\n"
                 "Ports and --nodes given once are remembered in STATE/dev.json.\n\n"
                 "--nodes N (root): hosts B, C, ... in network namespaces plfm-<tag>-b, ...\n"
                 "joined by a bridge (fd00:5c::a, ::b, ... /64), one agent each; the control\n"
                 "plane's node listener is also on fd00:5c::a, the registry on 198.18.0.10.\n\n"
                 "--ha: PostgreSQL as a pg_auto_failover formation on 127.0.0.1 (monitor\n"
                 "pg-monitor, primary and synchronous standby pg-a and pg-b, TCP) and a second\n"
                 "control-plane replica (control-plane-2); the agents, the ingress and the vt\n"
                 "context get both replicas. Kill -9 a replica, or a data node's whole process\n"
                 "group (kill -9 -PID, pids: `vt dev status`), or run `vt dev autoctl perform\n"
                 "failover`, and watch it carry on. Fixed per state dir.\n\n"
                 "Binaries: PLFM_CONTROL_PLANE_BIN, PLFM_NODE_AGENT_BIN, PLFM_INGRESS_BIN,\n"
                 "PLFM_VT_INIT_BIN, PLFM_FETCH_KERNEL override; else --bin-dir, vt's build\n"
                 "tree, vt's directory, PATH. PLFM_DEV_KERNEL_DIR skips scripts/fetch-kernel.\n\n"
                 "Examples:\n"
                 "  vt dev up\n"
                 "  vt dev up --state-dir /tmp/plfm --ingress-port 9443 --control-plane-port "
                 "9080\n"
                 "  sudo vt dev up --nodes 3\n"
                 "  vt dev up --ha --state-dir /tmp/plfm-ha",
             .flags = port_flags,
             .run = devUp};
  Command down{
      .name = "down",
      .summary = "Stop the platform: VMs shut down, nothing left running",
      .help =
          "Stops the ingress, the node agent (which shuts its VMs down), the registry,\n"
          "the control plane and PostgreSQL, in that order, then checks that no process,\n"
          "socket or mount of the state dir is left. With --nodes, also every host's\n"
          "agent, mesh interface and network namespace. State is kept for the next `up`\n"
          "unless --purge.\n\n"
          "Examples:\n"
          "  vt dev down\n"
          "  vt dev down --purge",
      .flags = {kStateDirFlag,
                {.name = "purge", .help = "also delete the state dir (data, images, logs)"}},
      .run = devDown};
  Command status{.name = "status",
                 .summary = "Each component's pid, address and health, the hosts, the instances",
                 .help =
                     "Exit code 0 when every component is healthy, 3 otherwise.\n\n"
                     "Examples:\n"
                     "  vt dev status\n"
                     "  vt dev status --format json",
                 .flags = {kStateDirFlag},
                 .run = devStatus};
  Command logs{.name = "logs",
               .summary = "Show (and follow) the platform's own logs",
               .help =
                   "COMPONENT is postgres, control-plane, registry, node-agent (node-agent-b,\n"
                   "... with --nodes), ingress or hosts (with --ha: pg-monitor, pg-a, pg-b and\n"
                   "control-plane-2 too);\n"
                   "without it, every log, each line prefixed with its component.\n"
                   "App logs are `vt logs`.\n\n"
                   "Examples:\n"
                   "  vt dev logs node-agent -f\n"
                   "  vt dev logs -n 200",
               .flags = {kStateDirFlag,
                         {.name = "follow", .short_name = 'f', .help = "keep printing new lines"},
                         {.name = "lines",
                          .short_name = 'n',
                          .value_name = "N",
                          .help = "lines of history per log (default 40)"}},
               .positionals = {{.name = "COMPONENT", .help = "one log only", .required = false}},
               .run = devLogs};
  Command host_add{
      .name = "add",
      .summary = "Add a host (the next letter) to a running multi-host platform",
      .help =
          "Creates the next host's network namespace and underlay link and starts its\n"
          "agent, enrolled with the control plane (its node joins the mesh). The node\n"
          "count saved in STATE/dev.json grows by one; at most 8 hosts.\n\n"
          "Examples:\n"
          "  vt dev host add",
      .flags = {kStateDirFlag,
                {.name = "bin-dir",
                 .value_name = "DIR",
                 .help = "look here first for the binaries (then: vt's build tree, PATH)"}},
      .run = devHostAdd};
  Command host_stop{
      .name = "stop",
      .summary = "Stop a host as if it lost power: agent and VMs killed, link down",
      .help =
          "Kills host LETTER's agent and every process in its network namespace (its\n"
          "VMs, wireguard-go) and takes its underlay link down. The control plane sees\n"
          "the node stop heartbeating and replaces its instances. Host a runs the\n"
          "control plane and cannot stop alone. `vt dev up` starts it again; `vt dev\n"
          "down` removes it.\n\n"
          "Examples:\n"
          "  vt dev host stop b",
      .flags = {kStateDirFlag},
      .positionals = {{.name = "LETTER", .help = "the host: b, c, ..."}},
      .run = devHostStop};
  Command autoctl{
      .name = "autoctl",
      .summary = "Run pg_autoctl on the --ha platform's PostgreSQL formation",
      .help =
          "Runs pg_autoctl ARGS as the formation's user, with its config dirs\n"
          "(ROOT/autoctl; ROOT is STATE/postgres, or ~postgres/plfm-dev/<hash> as root)\n"
          "and --pgdata the monitor's unless ARGS name one.\n"
          "Put `--` before ARGS that start with a dash.\n\n"
          "Examples:\n"
          "  vt dev autoctl show state\n"
          "  vt dev autoctl perform failover\n"
          "  vt dev autoctl -- show state --json",
      .flags = {kStateDirFlag},
      .positionals = {{.name = "ARGS", .help = "pg_autoctl's arguments", .variadic = true}},
      .run = devAutoctl};
  Command host{.name = "host",
               .summary = "Add or stop one host of a multi-host platform",
               .help =
                   "Examples:\n"
                   "  vt dev host add\n"
                   "  vt dev host stop b",
               .children = {host_add, host_stop}};
  return {
      .name = "dev",
      .summary = "A local platform (one host or several): up, down, status, logs, host, autoctl",
      .help =
          "Runs the whole platform on this machine under one state dir, for trying\n"
          "vt and for tests. `make dev` uses it. See docs/engineering/vt-dev.md.\n\n"
          "Examples:\n"
          "  vt dev up && vt dev status\n"
          "  vt dev logs control-plane -f\n"
          "  vt dev down",
      .children = {up, down, status, logs, host, autoctl}};
}

}  // namespace plfm::vt
