#include "dev_platform.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "client.h"
#include "config.h"
#include "dev_process.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"
#include "plfm/http/http.h"
#include "plfm/http/pki.h"

namespace plfm::vt::dev {
namespace fs = std::filesystem;
using nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr int kPgPort = 5432;  // names the socket file only: no TCP listener

std::string envVar(const char* name) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe)
  return v != nullptr ? std::string(v) : std::string();
}

bool executable(const std::string& p) { return !p.empty() && ::access(p.c_str(), X_OK) == 0; }

std::string selfDir() {
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "" : exe.parent_path().string();
}

// env, --bin-dir, the build tree (vt is BUILD/cli/vt/vt), beside vt, PATH.
std::string locate(const char* env, const std::string& bin_dir, const std::string& build_rel,
                   const std::string& name) {
  if (std::string v = envVar(env); !v.empty()) return v;
  if (!bin_dir.empty() && executable(bin_dir + "/" + name)) return bin_dir + "/" + name;
  const std::string self = selfDir();
  if (!self.empty()) {
    const std::string build = self + "/../../" + build_rel + "/" + name;
    if (executable(build)) return fs::weakly_canonical(build).string();
    if (executable(self + "/" + name)) return self + "/" + name;
  }
  return onPath(name);
}

std::string elapsed(SteadyClock::time_point since) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs",
                std::chrono::duration<double>(SteadyClock::now() - since).count());
  return buf;
}

// Runs argv to completion with its output appended to `log`; returns the
// last stdout line (the tools here print their result last).
Result<std::string> runForLine(const std::vector<std::string>& argv, const std::string& log,
                               const std::string& tmp) {
  SpawnOptions so;
  so.stdout_path = tmp;
  so.stderr_path = log;
  std::error_code ec;
  fs::remove(tmp, ec);
  auto r = runChecked(argv, so);
  auto out = readFile(tmp);
  fs::remove(tmp, ec);
  if (!r) {
    return Error(errc::kInternal, argv[0] + " failed: " + r.error().message());
  }
  std::string text = std::string(trim(out.value_or("")));
  auto nl = text.rfind('\n');
  return nl == std::string::npos ? text : text.substr(nl + 1);
}

bool httpOk(const std::string& url, std::string_view also_ok_body = {},
            const std::string& ca_file = {}) {
  http::ClientRequest req;
  req.url = url;
  req.tls.ca_file = ca_file;
  // The registry on host A's underlay IPv4 address (--nodes): no token is sent.
  req.tls.unsafe_allow_plain_http = url.starts_with("http://");
  req.timeout = std::chrono::milliseconds(800);
  auto r = http::request(req);
  if (!r) return false;
  return r->status == 200 ||
         (!also_ok_body.empty() && r->body.find(also_ok_body) != std::string::npos);
}

std::string already(pid_t pid, const std::string& addr) {
  return "already running (pid " + std::to_string(pid) + ") " + addr;
}

std::string started(pid_t pid, const std::string& addr) {
  return "started (pid " + std::to_string(pid) + ") " + addr;
}

// The control plane's settings for several hosts when the user has no
// config.toml (docs/engineering/vt-dev.md, "Several hosts"): a host stopped
// with `vt dev host stop` is unreachable after 5 s without a heartbeat, its
// instances are replaced 3 s later, and it leaves the mesh (down) after 15 s.
// Heartbeats every second keep a busy machine from looking dead.
constexpr const char* kMultiHostConfig = "multi-host.toml";

std::string multiHostConfig() {
  return "# Written by `vt dev up --nodes N` (N > 1) at each start of the control plane; a\n"
         "# config.toml of your own next to it replaces it (docs/engineering/vt-dev.md).\n"
         "heartbeat_interval_seconds = 1\n"
         "heartbeat_timeout_seconds = 5\n"
         "unreachable_grace_seconds = 3\n"
         "node_down_after_seconds = 15\n";
}

}  // namespace

std::vector<std::string> Settings::controlPlaneUrls() const {
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(replicas()));
  for (int r = 0; r < replicas(); ++r) out.push_back("https://[::1]:" + std::to_string(apiPort(r)));
  return out;
}

std::vector<std::string> Settings::controlPlaneNodeUrls(bool underlay) const {
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(replicas()));
  const std::string host = underlay ? "[" + underlayAddress(0) + "]" : std::string("[::1]");
  for (int r = 0; r < replicas(); ++r) {
    out.push_back("https://" + host + ":" + std::to_string(nodePort(r)));
  }
  return out;
}

std::string defaultStateDir() {
  if (std::string x = envVar("XDG_STATE_HOME"); !x.empty()) return x + "/plfm-dev";
  std::string home = envVar("HOME");
  return (home.empty() ? std::string("/root") : home) + "/.local/state/plfm-dev";
}

Result<Settings> loadSettings(const std::string& state_dir) {
  Settings s;
  s.state_dir = state_dir;
  const std::string file = state_dir + "/dev.json";
  if (!fs::exists(file)) return s;
  PLFM_ASSIGN_OR_RETURN(auto text, readFile(file));
  json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return Error(errc::kInvalidArgument, file + " is not a JSON object");
  s.control_plane_port = j.value("control_plane_port", s.control_plane_port);
  s.control_plane_node_port = j.value("control_plane_node_port", s.control_plane_node_port);
  s.registry_port = j.value("registry_port", s.registry_port);
  s.agent_port = j.value("agent_port", s.agent_port);
  s.ingress_port = j.value("ingress_port", s.ingress_port);
  s.ingress_metrics_port = j.value("ingress_metrics_port", s.ingress_metrics_port);
  s.accel = j.value("accel", s.accel);
  s.org = j.value("org", s.org);
  s.context = j.value("context", s.context);
  s.nodes = std::clamp(j.value("nodes", s.nodes), 1, kMaxNodes);
  s.ha = j.value("ha", s.ha);
  s.pg_port = j.value("pg_port", s.pg_port);
  s.control_plane_2_port = j.value("control_plane_2_port", s.control_plane_2_port);
  s.control_plane_2_node_port = j.value("control_plane_2_node_port", s.control_plane_2_node_port);
  return s;
}

Result<void> saveSettings(const Settings& s) {
  json j = {{"control_plane_port", s.control_plane_port},
            {"control_plane_node_port", s.control_plane_node_port},
            {"registry_port", s.registry_port},
            {"agent_port", s.agent_port},
            {"ingress_port", s.ingress_port},
            {"ingress_metrics_port", s.ingress_metrics_port},
            {"accel", s.accel},
            {"org", s.org},
            {"context", s.context},
            {"nodes", s.nodes},
            {"ha", s.ha},
            {"pg_port", s.pg_port},
            {"control_plane_2_port", s.control_plane_2_port},
            {"control_plane_2_node_port", s.control_plane_2_node_port}};
  return writeFileAtomic(s.state_dir + "/dev.json", j.dump(2) + "\n");
}

std::string defaultPgBindir() {
  std::string dir = envVar("PLFM_PG_BINDIR");
  return dir.empty() ? std::string("/usr/lib/postgresql/15/bin") : dir;
}

std::string findNodeAgent(const std::string& bin_dir) {
  std::string p = locate("PLFM_NODE_AGENT_BIN", bin_dir, "services/node-agent", "plfm-node-agent");
  return executable(p) ? p : "";
}

Result<Binaries> findBinaries(const std::string& bin_dir) {
  Binaries b;
  b.control_plane =
      locate("PLFM_CONTROL_PLANE_BIN", bin_dir, "services/control-plane", "plfm-control-plane");
  b.node_agent = locate("PLFM_NODE_AGENT_BIN", bin_dir, "services/node-agent", "plfm-node-agent");
  b.ingress = locate("PLFM_INGRESS_BIN", bin_dir, "services/ingress", "plfm-ingress");
  b.vt_init = locate("PLFM_VT_INIT_BIN", bin_dir, "guest/init", "vt-init");
  b.fetch_kernel = locate("PLFM_FETCH_KERNEL", bin_dir, "../scripts", "fetch-kernel");
  b.registry = locate("PLFM_REGISTRY_BIN", "", "-", "docker-registry");
  b.pg_bindir = defaultPgBindir();
  std::vector<std::pair<std::string, std::string>> missing;
  for (const auto& [what, p] : std::vector<std::pair<std::string, std::string>>{
           {"plfm-control-plane (PLFM_CONTROL_PLANE_BIN)", b.control_plane},
           {"plfm-node-agent (PLFM_NODE_AGENT_BIN)", b.node_agent},
           {"plfm-ingress (PLFM_INGRESS_BIN)", b.ingress},
           {"vt-init (PLFM_VT_INIT_BIN)", b.vt_init},
           {"scripts/fetch-kernel (PLFM_FETCH_KERNEL)", b.fetch_kernel},
           {"docker-registry", b.registry},
           {"initdb (PLFM_PG_BINDIR)", b.pg_bindir + "/initdb"}}) {
    if (!executable(p)) missing.emplace_back(what, p);
  }
  if (!missing.empty()) {
    std::string names;
    for (const auto& m : missing) names += (names.empty() ? "" : ", ") + m.first;
    return Error(errc::kFailedPrecondition, "cannot find " + names)
        .with("hint", "run `make build` (and `make deps`), pass --bin-dir, or set the variables");
  }
  return b;
}

std::string controlPlaneComponent(int replica) {
  return replica == 0 ? "control-plane" : "control-plane-" + std::to_string(replica + 1);
}

const std::vector<std::string>& componentNames() {
  static const std::vector<std::string> kNames = {"postgres", "control-plane", "registry",
                                                  "node-agent", "ingress"};
  return kNames;
}

json toJson(const Settings& s, const PlatformStatus& st) {
  json hosts = json::array();
  for (const auto& h : st.hosts) {
    hosts.push_back({{"host", std::string(1, h.letter)},
                     {"netns", h.netns.empty() ? json(nullptr) : json(h.netns)},
                     {"underlay_address", h.underlay},
                     {"agent", h.agent},
                     {"agent_health", h.agent_health},
                     {"instances", h.instances >= 0 ? json(h.instances) : json(nullptr)}});
  }
  json comps = json::array();
  for (const auto& c : st.components) {
    comps.push_back({{"name", c.name},
                     {"pid", c.pid > 0 ? json(c.pid) : json(nullptr)},
                     {"address", c.address},
                     {"health", c.health},
                     {"log", c.log}});
  }
  json formation = nullptr;
  if (s.ha) {
    formation = json::array();
    for (const auto& n : st.formation) {
      formation.push_back({{"node", n.name},
                           {"reported_state", n.reported},
                           {"goal_state", n.goal},
                           {"healthy", n.healthy}});
    }
  }
  json inst = nullptr;
  if (st.instances_total >= 0) {
    inst = {{"running", st.instances_running}, {"total", st.instances_total}};
  }
  return {{"state_dir", s.state_dir},
          {"control_plane_url", s.controlPlaneUrl()},
          {"control_plane_urls", s.controlPlaneUrls()},
          {"ha", s.ha},
          {"formation", formation},
          {"registry", s.registryHost()},
          {"context", s.context},
          {"nodes", s.nodes},
          {"hosts", hosts},
          {"components", comps},
          {"instances", inst}};
}

Platform::Platform(Settings settings, Binaries bins,
                   std::function<void(const std::string&)> progress)
    : s_(std::move(settings)),
      formation_(s_.state_dir, s_.pg_port, bins.pg_bindir),
      hosts_(s_.state_dir, s_.nodes),
      bins_(std::move(bins)),
      progress_(std::move(progress)) {}

std::vector<std::string> Platform::components() const {
  std::vector<std::string> out;
  for (const std::string& c : componentNames()) {
    if (c == "postgres" && s_.ha) {
      for (const auto& f : Formation::components()) out.push_back(f);
      continue;
    }
    out.push_back(c);
    if (c == "control-plane") {
      for (int r = 1; r < s_.replicas(); ++r) out.push_back(controlPlaneComponent(r));
    }
    if (c != "node-agent") continue;
    for (const Host& h : hosts_.all()) {
      if (h.index > 0) out.push_back(h.component);
    }
  }
  return out;
}

const Host* Platform::agentHost(const std::string& component) const {
  for (const Host& h : hosts_.all()) {
    if (h.component == component) return &h;
  }
  return nullptr;
}

std::pair<int, std::string> Platform::agentGet(const Host& host, const std::string& target) const {
  http::ClientRequest req;
  req.timeout = std::chrono::milliseconds(1000);
  const std::string port = std::to_string(s_.agent_port);
  if (s_.nodes > 1) {
    // Not loopback: the agent serves TLS with a certificate it makes at each
    // start, in its state dir.
    req.url = "https://[" + host.underlay + "]:" + port + target;
    req.tls.pinned_cert_file = path(host.component + "/listen-tls/server.pem");
  } else {
    req.url = "http://[::1]:" + port + target;
  }
  auto r = http::request(req);
  if (!r) return {0, ""};
  return {r->status, r->body};
}

std::string Platform::logPath(const std::string& component) const {
  return path("logs/" + component + ".log");
}

std::string Platform::conninfo() const {
  if (s_.ha) return formation_.conninfo();
  return "host=" + path("postgres/run") + " port=" + std::to_string(kPgPort) +
         " user=postgres dbname=plfm";
}

std::string Platform::address(const std::string& c) const {
  if (c == "postgres") return path("postgres/run/.s.PGSQL." + std::to_string(kPgPort));
  for (int r = 0; r < s_.replicas(); ++r) {
    if (c == controlPlaneComponent(r)) return s_.controlPlaneUrls()[static_cast<size_t>(r)];
  }
  if (const int node = Formation::nodeOf(c); node != -2) return formation_.address(node);
  if (c == "registry") return s_.registryHost();
  if (const Host* h = agentHost(c)) {
    return "[" + (s_.nodes > 1 ? h->underlay : std::string("::1")) +
           "]:" + std::to_string(s_.agent_port);
  }
  if (c == "ingress") {
    return "[::1]:" + std::to_string(s_.ingress_port) +
           ",127.0.0.1:" + std::to_string(s_.ingress_port);
  }
  return "";
}

bool Platform::healthy(const std::string& c) const {
  if (c == "postgres") {
    // postmaster.pid line 8 says "ready" once it accepts connections.
    auto pidfile = readFile(path("postgres/data/postmaster.pid"));
    return pidfile && pidfile->find("ready") != std::string::npos &&
           fs::exists(address("postgres"));
  }
  for (int r = 0; r < s_.replicas(); ++r) {
    if (c == controlPlaneComponent(r)) {
      return httpOk(s_.controlPlaneUrls()[static_cast<size_t>(r)] + "/healthz", {}, s_.caFile());
    }
  }
  if (const int node = Formation::nodeOf(c); node != -2) return formation_.accepting(node);
  if (c == "registry") return httpOk("http://" + s_.registryHost() + "/v2/");
  if (const Host* h = agentHost(c)) return agentGet(*h, "/healthz").first == 200;
  if (c == "ingress") {
    // A new platform has no routes, and the edge feed answers an empty
    // config at cursor 0 only with a 304 after its long-poll: "no routes
    // yet" is a healthy ingress here.
    return httpOk("http://[::1]:" + std::to_string(s_.ingress_metrics_port) + "/healthz",
                  "no_routes_yet");
  }
  return false;
}

pid_t Platform::runningPid(const std::string& c) const {
  return readPidFile(path("run/" + c + ".pid"));
}

Result<pid_t> Platform::launch(const std::string& c, const std::vector<std::string>& argv,
                               const std::vector<std::string>& env, const std::string& cwd) {
  // Another process on our port would answer our health checks: refuse.
  struct Bound {
    const char* component;
    std::string ip;
    int port;
    const char* flag;
  };
  const std::string a = underlayAddress(0);
  const bool multi = s_.nodes > 1;
  std::vector<Bound> bound = {
      {"control-plane", "::1", s_.control_plane_port, "--control-plane-port"},
      {"control-plane", "::1", s_.control_plane_node_port, "--control-plane-node-port"},
      {"registry", multi ? underlayAddress4(0) : "127.0.0.1", s_.registry_port, "--registry-port"},
      {"node-agent", multi ? a : "::1", s_.agent_port, "--agent-port"},
      {"ingress", "::1", s_.ingress_port, "--ingress-port"},
      {"ingress", "127.0.0.1", s_.ingress_port, "--ingress-port"},
      {"ingress", "::1", s_.ingress_metrics_port, "--ingress-metrics-port"}};
  if (multi) {
    bound.push_back({"control-plane", a, s_.control_plane_node_port, "--control-plane-node-port"});
  }
  if (s_.ha) {
    bound.push_back({"control-plane-2", "::1", s_.control_plane_2_port, "--control-plane-2-port"});
    bound.push_back(
        {"control-plane-2", "::1", s_.control_plane_2_node_port, "--control-plane-2-node-port"});
    if (multi) {
      bound.push_back(
          {"control-plane-2", a, s_.control_plane_2_node_port, "--control-plane-2-node-port"});
    }
    for (int node = Formation::kMonitor; node < Formation::kDataNodes; ++node) {
      bound.push_back({Formation::component(node), "127.0.0.1",
                       node == Formation::kMonitor ? s_.pg_port : formation_.port(node),
                       "--pg-port"});
    }
  }
  for (const auto& b : bound) {
    if (b.component == c && !tcpPortFree(b.ip, b.port)) {
      return Error(errc::kFailedPrecondition,
                   "port " + std::to_string(b.port) + " on " + b.ip +
                       " is in use by another process; choose another with " + b.flag);
    }
  }
  SpawnOptions so;
  so.stdout_path = logPath(c);
  so.env = env;
  so.cwd = cwd;
  so.new_session = true;  // our process group's signals never reach it
  PLFM_ASSIGN_OR_RETURN(auto proc, spawn(argv, so));
  const pid_t pid = proc.release();  // it outlives vt
  PLFM_TRY(writePidFile(path("run/" + c + ".pid"), pid));
  return pid;
}

Result<void> Platform::waitHealthy(const std::string& c, pid_t pid, std::chrono::seconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  while (SteadyClock::now() < deadline) {
    if (!isRunning(pid)) {
      return Error(errc::kUnavailable, c + " exited during startup");
    }
    if (healthy(c)) return ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Error(errc::kDeadlineExceeded,
               c + " did not become healthy within " + std::to_string(timeout.count()) + "s");
}

Result<void> Platform::step(const std::string& name,
                            const std::function<Result<std::string>()>& run) {
  const auto t0 = SteadyClock::now();
  auto r = run();
  if (!r) {
    Error e = r.error();
    std::string log = logPath(name);
    if (name == "context") log = "";
    if (name == "formation") log = logPath("pg-monitor");
    return Error(e.code(), "step " + name + " failed: " + e.message())
        .with("step", name)
        .with("log", log);
  }
  char line[256];
  std::snprintf(line, sizeof line, "  %-16s %-56s %s", name.c_str(), r->c_str(),
                elapsed(t0).c_str());
  progress_(line);
  return ok();
}

Result<void> Platform::up() {
  for (const char* d : {"logs", "run"}) PLFM_TRY(mkdirOwned(path(d), 0755, false));
  // The node count shapes the control plane's listeners and every agent's
  // flags: it changes only on a stopped platform.
  PLFM_ASSIGN_OR_RETURN(const Settings before, loadSettings(s_.state_dir));
  if (before.nodes != s_.nodes && runningPid("control-plane") > 0) {
    return Error(errc::kFailedPrecondition,
                 "the platform runs with --nodes " + std::to_string(before.nodes) +
                     "; `vt dev down` before changing it to " + std::to_string(s_.nodes));
  }
  // A formation outside the state dir (as root) left by an earlier state dir
  // of this path, removed without `down --purge`, is not this one's.
  if (const std::string& root = formation_.root();
      !root.starts_with(s_.state_dir + "/") && !fs::exists(path("dev.json")) && fs::exists(root) &&
      processesMentioning(root + "/").empty()) {
    SpawnOptions so;
    so.stdout_path = "/dev/null";
    (void)runChecked(formation_.removeArgv(root), so);
  }
  // Its database lives in one place or the other: a state dir made without
  // --ha keeps its single PostgreSQL, and one made with --ha its formation.
  const bool has_single = fs::exists(path("postgres/data/PG_VERSION"));
  const bool has_formation = fs::exists(formation_.pgdata(Formation::kMonitor));
  if ((s_.ha && has_single) || (!s_.ha && has_formation)) {
    return Error(errc::kFailedPrecondition,
                 std::string("this state dir holds a platform made ") +
                     (s_.ha ? "without" : "with") +
                     " --ha; use another --state-dir, or `vt dev down --purge` first (its data "
                     "goes)");
  }
  // The formation's ports are in pg_autoctl's config and in the monitor.
  if (has_formation && before.pg_port != s_.pg_port) {
    return Error(errc::kFailedPrecondition,
                 "the formation was made with --pg-port " + std::to_string(before.pg_port) +
                     "; it cannot move (`vt dev down --purge` to start again)");
  }
  PLFM_TRY(saveSettings(s_));
  if (s_.nodes > 1) {
    PLFM_TRY(step("hosts", [this]() -> Result<std::string> {
      if (auto made = hosts_.create(logPath("hosts")); !made) return made.error();
      return std::to_string(s_.nodes) + " hosts, underlay " + kUnderlayPrefix + " in " +
             hosts_.underlayNetns();
    }));
  }
  if (s_.ha) {
    for (int node = Formation::kMonitor; node < Formation::kDataNodes; ++node) {
      PLFM_TRY(step(Formation::component(node), [this, node] { return startFormationNode(node); }));
    }
    PLFM_TRY(step("formation", [this] { return settleFormation(); }));
  } else {
    PLFM_TRY(step("postgres", [this] { return startPostgres(); }));
  }
  for (int r = 0; r < s_.replicas(); ++r) {
    PLFM_TRY(step(controlPlaneComponent(r), [this, r] { return startControlPlane(r); }));
  }
  PLFM_TRY(step("registry", [this] { return startRegistry(); }));
  for (const Host& h : hosts_.all()) {
    PLFM_TRY(step(h.component, [this, &h] { return startAgent(h); }));
  }
  PLFM_TRY(step("ingress", [this] { return startIngress(); }));
  PLFM_TRY(step("context", [this] { return writeContext(); }));
  return ok();
}

Result<Host> Platform::addHost() {
  if (s_.nodes < 2 || runningPid("control-plane") <= 0) {
    return Error(errc::kFailedPrecondition,
                 "hosts are added to a running multi-host platform (`vt dev up --nodes N`, N > 1)");
  }
  if (s_.nodes >= kMaxNodes) {
    return Error(errc::kFailedPrecondition,
                 "the platform has " + std::to_string(kMaxNodes) + " hosts, the most it can have");
  }
  s_.nodes += 1;
  hosts_ = Hosts(s_.state_dir, s_.nodes);
  // Saved first: `down` then finds the new host whatever happens below.
  PLFM_TRY(saveSettings(s_));
  const Host& h = hosts_.all().back();
  PLFM_TRY(step("hosts", [this, &h]() -> Result<std::string> {
    if (auto made = hosts_.create(logPath("hosts")); !made) return made.error();
    return std::string("host ") + h.letter + " at " + h.underlay + " in " + h.netns;
  }));
  PLFM_TRY(step(h.component, [this, &h] { return startAgent(h); }));
  return h;
}

Result<std::vector<std::string>> Platform::stopHost(char letter) {
  for (const Host& h : hosts_.all()) {
    if (h.letter != letter) continue;
    const pid_t agent = runningPid(h.component);
    PLFM_ASSIGN_OR_RETURN(auto done, hosts_.stop(h, agent, logPath("hosts")));
    std::error_code ec;
    fs::remove(path("run/" + h.component + ".pid"), ec);
    return done;
  }
  return Error(errc::kNotFound, std::string("no host ") + letter + " (the platform has " +
                                    std::to_string(s_.nodes) + ": a to " +
                                    static_cast<char>('a' + s_.nodes - 1) + ")");
}

Result<std::optional<std::string>> Platform::alreadyRunning(const std::string& c) const {
  const pid_t pid = runningPid(c);
  if (pid <= 0) return std::optional<std::string>();
  // Running: healthy now, or soon (a previous `up` may still be starting it).
  const auto deadline = SteadyClock::now() + std::chrono::seconds(10);
  while (!healthy(c)) {
    if (!isRunning(pid)) return std::optional<std::string>();
    if (SteadyClock::now() > deadline) {
      return Error(errc::kUnavailable, c + " runs (pid " + std::to_string(pid) +
                                           ") but is not healthy at " + address(c) +
                                           "; `vt dev down` and try again");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return std::optional<std::string>(already(pid, address(c)));
}

Result<void> Platform::stopOrphans(const std::string& component, const std::string& data) {
  // What runs in the session of the component's last recorded pid (a
  // keeper's children; each component leads a session of its own), and any
  // postgres of its PGDATA (its command line names it).
  std::vector<pid_t> left;
  if (const pid_t sid = recordedPid(path("run/" + component + ".pid")); sid > 0) {
    left = processesInSession(sid);
  }
  for (pid_t p : processesMentioning(data)) {
    if (std::find(left.begin(), left.end(), p) == left.end()) left.push_back(p);
  }
  std::erase_if(left, [](pid_t p) { return isAncestor(p); });
  if (left.empty()) return ok();
  progress_("  " + component + ": stopping " + std::to_string(left.size()) +
            " leftover process(es) of an earlier run");
  for (pid_t p : left) (void)stopProcess(p, SIGINT, std::chrono::seconds(20));
  return ok();
}

Result<std::string> Platform::startFormationNode(int node) {
  const std::string c = Formation::component(node);
  PLFM_ASSIGN_OR_RETURN(auto running, alreadyRunning(c));
  if (running) return *running;
  if (formation_.autoctlBinary().empty() || !executable(bins_.pg_bindir + "/psql")) {
    return Error(errc::kFailedPrecondition,
                 "--ha needs pg_autoctl and psql; run `make deps` (packages pg-auto-failover-cli, "
                 "postgresql-15-auto-failover)");
  }
  const std::string& root = formation_.root();
  const std::string data = formation_.pgdata(node);
  // ROOT is the formation user's: its dirs are made as that user.
  if (node == Formation::kMonitor) {
    for (const auto& argv : formation_.prepareRootArgvs()) {
      SpawnOptions so;
      so.stdout_path = logPath(c);
      if (auto r = runChecked(argv, so); !r) {
        return Error(errc::kIo, "preparing " + root + " failed: " + r.error().message());
      }
    }
  }
  // A postgres of this node whose keeper was killed alone (kill -9 of its
  // pid, not its group) still holds the port: it goes first.
  PLFM_TRY(stopOrphans(c, data));
  SpawnOptions so;
  so.stdout_path = logPath(c);
  so.cwd = root;
  if (!formation_.createStarted(node)) {
    // Nothing of a create but maybe a PGDATA from one killed before it wrote
    // its config (initdb writes first): it starts again.
    SpawnOptions quiet;
    quiet.stdout_path = logPath(c);
    (void)runChecked(formation_.removeArgv(data), quiet);
  }
  pid_t pid = -1;
  if (node == Formation::kMonitor) {
    // The monitor is created and run by one process; a created one is run.
    PLFM_ASSIGN_OR_RETURN(pid, launch(c,
                                      formation_.created(node) ? formation_.runArgv(node)
                                                               : formation_.createMonitorArgv(),
                                      {}, root));
  } else {
    if (!formation_.created(node)) {
      // A data node is created (initdb, or a clone of the primary for the
      // second) without running it, so that its keeper's timeouts are set
      // before it first runs. A create that did not finish is run again as
      // it was: pg_autoctl resumes it (its init file), as the monitor has
      // the node registered already. The create leaves the postgres it
      // started behind, in its process group: stopped here (fast shutdown).
      PLFM_ASSIGN_OR_RETURN(auto create, spawn(formation_.createNodeArgv(node), so));
      const pid_t group = create.pid();
      const auto st = create.waitOrKill(std::chrono::seconds(180), true);
      ::kill(-group, SIGINT);
      const auto until = SteadyClock::now() + std::chrono::seconds(20);
      while (fs::exists(data + "/postmaster.pid") && SteadyClock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      ::kill(-group, SIGKILL);
      if (!st || exitCodeOf(*st) != 0) {
        return Error(errc::kInternal, "pg_autoctl create postgres failed (" +
                                          (st ? describeWaitStatus(*st) : "timed out") +
                                          "); `vt dev up` resumes it");
      }
    }
    // Each start: idempotent, and a resumed create gets it too.
    PLFM_TRY(runChecked(formation_.partitionTimeoutArgv(node), so));
    PLFM_ASSIGN_OR_RETURN(pid, launch(c, formation_.runArgv(node), {}, root));
  }
  PLFM_TRY(waitHealthy(c, pid, std::chrono::seconds(120)));
  if (node == Formation::kMonitor) {
    // Ready once its extension answers (settleFormation() sets its timeouts).
    const auto deadline = SteadyClock::now() + std::chrono::seconds(60);
    for (;;) {
      auto n = formation_.monitorSql(
          "SELECT count(*) FROM pg_extension WHERE extname = 'pgautofailover'", logPath(c));
      if (n && trim(*n) == "1") break;
      if (!isRunning(pid)) return Error(errc::kUnavailable, c + " exited during startup");
      if (SteadyClock::now() > deadline) {
        return Error(errc::kDeadlineExceeded, "the monitor's extension did not answer in 60s");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  } else if (node == 0) {
    // The second node is a clone of the first: the first must be primary
    // (`single` while alone) before it is created.
    const auto deadline = SteadyClock::now() + std::chrono::seconds(120);
    while (formationPrimary(formation_.nodes(logPath(c)).value_or(std::vector<FormationNode>{}))
               .empty()) {
      if (!isRunning(pid)) return Error(errc::kUnavailable, c + " exited during startup");
      if (SteadyClock::now() > deadline) {
        return Error(errc::kDeadlineExceeded, "no primary in the formation within 120s");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  return started(pid, formation_.address(node));
}

Result<std::string> Platform::settleFormation() {
  // ADR 0020's timeouts, at each up (ALTER SYSTEM is idempotent), also on a
  // monitor that was already running.
  for (const auto& sql : Formation::monitorTimeoutsSql()) {
    PLFM_TRY(formation_.monitorSql(sql, logPath("pg-monitor")));
  }
  const auto deadline = SteadyClock::now() + std::chrono::seconds(180);
  std::vector<FormationNode> nodes;
  while (!formationHealthy(nodes)) {
    if (SteadyClock::now() > deadline) {
      std::string states;
      for (const auto& n : nodes) states += " " + n.name + ":" + n.reported + "->" + n.goal;
      return Error(errc::kDeadlineExceeded,
                   "the formation has no primary and settled standby after 180s (" +
                       (states.empty() ? std::string(" no answer") : states) + " )");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    nodes = formation_.nodes(logPath("pg-monitor")).value_or(std::vector<FormationNode>{});
  }
  PLFM_TRY(formation_.ensureDatabase("plfm", logPath("pg-monitor")));
  const std::string primary = formationPrimary(nodes);
  return "primary pg-" + primary + ", synchronous standby pg-" + (primary == "a" ? "b" : "a");
}

Result<std::string> Platform::startPostgres() {
  const std::string c = "postgres";
  PLFM_ASSIGN_OR_RETURN(auto running, alreadyRunning(c));
  if (running) return *running;
  const std::string data = path("postgres/data");
  PLFM_TRY(mkdirOwned(path("postgres"), 0755, false));
  PLFM_TRY(mkdirOwned(path("postgres/run"), 0755, true));
  if (!fs::exists(data + "/PG_VERSION")) {
    std::error_code ec;
    fs::remove_all(data, ec);  // a half-done initdb
    PLFM_TRY(mkdirOwned(data, 0700, true));
    SpawnOptions so;
    so.stdout_path = logPath(c);
    if (auto r = runChecked(
            asPostgres({bins_.pg_bindir + "/initdb", "-D", data, "-U", "postgres", "-A", "trust",
                        "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"}),
            so);
        !r) {
      return Error(errc::kInternal, "initdb failed: " + r.error().message());
    }
  }
  PLFM_ASSIGN_OR_RETURN(
      pid_t pid, launch(c, asPostgres({bins_.pg_bindir + "/postgres", "-D", data, "-k",
                                       path("postgres/run"), "-p", std::to_string(kPgPort), "-c",
                                       "listen_addresses=", "-c", "max_connections=100"})));
  PLFM_TRY(waitHealthy(c, pid, std::chrono::seconds(60)));
  if (!fs::exists(path("postgres/.plfm-created"))) {
    SpawnOptions so;
    so.stdout_path = logPath(c);
    std::string createdb = bins_.pg_bindir + "/createdb";
    if (!executable(createdb)) createdb = "createdb";
    // "already exists" after a crash between createdb and the marker is fine.
    (void)runChecked({createdb, "-h", path("postgres/run"), "-p", std::to_string(kPgPort), "-U",
                      "postgres", "plfm"},
                     so);
    PLFM_TRY(writeFileAtomic(path("postgres/.plfm-created"), "plfm\n"));
  }
  return started(pid, address(c));
}

// The dev CA and the control plane's certificate, made once per state dir
// (keys 0600 in a 0700 dir) and reused by later `vt dev up`s, so that contexts,
// the agent and the ingress that trust the CA keep working.
//
// The certificate also names host A's underlay address, where agents on
// hosts B... reach the node listener (--nodes). A state dir whose
// certificate predates that (STATE/tls/names says what it names) gets a new
// CA and certificate at the first multi-host `up`.
Result<http::LocalPki> Platform::ensureDevPki() const {
  const std::string dir = s_.tlsDir();
  http::LocalPki pki{s_.caFile(), dir + "/ca-key.pem", dir + "/server.pem",
                     dir + "/server-key.pem"};
  const std::vector<std::string> names = {"localhost", "::1", "127.0.0.1", underlayAddress(0)};
  std::string names_line;
  for (const auto& n : names) names_line += (names_line.empty() ? "" : " ") + n;
  const bool names_ok = s_.nodes == 1 || trim(readFile(dir + "/names").value_or("")) == names_line;
  if (names_ok && fs::exists(pki.ca_cert) && fs::exists(pki.server_cert) &&
      fs::exists(pki.server_key)) {
    return pki;
  }
  PLFM_TRY(mkdirOwned(dir, 0700, false));
  PLFM_ASSIGN_OR_RETURN(pki, http::writeLocalPki(dir, names, {.ca_name = "plfm dev CA (vt dev)"}));
  PLFM_TRY(writeFileAtomic(dir + "/names", names_line + "\n"));
  return pki;
}

// Every replica gets the same state dir, STATE/control-plane, so they share
// one admin token and one relay signing key: the agents pin that key, and a
// replica with another one would refuse to start
// (docs/specs/control-plane/ha.md, "One relay signing key").
std::vector<std::string> controlPlaneArgv(const std::string& bin, const Settings& s,
                                          const std::string& conninfo, const http::LocalPki& pki,
                                          int replica) {
  std::vector<std::string> argv = {bin,
                                   "serve",
                                   "--listen",
                                   "[::1]:" + std::to_string(s.apiPort(replica)),
                                   "--node-listen",
                                   "[::1]:" + std::to_string(s.nodePort(replica)),
                                   "--database",
                                   conninfo,
                                   "--state-dir",
                                   s.state_dir + "/control-plane",
                                   "--tls-cert",
                                   pki.server_cert,
                                   "--tls-key",
                                   pki.server_key};
  if (s.nodes > 1) {
    // Where agents on hosts B... reach it (their enrollment, plans, reports).
    argv.insert(
        argv.begin() + 6,
        {"--node-listen", "[" + underlayAddress(0) + "]:" + std::to_string(s.nodePort(replica))});
  }
  // The user's own settings (docs/engineering/vt-dev.md); the flags above win.
  // Without them, several hosts get short liveness timeouts (multiHostConfig).
  const std::string config = s.state_dir + "/control-plane/config.toml";
  const std::string multi = s.state_dir + "/control-plane/" + kMultiHostConfig;
  if (fs::exists(config)) {
    argv.insert(argv.begin() + 2, {"--config", config});
  } else if (s.nodes > 1 && fs::exists(multi)) {
    argv.insert(argv.begin() + 2, {"--config", multi});
  }
  return argv;
}

Result<std::string> Platform::startControlPlane(int replica) {
  const std::string c = controlPlaneComponent(replica);
  PLFM_ASSIGN_OR_RETURN(auto running, alreadyRunning(c));
  if (running) return *running;
  PLFM_TRY(mkdirOwned(path("control-plane"), 0700, false));
  const std::string key = path("control-plane/master.key");
  if (!fs::exists(key)) {
    SpawnOptions so;
    so.stdout_path = logPath(c);
    PLFM_TRY(runChecked({bins_.control_plane, "secrets", "generate-key", key}, so));
  }
  PLFM_ASSIGN_OR_RETURN(const http::LocalPki pki, ensureDevPki());
  if (s_.nodes > 1) {
    PLFM_TRY(writeFileAtomic(path("control-plane/") + kMultiHostConfig, multiHostConfig(), 0644));
  }
  PLFM_ASSIGN_OR_RETURN(
      pid_t pid, launch(c, controlPlaneArgv(bins_.control_plane, s_, conninfo(), pki, replica),
                        {"PLFM_CP_SECRETS_MASTER_KEY_FILE=" + key}));
  PLFM_TRY(waitHealthy(c, pid, std::chrono::seconds(60)));
  return started(pid, address(c));
}

Result<std::string> Platform::startRegistry() {
  const std::string c = "registry";
  PLFM_ASSIGN_OR_RETURN(auto running, alreadyRunning(c));
  if (running) return *running;
  PLFM_TRY(mkdirOwned(path("registry/storage"), 0755, false));
  const std::string config =
      "version: 0.1\n"
      "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
      "storage:\n  delete:\n    enabled: true\n  filesystem:\n    rootdirectory: " +
      path("registry/storage") + "\nhttp:\n  addr: \"" + s_.registryHost() + "\"\n";
  PLFM_TRY(writeFileAtomic(path("registry/config.yml"), config));
  PLFM_ASSIGN_OR_RETURN(pid_t pid,
                        launch(c, {bins_.registry, "serve", path("registry/config.yml")}));
  PLFM_TRY(waitHealthy(c, pid, std::chrono::seconds(30)));
  return started(pid, address(c));
}

// The dev node backs its volumes up to a local restic repository under
// STATE/backups (docs/specs/runtime/volume-mounts.md §Backups): `repo`, and
// its password, 32 random bytes in hex, in `password` (0600), made at the
// first start. Without restic on PATH the node runs without backups.
Result<std::vector<std::string>> Platform::devBackupArgs() {
  const std::string restic = onPath("restic");
  if (restic.empty()) return std::vector<std::string>{};
  PLFM_TRY(mkdirOwned(path("backups"), 0700, false));
  const std::string password = path("backups/password");
  if (!fs::exists(password)) {
    std::string random(32, '\0');
    std::ifstream urandom("/dev/urandom", std::ios::binary);
    if (!urandom.read(random.data(), static_cast<std::streamsize>(random.size()))) {
      return Error(errc::kInternal, "cannot read /dev/urandom for the backup password");
    }
    PLFM_TRY(writeFileAtomic(password, hexEncode(random) + "\n", 0600));
  }
  return std::vector<std::string>{"--restic-binary",        restic,
                                  "--backup-repository",    path("backups/repo"),
                                  "--backup-password-file", password};
}

std::vector<std::string> Platform::agentArgv(const Host& host,
                                             const std::string& kernel_dir) const {
  const std::string c = host.component;
  const bool multi = s_.nodes > 1;
  const std::string hostname = host.index == 0 ? "dev" : "dev-" + std::string(1, host.letter);
  std::vector<std::string> argv = {bins_.node_agent, "run", "--state-dir", path(c)};
  // Every replica's node listener. Host A's agent keeps loopback; the others
  // reach it over the underlay.
  for (const auto& url : s_.controlPlaneNodeUrls(host.index > 0)) {
    argv.insert(argv.end(), {"--control-plane", url});
  }
  argv.insert(argv.end(),
              {"--ca", s_.caFile(), "--kernel-dir", kernel_dir, "--vt-init", bins_.vt_init,
               "--runtime", "qemu", "--accel", s_.accel, "--hostname", hostname,
               // The node registers its underlay address ([::1] for one host), where
               // its log endpoint listens: the control plane relays only to an
               // agent_url on the registered address.
               "--underlay-address", multi ? host.underlay : "::1", "--listen", address(c),
               "--scratch-mb", "256", "--shutdown-grace-ms", "3000",
               // The dev registry is on loopback (or the underlay), which the agent
               // refuses unless allowed.
               "--registry-allow-cidr", "127.0.0.1/32", "--stop-instances-on-exit"});
  if (multi) {
    // The registry is plain HTTP on host A's underlay IPv4 address.
    argv.insert(argv.end(), {"--registry-allow-cidr", underlayAddress4(0) + "/32",
                             "--insecure-registry", s_.registryHost()});
  }
  // Named after the state dir even for one host: wireguard-go's socket
  // (/var/run/wireguard/NAME.sock) is per name machine-wide, and two dev
  // platforms (two tests) may run at once.
  argv.insert(argv.end(), {"--mesh-interface", host.mesh_interface});
  return argv;
}

Result<std::string> Platform::ingressHostAddress() const {
  PLFM_ASSIGN_OR_RETURN(auto admin, readFile(path("control-plane/admin-token")));
  ApiClient client(s_.controlPlaneUrls(), std::string(trim(admin)),
                   ApiOptions{.ca_file = s_.caFile()});
  PLFM_ASSIGN_OR_RETURN(auto nodes, client.listAll("/v1/nodes"));
  for (const auto& n : nodes) {
    if (n.value("underlay_address", "") != underlayAddress(0) ||
        n.value("state", "") == "removed") {
      continue;
    }
    const std::string address = nodeHostAddress(n.value("ipv6_prefix", ""));
    if (!address.empty()) return address;
  }
  return Error(errc::kInternal, "no enrolled node at " + underlayAddress(0) + " (agent A)");
}

Result<std::string> Platform::startAgent(const Host& host) {
  const std::string c = host.component;
  PLFM_ASSIGN_OR_RETURN(auto running, alreadyRunning(c));
  if (running) return *running;
  const std::string dir = path(c);
  PLFM_TRY(mkdirOwned(dir, 0700, false));
  std::string kernel_dir = envVar("PLFM_DEV_KERNEL_DIR");
  if (kernel_dir.empty()) {
    PLFM_ASSIGN_OR_RETURN(kernel_dir, runForLine({bins_.fetch_kernel, "--print-dir"}, logPath(c),
                                                 path("run/fetch-kernel.out")));
  }
  if (!fs::exists(kernel_dir + "/vmlinux")) {
    return Error(errc::kFailedPrecondition,
                 "no vmlinux in " + kernel_dir + " (scripts/fetch-kernel)");
  }
  std::vector<std::string> argv = agentArgv(host, kernel_dir);
  if (host.index > 0) {
    // The ingress on host A opens connections to this host's guests from
    // its node's host address, over the mesh: "an ingress on another host"
    // for the guest filter (docs/specs/networking/node-firewall.md).
    PLFM_ASSIGN_OR_RETURN(const std::string ingress, ingressHostAddress());
    argv.insert(argv.end(), {"--guest-inbound-allow", ingress});
  }
  PLFM_ASSIGN_OR_RETURN(auto backup_args, devBackupArgs());
  argv.insert(argv.end(), backup_args.begin(), backup_args.end());
  const std::string token_file = path("run/enroll-token-" + std::string(1, host.letter));
  if (!fs::exists(dir + "/node.json")) {
    // First start: a one-time enrollment token, kept only until enrolled.
    PLFM_ASSIGN_OR_RETURN(auto admin, readFile(path("control-plane/admin-token")));
    ApiClient client(s_.controlPlaneUrls(), std::string(trim(admin)),
                     ApiOptions{.ca_file = s_.caFile()});
    PLFM_ASSIGN_OR_RETURN(auto e,
                          client.mutate("POST", "/v1/nodes/enrollments", {{"ttl_seconds", 900}}));
    if (!e.contains("token") || !e["token"].is_string()) {
      return Error(errc::kInternal, "the enrollment answer has no token");
    }
    PLFM_TRY(writeFileAtomic(token_file, e["token"].get<std::string>() + "\n", 0600));
    argv.insert(argv.end(), {"--enroll-token-file", token_file});
  }
  PLFM_ASSIGN_OR_RETURN(pid_t pid, launch(c, inHost(host, argv)));
  auto healthy_now = waitHealthy(c, pid, std::chrono::seconds(60));
  std::error_code ec;
  fs::remove(token_file, ec);
  PLFM_TRY(healthy_now);
  return started(pid, address(c));
}

Result<std::string> Platform::startIngress() {
  const std::string c = "ingress";
  PLFM_ASSIGN_OR_RETURN(auto running, alreadyRunning(c));
  if (running) return *running;
  const std::string dir = path("ingress");
  PLFM_TRY(mkdirOwned(dir, 0700, false));
  const std::string token = dir + "/edge-token";
  if (!fs::exists(token)) {
    SpawnOptions so;
    so.stdout_path = logPath(c);
    PLFM_TRY(runChecked({bins_.control_plane, "edge-token", "--name", "dev-edge", "--out", token,
                         "--database", conninfo(), "--state-dir", path("control-plane")},
                        so));
  }
  const std::string port = std::to_string(s_.ingress_port);
  std::vector<std::string> argv = {bins_.ingress,
                                   "serve",
                                   "--listen",
                                   "[::1]:" + port,
                                   "--listen",
                                   "127.0.0.1:" + port,
                                   "--metrics-listen",
                                   "[::1]:" + std::to_string(s_.ingress_metrics_port),
                                   "--ca",
                                   s_.caFile(),
                                   "--edge-token-file",
                                   token,
                                   "--state-dir",
                                   dir};
  // Every replica's node listener: the edge feed moves on when one goes.
  for (const auto& url : s_.controlPlaneNodeUrls()) argv.insert(argv.end(), {"--edge-url", url});
  PLFM_ASSIGN_OR_RETURN(pid_t pid, launch(c, argv));
  PLFM_TRY(waitHealthy(c, pid, std::chrono::seconds(30)));
  return started(pid, address(c));
}

Result<std::string> Platform::writeContext() {
  PLFM_ASSIGN_OR_RETURN(auto admin, readFile(path("control-plane/admin-token")));
  const std::string token = std::string(trim(admin));
  ApiClient client(s_.controlPlaneUrls(), token, ApiOptions{.ca_file = s_.caFile()});
  PLFM_ASSIGN_OR_RETURN(auto orgs, client.listAll("/v1/orgs"));
  bool have_org = false;
  for (const auto& o : orgs) have_org = have_org || o.value("name", "") == s_.org;
  if (!have_org) PLFM_TRY(client.mutate("POST", "/v1/orgs", {{"name", s_.org}}));
  PLFM_ASSIGN_OR_RETURN(auto config, loadConfig(configPath()));
  Context& ctx = config.contexts[s_.context];
  ctx.name = s_.context;
  ctx.urls = s_.controlPlaneUrls();
  ctx.token = token;
  ctx.ca_file = s_.caFile();
  ctx.org = s_.org;
  config.current = s_.context;
  PLFM_TRY(saveConfig(configPath(), config));
  return "context " + s_.context + " (org " + s_.org + (have_org ? "" : ", created") +
         ") is current";
}

Result<std::vector<std::string>> Platform::down() {
  const std::vector<std::string> all = components();
  std::vector<std::string> reversed(all.rbegin(), all.rend());
  // The formation's monitor stops before its data nodes: with it gone, no
  // failover starts while they stop.
  if (auto m = std::find(reversed.begin(), reversed.end(), "pg-monitor"); m != reversed.end()) {
    std::rotate(std::find(reversed.begin(), reversed.end(), "pg-b"), m, m + 1);
  }
  for (const std::string& c : reversed) {
    const auto t0 = SteadyClock::now();
    pid_t pid = runningPid(c);
    std::string what = "not running";
    if (pid > 0) {
      // postgres: SIGINT is its fast shutdown, and pg_autoctl's (it stops
      // its postgres the same way). The agent stops its VMs
      // (--stop-instances-on-exit) within their shutdown grace.
      const bool pg = c == "postgres" || Formation::nodeOf(c) != -2;
      const int sig = pg ? SIGINT : SIGTERM;
      const auto grace =
          agentHost(c) != nullptr ? std::chrono::seconds(60) : std::chrono::seconds(20);
      what = stopProcess(pid, sig, grace) ? "stopped (pid " + std::to_string(pid) + ")"
                                          : "killed after " + std::to_string(grace.count()) +
                                                "s (pid " + std::to_string(pid) + ")";
    }
    // A formation component's whole session: a keeper killed alone leaves
    // its postgres and their controller (which does not watch its parent).
    if (Formation::nodeOf(c) != -2) {
      if (const pid_t sid = recordedPid(path("run/" + c + ".pid")); sid > 0) {
        for (pid_t p : processesInSession(sid)) {
          if (!isAncestor(p)) (void)stopProcess(p, SIGINT, std::chrono::seconds(20));
        }
      }
    }
    std::error_code ec;
    fs::remove(path("run/" + c + ".pid"), ec);
    char line[256];
    std::snprintf(line, sizeof line, "  %-16s %-56s %s", c.c_str(), what.c_str(),
                  elapsed(t0).c_str());
    progress_(line);
  }
  // The sweep: a process still running from one of the components' dirs
  // (a VMM whose agent was killed, say) goes, then stray sockets and mounts.
  // Only component dirs: a shell or `tail -f STATE/logs/...` of the user's
  // that merely names the state dir is left alone.
  const auto strays = [this] {
    std::vector<pid_t> out;
    for (const char* sub :
         {"/postgres/", "/control-plane", "/registry/", "/node-agent", "/ingress"}) {
      for (pid_t pid : processesMentioning(s_.state_dir + sub)) {
        if (std::find(out.begin(), out.end(), pid) == out.end() && !isAncestor(pid)) {
          out.push_back(pid);
        }
      }
    }
    // --ha as root: the formation's postgres processes name its ROOT.
    if (s_.ha && !formation_.root().starts_with(s_.state_dir + "/")) {
      for (pid_t pid : processesMentioning(formation_.root() + "/")) {
        if (std::find(out.begin(), out.end(), pid) == out.end() && !isAncestor(pid)) {
          out.push_back(pid);
        }
      }
    }
    return out;
  };
  for (pid_t pid : strays()) stopProcess(pid, SIGTERM, std::chrono::seconds(5));
  // Taps and the VMMs' cgroups (docs/specs/runtime/vmm-confinement.md) are
  // the agent's to release; after an agent crash its instance records still
  // name them, and `plfm-node-agent leftovers --remove` releases them (the
  // cgroups are empty once the sweep above stopped their processes).
  (void)agentLeftovers(true);
  // So is the guest network filter (the agent's nftables table,
  // docs/specs/networking/node-firewall.md); an agent that stopped its VMs
  // removed it already.
  if (agentFilterInstalled()) {
    SpawnOptions so;
    so.stdout_path = logPath("node-agent");
    (void)runChecked({"nft", "delete", "table", "inet", "plfm_agent"}, so);
  }
  // And its egress NAT tables (mesh.md "Egress"), when it made them.
  if (fs::exists(path("node-agent/egress/ruleset.nft"))) {
    SpawnOptions so;
    so.stdout_path = logPath("node-agent");
    (void)runChecked({"nft", "delete", "table", "ip", "plfm_nat4"}, so);
    (void)runChecked({"nft", "delete", "table", "ip6", "plfm_nat6"}, so);
  }
  // Hosts B...: their taps and tables go with their namespaces; mesh
  // interfaces and wireguard-go are ended first (dev_hosts.h).
  for (const auto& what : hosts_.destroy(logPath("hosts"))) {
    char line[256];
    std::snprintf(line, sizeof line, "  %-16s %s", "hosts", what.c_str());
    progress_(line);
  }
  for (const auto& m : mountsUnder(s_.state_dir)) ::umount2(m.c_str(), MNT_DETACH);
  for (const auto& sock : socketsUnder(s_.state_dir)) {
    std::error_code ec;
    fs::remove(sock, ec);
  }
  std::vector<std::string> left;
  for (pid_t pid : strays()) left.push_back("process " + std::to_string(pid));
  for (const auto& m : mountsUnder(s_.state_dir)) left.push_back("mount " + m);
  for (auto& l : agentLeftovers(false)) left.push_back(std::move(l));
  if (agentFilterInstalled()) left.emplace_back("nftables table inet plfm_agent");
  for (const auto& sock : socketsUnder(s_.state_dir)) left.push_back("socket " + sock);
  for (auto& l : hosts_.leftovers()) left.push_back(std::move(l));
  return left;
}

Result<void> Platform::purge() {
  std::error_code ec;
  if (s_.ha && fs::exists(formation_.root())) {
    // As the formation's user: root never deletes in a tree another user
    // controls.
    SpawnOptions so;
    so.stdout_path = "/dev/null";
    if (auto r = runChecked(formation_.removeArgv(formation_.root()), so); !r) {
      return Error(errc::kIo, "removing " + formation_.root() + ": " + r.error().message());
    }
  }
  fs::remove_all(s_.state_dir, ec);
  if (ec) return Error(errc::kIo, "removing the state dir: " + ec.message());
  return ok();
}

bool Platform::agentFilterInstalled() const {
  // Only the dev agent's: its state dir says it ran with networking here.
  if (!fs::exists(path("node-agent/firewall/ruleset.nft"))) return false;
  SpawnOptions so;
  so.stdout_path = "/dev/null";
  return runChecked({"nft", "list", "table", "inet", "plfm_agent"}, so).has_value();
}

std::vector<std::string> Platform::agentLeftovers(bool remove) const {
  std::vector<std::string> out;
  std::error_code ec;
  std::vector<std::string> dirs;
  for (const auto& d : fs::directory_iterator(s_.state_dir, ec)) {
    if (d.path().filename().string().starts_with("node-agent") && d.is_directory(ec)) {
      dirs.push_back(d.path().string());
    }
  }
  std::sort(dirs.begin(), dirs.end());
  const std::string report = path("run/agent-leftovers.json");
  for (const auto& dir : dirs) {
    if (bins_.node_agent.empty()) {
      out.push_back("agent records in " + dir +
                    " (plfm-node-agent not found: build it or set PLFM_NODE_AGENT_BIN)");
      continue;
    }
    fs::remove(report, ec);
    std::vector<std::string> argv = {bins_.node_agent, "leftovers", "--state-dir", dir,
                                     "--format",       "json"};
    if (remove) argv.emplace_back("--remove");
    SpawnOptions so;
    so.stdout_path = report;
    const std::string log = logPath("node-agent");
    so.stderr_path = fs::is_directory(fs::path(log).parent_path(), ec) ? log : "/dev/null";
    so.timeout = std::chrono::seconds(30);
    if (auto r = runChecked(argv, so); !r) {
      out.push_back("agent records in " + dir +
                    " (plfm-node-agent leftovers failed: " + r.error().message() + ")");
      continue;
    }
    auto text = readFile(report);
    json j = text ? json::parse(*text, nullptr, false) : json();
    if (!j.is_object() || !j.contains("instances") || !j["instances"].is_array()) {
      out.push_back("agent records in " + dir + " (unreadable leftovers report)");
      continue;
    }
    for (const auto& inst : j["instances"]) {
      if (inst.value("tap", json()).is_string())
        out.push_back("tap " + inst["tap"].get<std::string>());
      for (const auto& g : inst.value("cgroups", json::array())) {
        if (g.is_string()) out.push_back("cgroup " + g.get<std::string>());
      }
    }
  }
  fs::remove(report, ec);
  return out;
}

PlatformStatus Platform::status() const {
  PlatformStatus st;
  for (const auto& c : components()) {
    ComponentStatus cs;
    cs.name = c;
    cs.pid = runningPid(c);
    cs.address = address(c);
    cs.log = logPath(c);
    cs.health = cs.pid <= 0 ? "stopped" : healthy(c) ? "healthy" : "unhealthy";
    st.components.push_back(cs);
  }
  if (s_.ha && runningPid("pg-monitor") > 0) {
    st.formation = formation_.nodes("/dev/null").value_or(std::vector<FormationNode>{});
  }
  if (s_.nodes == 1) {
    const auto [code, body] = agentGet(hosts_.all()[0], "/v1/instances");
    json j = code == 200 ? json::parse(body, nullptr, false) : json();
    if (j.is_array()) {
      st.instances_total = static_cast<int>(j.size());
      st.instances_running = 0;
      for (const auto& i : j) st.instances_running += i.value("phase", "") == "running" ? 1 : 0;
    }
    return st;
  }
  // An agent's /v1/instances answers on loopback only, and hosts B...'s
  // agents listen on their underlay addresses: the control plane's view.
  std::vector<json> nodes;
  if (auto admin = readFile(path("control-plane/admin-token"))) {
    ApiClient client(s_.controlPlaneUrls(), std::string(trim(*admin)),
                     ApiOptions{.ca_file = s_.caFile()});
    nodes = client.listAll("/v1/nodes").value_or(std::vector<json>{});
  }
  for (const Host& h : hosts_.all()) {
    HostStatus hs;
    hs.letter = h.letter;
    hs.netns = h.netns;
    hs.underlay = h.underlay;
    hs.agent = h.component;
    for (const auto& c : st.components) {
      if (c.name == h.component) hs.agent_health = c.health;
    }
    for (const auto& n : nodes) {
      if (n.value("underlay_address", "") != h.underlay || n.value("state", "") == "removed") {
        continue;
      }
      const json a = n.value("allocated", json::object());
      hs.instances = a.value("instances", 0);
      st.instances_total = std::max(st.instances_total, 0) + hs.instances;
    }
    st.hosts.push_back(std::move(hs));
  }
  return st;
}

}  // namespace plfm::vt::dev
