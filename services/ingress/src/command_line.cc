// The plfm-ingress command line. CLI11 lives only in this file: its headers
// trip a GCC 12 -Wnull-dereference false positive, which is silenced for this
// translation unit alone (see CMakeLists.txt).
#include "command_line.h"

#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <optional>

#include "ingress.h"
#include "plfm/core/daemon.h"
#include "plfm/core/json.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"
#include "plfm/net/inspect.h"

namespace plfm::ingress {

namespace {

struct Flags {
  std::string file;
  std::vector<std::string> listen;
  std::vector<std::string> metrics_listen;
  std::string routes;
  std::vector<std::string> edge_url;
  std::string edge_token_file;
  std::string edge_ca_file;
  bool edge_unsafe_plain_http = false;
  std::string state_dir;
  std::string log_level;
  int workers = 0;
};

Result<Config> buildConfig(const Flags& f) {
  Config cfg;
  if (!f.file.empty()) PLFM_TRY(loadConfigFile(f.file, cfg));
  PLFM_TRY(applyEnv(cfg));
  if (!f.listen.empty()) cfg.listen = f.listen;
  if (!f.metrics_listen.empty()) cfg.metrics_listen = f.metrics_listen;
  if (!f.routes.empty()) {
    cfg.routes_file = f.routes;
    cfg.source = SourceKind::kFile;
  }
  if (!f.edge_url.empty()) {
    cfg.edge_urls = f.edge_url;
    cfg.source = SourceKind::kEdgeFeed;
  }
  if (!f.edge_token_file.empty()) cfg.edge_token_file = f.edge_token_file;
  if (!f.edge_ca_file.empty()) cfg.edge_ca_file = f.edge_ca_file;
  if (f.edge_unsafe_plain_http) cfg.edge_unsafe_plain_http = true;
  if (!f.state_dir.empty()) cfg.state_dir = f.state_dir;
  if (!f.log_level.empty()) cfg.log_level = f.log_level;
  if (f.workers > 0) cfg.workers = f.workers;
  PLFM_TRY(validate(cfg, f.edge_url.empty() ? "source.edge_url" : "--edge-url"));
  return cfg;
}

int fail(const Error& e) {
  std::cerr << "plfm-ingress: " << e.message() << "\n";
  return e.is(errc::kInvalidArgument) ? 2 : 1;
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

int serve(const Config& cfg) {
  daemon::initLogging("ingress", cfg.log_level, cfg.log_file);
  // Each proxied connection holds two sockets and two pipes: take every
  // descriptor the hard limit allows.
  rlimit nofile{};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &nofile);
  }
  std::optional<Ingress> ingress;
  daemon::Hooks hooks;
  hooks.start = [&]() -> Result<void> {
    ingress.emplace(cfg);
    auto r = ingress->start();
    if (!r) log::error("start failed", {{"error", r.error().toString()}});
    return r;
  };
  hooks.ready = [&] {
    const std::string proxy = joined(ingress->proxyEndpoints());
    const std::string metrics = joined(ingress->metricsEndpoints());
    log::info("serving", {{"listen", proxy}, {"metrics", metrics}, {"workers", cfg.workers}});
    // Tell a supervisor (or a test) where we listen, on stdout, one line.
    std::cout << "listening " << proxy << " metrics " << metrics << std::endl;
  };
  hooks.reload = [&] { ingress->reload(); };  // SIGHUP: re-read the source now
  hooks.stop = [&] { ingress->stop(); };
  auto stopped = daemon::run(hooks);
  return stopped ? 0 : fail(stopped.error());
}

int inspect(const std::string& path, bool proxy_protocol) {
  auto bytes = readFile(path);
  if (!bytes) {
    std::cout << json::dump(json::Json{{"error", bytes.error().message()}}) << "\n";
    return 1;
  }
  const auto* data = reinterpret_cast<const uint8_t*>(bytes->data());
  const json::Json out = net::inspectClientHello({data, bytes->size()}, proxy_protocol);
  std::cout << json::dump(out) << "\n";
  return out.contains("error") ? 1 : 0;
}

}  // namespace

int runMain(int argc, char** argv) {
  CLI::App app{
      "plfm-ingress: the L4 edge. Routes TLS by SNI without terminating it, and plain TCP by "
      "port.\nConfiguration comes from --config (TOML), then PLFM_INGRESS_* environment "
      "variables, then flags.",
      "plfm-ingress"};
  app.require_subcommand(1);
  Flags f;
  auto* serveCmd = app.add_subcommand("serve", "run the proxy");
  serveCmd->add_option("-c,--config", f.file, "TOML config file")->check(CLI::ExistingFile);
  serveCmd->add_option("--listen", f.listen,
                       "proxy listener, repeatable: [::]:443, 0.0.0.0:443 (PLFM_INGRESS_LISTEN)");
  serveCmd->add_option("--metrics-listen", f.metrics_listen,
                       "/healthz and /metrics address, repeatable (PLFM_INGRESS_METRICS_LISTEN)");
  serveCmd->add_option("--routes", f.routes,
                       "route document to serve and watch (PLFM_INGRESS_ROUTES_FILE)");
  serveCmd->add_option("--edge-url", f.edge_url,
                       "control plane base URL for the edge feed; repeat it or separate URLs "
                       "with commas to list every replica: the feed stays with the one that "
                       "answers and moves to the next when it cannot be reached "
                       "(PLFM_INGRESS_EDGE_URL)");
  serveCmd->add_option("--edge-token-file", f.edge_token_file,
                       "file holding the edge bearer token (PLFM_INGRESS_EDGE_TOKEN_FILE)");
  serveCmd->add_option("--ca,--edge-ca-file", f.edge_ca_file,
                       "PEM CA that signed the control plane's certificate, for an https:// "
                       "--edge-url (PLFM_INGRESS_EDGE_CA_FILE; default: the system store)");
  serveCmd->add_flag("--unsafe-plain-http", f.edge_unsafe_plain_http,
                     "UNSAFE: allow an http:// --edge-url on a non-loopback address (the edge "
                     "token crosses the network unencrypted)");
  serveCmd->add_option("--state-dir", f.state_dir, "state directory (PLFM_INGRESS_STATE_DIR)");
  serveCmd->add_option("--workers", f.workers, "event-loop threads (PLFM_INGRESS_WORKERS)");
  serveCmd->add_option("--log-level", f.log_level,
                       "debug|info|warn|error (PLFM_INGRESS_LOG_LEVEL)");
  std::string capture;
  bool proxy_protocol = false;
  auto* inspectCmd = app.add_subcommand(
      "inspect-clienthello", "print the SNI, ALPN and TLS versions of a captured ClientHello");
  inspectCmd->add_option("FILE", capture, "capture of a connection start")->required();
  inspectCmd->add_flag("--proxy-protocol", proxy_protocol,
                       "the capture starts with a PROXY header: decode and print it first");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help exits 0; a usage error (printed by CLI11) exits 2.
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (inspectCmd->parsed()) return inspect(capture, proxy_protocol);
  auto cfg = buildConfig(f);
  if (!cfg) return fail(cfg.error());
  return serve(*cfg);
}

}  // namespace plfm::ingress
