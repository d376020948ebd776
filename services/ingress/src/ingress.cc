#include "ingress.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <utility>

#include "plfm/core/log.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"

namespace plfm::ingress {

Ingress::Ingress(Config cfg) : cfg_(std::move(cfg)) {}

Ingress::~Ingress() { stop(); }

Result<void> Ingress::start() {
  std::error_code ec;
  std::filesystem::create_directories(cfg_.state_dir, ec);
  if (ec) {
    return Error(errc::kIo, "cannot create state_dir: " + ec.message())
        .with("path", cfg_.state_dir);
  }
  loadLastGood();

  ProxyOptions po;
  for (const auto& l : cfg_.listen) {
    auto e = net::IpEndpoint::parse(l);
    if (!e) return Error(errc::kInvalidArgument, "bad listen address '" + l + "'");
    po.listen.push_back(*e);
  }
  po.workers = cfg_.workers;
  po.client_hello_timeout = cfg_.client_hello_timeout;
  po.connect_timeout = cfg_.connect_timeout;
  po.idle_timeout = cfg_.idle_timeout;
  po.max_connections = cfg_.max_connections;
  po.connect_attempts = cfg_.connect_attempts;
  po.backend_holdoff = cfg_.backend_holdoff;
  po.backlog = cfg_.backlog;
  po.defer_accept = cfg_.defer_accept;
  proxy_ = std::make_unique<Proxy>(std::move(po), table_, stats_);
  PLFM_TRY(proxy_->start());
  checker_ = std::make_unique<HealthChecker>(
      table_, stats_, HealthCheckOptions{cfg_.health_interval, cfg_.health_timeout});
  checker_->start();

  if (cfg_.source == SourceKind::kFile) {
    source_ = std::make_unique<FileSource>(cfg_.routes_file, cfg_.watch_interval);
  } else {
    EdgeFeedOptions eo;
    eo.base_urls = cfg_.edge_urls;
    eo.token_file = cfg_.edge_token_file;
    eo.ca_file = cfg_.edge_ca_file;
    eo.unsafe_plain_http = cfg_.edge_unsafe_plain_http;
    eo.wait = cfg_.edge_wait;
    eo.cursor = table_.load()->cursor();
    eo.status = [this] { return statusReport(); };
    source_ = std::make_unique<EdgeFeedSource>(std::move(eo));
  }
  source_->start(
      [this](std::string_view text, std::string_view origin) { return applyRoutes(text, origin); });

  if (!cfg_.metrics_listen.empty()) {
    http::ServerOptions so;
    so.listen = cfg_.metrics_listen;
    so.max_connections = 64;
    http_ = std::make_unique<http::Server>(so, [this](http::Request& req) { return handle(req); });
    PLFM_TRY(http_->start());
  }
  return ok();
}

EdgeStatusReport Ingress::statusReport() const {
  EdgeStatusReport rep;
  const auto t = table_.load();
  if (!t) return rep;
  rep.cursor = t->cursor();
  for (const auto& d : t->draining()) {
    rep.draining.push_back({d.endpoint.ip(), d.endpoint.port, d.active});
  }
  return rep;
}

void Ingress::reload() {
  log::info("reload requested");
  if (source_) source_->reloadNow();
}

void Ingress::stop() {
  // Refuse new connections first: stopping the config source waits for its
  // last status report, which may try every control-plane URL in turn.
  if (proxy_) proxy_->stopAccepting();
  if (http_) http_->stop(std::chrono::milliseconds(500));
  if (source_) source_->stop();
  if (checker_) checker_->stop();
  if (proxy_) proxy_->stop(cfg_.shutdown_grace);
  http_.reset();
  source_.reset();
  checker_.reset();
  proxy_.reset();
}

Result<void> Ingress::applyRoutes(std::string_view text, std::string_view origin) {
  auto set = parseRouteSet(text);
  if (!set) {
    stats_.reloads_failed.fetch_add(1, std::memory_order_relaxed);
    return set.error();
  }
  std::lock_guard lock(apply_mu_);
  PLFM_TRY(install(*set, origin));
  // Persist what we now serve, canonicalized, so a restart without the
  // control plane serves the same routes.
  if (auto w = writeFileAtomic(cfg_.lastGoodFile(), serializeRouteSet(*set), 0600); !w) {
    log::error("cannot persist the last good routes",
               {{"path", cfg_.lastGoodFile()}, {"error", w.error().toString()}});
  }
  return ok();
}

Result<void> Ingress::install(const RouteSet& set, std::string_view origin) {
  auto table = RoutingTable::build(set, stats_, loads_);
  const size_t n = table->size();
  table_.store(std::move(table));
  loads_.prune();
  loaded_ = true;
  stats_.reloads_ok.fetch_add(1, std::memory_order_relaxed);
  stats_.cursor.store(set.cursor, std::memory_order_relaxed);
  stats_.routes.store(static_cast<int64_t>(n), std::memory_order_relaxed);
  // A route whose port has no listener is kept (the listener set changes
  // only with a restart) but counted in the log line.
  size_t unserved = 0;
  if (proxy_) {
    const std::vector<net::IpEndpoint> listeners = proxy_->endpoints();
    for (const RouteSpec& r : set.routes) {
      const bool found = std::any_of(listeners.begin(), listeners.end(),
                                     [&r](const auto& e) { return e.port == r.listener_port; });
      if (!found) ++unserved;
    }
  }
  log::info("routes loaded", {{"origin", origin},
                              {"cursor", set.cursor},
                              {"routes", n},
                              {"routes_without_listener", unserved}});
  return ok();
}

void Ingress::loadLastGood() {
  const std::string path = cfg_.lastGoodFile();
  if (!std::filesystem::exists(path)) return;
  auto text = readFile(path);
  if (!text) {
    log::warn("last good routes unreadable", {{"path", path}, {"error", text.error().toString()}});
    return;
  }
  auto set = parseRouteSet(*text);
  if (!set) {
    log::warn("last good routes invalid", {{"path", path}, {"error", set.error().toString()}});
    return;
  }
  std::lock_guard lock(apply_mu_);
  (void)install(*set, "last-good");
}

http::Response Ingress::handle(const http::Request& req) const {
  if (req.method == "GET" && req.path == "/metrics") {
    auto r = http::Response::text(200, stats_.render());
    r.headers.set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    return r;
  }
  if (req.method == "GET" && req.path == "/healthz") {
    const bool ready = loaded_.load();
    const auto t = table_.load();
    std::string body = std::string(R"({"status":")") + (ready ? "ok" : "no_routes_yet") +
                       R"(","routes":)" + std::to_string(t->size()) + R"(,"cursor":)" +
                       std::to_string(t->cursor()) + "}";
    return http::Response::json(ready ? 200 : 503, body);
  }
  return http::Response::json(404, R"({"error":{"code":"not_found","message":"no such path"}})");
}

std::vector<std::string> Ingress::proxyEndpoints() const {
  std::vector<std::string> out;
  if (proxy_) {
    for (const auto& e : proxy_->endpoints()) out.push_back(e.toString());
  }
  return out;
}

std::vector<std::string> Ingress::metricsEndpoints() const {
  return http_ ? http_->endpoints() : std::vector<std::string>{};
}

}  // namespace plfm::ingress
