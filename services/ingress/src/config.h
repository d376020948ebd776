// plfm-ingress configuration: defaults, then a TOML file, then environment
// variables (PLFM_INGRESS_*), then command-line flags, as the control plane
// does. Unknown keys in the file are errors that name the key (with a "did
// you mean" hint), so a typo never silently falls back to a default.
//
//   listen = ["[::]:443", "0.0.0.0:443"]     # no implicit IPv4: list both
//   metrics_listen = ["[::1]:9443"]
//   state_dir = "/var/lib/plfm/ingress"
//   workers = 1
//   [source]   kind = "file" | "edge-feed", routes_file, edge_url, edge_token_file, ...
//              (edge_url: one URL, or an array of them, one per control-plane replica)
//   [timeouts] client_hello_ms, connect_ms, idle_ms
//   [limits]   max_connections, connect_attempts, backend_holdoff_ms, backlog
//   [health]   check_interval_ms (0: no checks), check_timeout_ms
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::ingress {

enum class SourceKind { kFile, kEdgeFeed };

struct Config {
  std::vector<std::string> listen = {"[::]:443"};
  std::vector<std::string> metrics_listen = {"[::1]:9443"};
  std::string state_dir = "/var/lib/plfm/ingress";
  std::string log_level = "info";
  std::string log_file;  // empty: stderr
  int workers = 1;       // event-loop threads, sharing the listeners (EPOLLEXCLUSIVE)

  SourceKind source = SourceKind::kFile;
  std::string routes_file;  // kFile: the route document (docs/specs/ingress/edge-feed.md shape)
  std::chrono::milliseconds watch_interval{1000};  // kFile: poll for changes; 0: SIGHUP only
  // kEdgeFeed: the control plane's base URLs, one per replica, tried in
  // order ("https://cp1:8443"); each entry may hold several, comma-separated.
  std::vector<std::string> edge_urls;
  std::string edge_token_file;  // kEdgeFeed: the edge bearer token
  std::string edge_ca_file;     // kEdgeFeed: PEM CA that signed the control plane's certificate
  bool edge_unsafe_plain_http = false;  // kEdgeFeed: allow http:// to a non-loopback address
  std::chrono::seconds edge_wait{30};   // kEdgeFeed: long-poll wait asked of the server

  std::chrono::milliseconds client_hello_timeout{5000};  // from accept to a complete ClientHello
  std::chrono::milliseconds connect_timeout{3000};       // per backend attempt
  std::chrono::milliseconds idle_timeout{300'000};       // no byte either way

  size_t max_connections = 20'000;                  // open client connections, all workers together
  int connect_attempts = 3;                         // distinct backends tried per connection
  std::chrono::milliseconds backend_holdoff{2000};  // a failed backend is passed over this long
  std::chrono::milliseconds health_interval{2000};  // connect check of every backend; 0: none
  std::chrono::milliseconds health_timeout{1000};   // a check not connected by then fails
  int backlog = 4096;
  bool defer_accept = true;  // TCP_DEFER_ACCEPT: wake up only when the client has sent bytes
  std::chrono::seconds shutdown_grace{10};

  [[nodiscard]] std::string lastGoodFile() const { return state_dir + "/last-good-routes.json"; }
};

// Reads `path` over the defaults in `cfg`. Errors name the file, line, key
// and what was expected.
[[nodiscard]] Result<void> loadConfigFile(const std::string& path, Config& cfg);

// Applies PLFM_INGRESS_LISTEN, PLFM_INGRESS_METRICS_LISTEN and
// PLFM_INGRESS_EDGE_URL (comma-separated), PLFM_INGRESS_STATE_DIR,
// PLFM_INGRESS_ROUTES_FILE,
// PLFM_INGRESS_EDGE_TOKEN_FILE, PLFM_INGRESS_WORKERS, PLFM_INGRESS_LOG_LEVEL
// and PLFM_INGRESS_LOG_FILE. Setting a routes file or an edge URL selects
// that source.
[[nodiscard]] Result<void> applyEnv(Config& cfg);

// Checks `cfg`, and for the edge feed each of its URLs (an error names
// `edge_url_setting`: "source.edge_url", or "--edge-url" for the flag); the
// edge URLs come back split at commas and without repeats.
[[nodiscard]] Result<void> validate(Config& cfg,
                                    std::string_view edge_url_setting = "source.edge_url");

}  // namespace plfm::ingress
