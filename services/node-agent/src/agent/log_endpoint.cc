#include "agent/log_endpoint.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <thread>

#include "agent/log_reader.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"

namespace plfm::agent {
namespace {

constexpr std::string_view kPrefix = "/v1/instances/";
constexpr std::string_view kSuffix = "/logs";
constexpr int64_t kMaxLimit = 5000;
constexpr int64_t kMaxWait = 30;

bool validInstanceId(std::string_view id) {
  return id.starts_with("inst_") && id.size() <= 64 &&
         std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_';
         });
}

bool parseInt(std::string_view s, int64_t lo, int64_t hi, int64_t& out) {
  if (s.empty() || s.size() > 18) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v < lo || v > hi) return false;
  out = v;
  return true;
}

}  // namespace

bool RelayVerifier::pin(const relay::PublicKey& key) {
  std::lock_guard lock(mu_);
  if (!pinned_) pinned_ = key;
  return *pinned_ == key;
}

std::optional<relay::PublicKey> RelayVerifier::pinned() const {
  std::lock_guard lock(mu_);
  return pinned_;
}

Result<void> RelayVerifier::check(const http::Request& req, std::string_view instance_id) const {
  const auto key = pinned();
  if (!key || node_id_.empty()) {
    return Error(errc::kUnauthenticated,
                 "relay request refused: this agent has no pinned control-plane key yet");
  }
  const auto expires_text = req.header(relay::kExpiresHeader);
  const auto signature = req.header(relay::kSignatureHeader);
  int64_t expires = 0;
  if (!expires_text || !signature || !parseInt(*expires_text, 0, INT64_MAX / 2, expires)) {
    return Error(errc::kUnauthenticated, "relay request refused: not signed");
  }
  const relay::SignedRequest r{req.method, req.target, node_id_, std::string(instance_id), expires};
  const int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(clock_.now().time_since_epoch()).count();
  return relay::verify(*key, r, *signature, now);
}

http::Response relayError(int status, std::string_view code, const std::string& message) {
  nlohmann::json j = {{"error", {{"code", code}, {"message", message}}}};
  return http::Response::json(status, j.dump());
}

bool matchesInstanceRoute(const http::Request& req, std::string_view suffix) {
  return req.path.starts_with(kPrefix) && req.path.ends_with(suffix) &&
         req.path.size() > kPrefix.size() + suffix.size();
}

std::optional<http::Response> checkRelayRequest(const http::Request& req, std::string_view suffix,
                                                const RelayVerifier* verifier,
                                                std::string_view& instance_id) {
  if (req.method != "GET") return relayError(405, "method_not_allowed", "use GET");
  std::string_view id(req.path);
  id.remove_prefix(kPrefix.size());
  id.remove_suffix(suffix.size());
  // The signature covers the target (query included) and the instance.
  if (auto ok = verifier != nullptr ? verifier->check(req, id)
                                    : Result<void>(Error(errc::kUnauthenticated, "no verifier"));
      !ok) {
    return relayError(401, "unauthenticated", ok.error().message());
  }
  if (!validInstanceId(id)) return relayError(400, "invalid_id", "not an instance id");
  instance_id = id;
  return std::nullopt;
}

bool LogEndpoint::matches(const http::Request& req) { return matchesInstanceRoute(req, kSuffix); }

http::Response LogEndpoint::serve(const http::Request& req) const {
  std::string_view id;
  if (auto refused = checkRelayRequest(req, kSuffix, verifier.get(), id)) return *refused;
  LogCursor after;
  LogReadOptions opts;
  int64_t limit = 1000;
  int64_t wait = 0;
  int64_t skip = 0;
  if (auto a = req.queryParam("after")) after.ts = std::string(*a);
  if (auto s = req.queryParam("skip"); s && !parseInt(*s, 0, INT64_MAX / 2, skip)) {
    return relayError(400, "invalid_query", "skip must be a non-negative integer");
  }
  after.skip = skip;
  if (auto l = req.queryParam("limit"); l && !parseInt(*l, 1, kMaxLimit, limit)) {
    return relayError(400, "invalid_query", "limit must be 1..5000");
  }
  opts.limit = static_cast<size_t>(limit);
  if (auto w = req.queryParam("wait"); w && !parseInt(*w, 0, kMaxWait, wait)) {
    return relayError(400, "invalid_query", "wait must be 0..30 seconds");
  }
  opts.tail = req.queryParam("tail").value_or("") == "1";
  const std::string path = logs_dir + "/" + std::string(id) + ".log";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait);
  for (;;) {
    auto page = readInstanceLog(path, after, opts);
    if (!page) return relayError(500, "internal", page.error().message());
    const bool give_up =
        std::chrono::steady_clock::now() >= deadline || (stopping != nullptr && stopping->load());
    if (!page->lines.empty() || give_up) {
      nlohmann::json out = {{"instance_id", std::string(id)},
                            {"lines", std::move(page->lines)},
                            {"next", {{"after", page->next.ts}, {"skip", page->next.skip}}},
                            {"more", page->more}};
      return http::Response::json(200, out.dump());
    }
    // Follow: the files are small and local; polling them is cheaper than
    // wiring each writer to each reader.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

}  // namespace plfm::agent
