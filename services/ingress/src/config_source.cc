#include "config_source.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "plfm/core/json.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"
#include "plfm/core/redact.h"
#include "plfm/core/strings.h"
#include "plfm/http/failover.h"
#include "plfm/http/http.h"

namespace plfm::ingress {

// ---- FileSource ----

FileSource::FileSource(std::string path, std::chrono::milliseconds poll_interval)
    : path_(std::move(path)), interval_(poll_interval) {}

FileSource::~FileSource() { stop(); }

void FileSource::start(ApplyFn apply) {
  apply_ = std::move(apply);
  readAndApply();
  thread_ = std::thread([this] { loop(); });
}

void FileSource::reloadNow() {
  std::lock_guard lock(mu_);
  reload_ = true;
  cv_.notify_all();
}

void FileSource::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void FileSource::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    if (interval_.count() > 0) {
      cv_.wait_for(lock, interval_, [this] { return stop_ || reload_; });
    } else {
      cv_.wait(lock, [this] { return stop_ || reload_; });
    }
    if (stop_) return;
    const bool forced = std::exchange(reload_, false);
    lock.unlock();
    struct stat st {};
    std::string stamp;
    if (::stat(path_.c_str(), &st) == 0) {
      stamp = std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
              std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
    }
    // The file is re-read when it changed: an atomic rename gives a new
    // inode, an in-place write a new size or mtime.
    if (forced || stamp != last_stamp_) readAndApply();
    lock.lock();
  }
}

void FileSource::readAndApply() {
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0) {
    last_stamp_ = std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
                  std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
  }
  auto text = readFile(path_);
  if (!text) {
    log::error("routes file unreadable; keeping the current routes",
               {{"path", path_}, {"error", text.error().toString()}});
    return;
  }
  if (auto r = apply_(*text, "file"); !r) {
    log::error("routes file refused; keeping the current routes",
               {{"path", path_}, {"error", r.error().toString()}});
  }
}

// ---- EdgeFeedSource ----

struct EdgeFeedSource::Shared {
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  bool wake = false;
  bool report_now = false;  // a config was applied: tell the control plane
  ApplyFn apply;
};

namespace {

Result<std::string> readToken(const std::string& path) {
  PLFM_ASSIGN_OR_RETURN(std::string token, readFile(path));
  std::string t(trim(token));
  if (t.empty())
    return Error(errc::kInvalidArgument, "edge token file is empty").with("path", path);
  return t;
}

// The control plane's replicas, as this source's options name them.
http::FailoverClient edgeClient(const EdgeFeedOptions& o) {
  return http::FailoverClient(
      o.base_urls, {.tls = {.ca_file = o.ca_file, .unsafe_allow_plain_http = o.unsafe_plain_http}});
}

// One request to the control plane with the edge token (re-read each time,
// so a rotated token is picked up without a restart), on whichever replica
// answers.
Result<http::Response> edgeRequest(const EdgeFeedOptions& o, http::FailoverClient& client,
                                   const std::string& method, const std::string& target,
                                   http::Headers headers, const std::string& body,
                                   std::chrono::milliseconds timeout,
                                   Redactor::Handle& token_guard) {
  PLFM_ASSIGN_OR_RETURN(auto token, readToken(o.token_file));
  token_guard = Redactor::global().add(token);
  headers.set("Authorization", "Bearer " + token);
  return client.send(method, target, headers, body, timeout);
}

// PUT /v1/edge/status once; the error, if any.
std::string sendStatus(const EdgeFeedOptions& o, http::FailoverClient& client,
                       const EdgeStatusReport& rep, Redactor::Handle& token_guard) {
  json::Json draining = json::Json::array();
  for (const auto& b : rep.draining) {
    draining.push_back({{"address", b.address}, {"port", b.port}, {"active", b.active}});
  }
  http::Headers headers;
  headers.set("Content-Type", "application/json");
  auto resp = edgeRequest(o, client, "PUT", "/v1/edge/status", std::move(headers),
                          json::dump({{"cursor", rep.cursor}, {"draining", std::move(draining)}}),
                          std::chrono::seconds(5), token_guard);
  if (!resp) return resp.error().toString();
  if (resp->status != 200) return "edge status answered HTTP " + std::to_string(resp->status);
  return "";
}

}  // namespace

EdgeFeedSource::EdgeFeedSource(EdgeFeedOptions options)
    : options_(std::move(options)), shared_(std::make_shared<Shared>()) {}

EdgeFeedSource::~EdgeFeedSource() { stop(); }

void EdgeFeedSource::start(ApplyFn apply) {
  shared_->apply = std::move(apply);
  thread_ = std::thread([shared = shared_, o = options_] {
    // The cursor outlives a failure: another replica resumes from it.
    int64_t cursor = o.cursor;
    int failures = 0;
    std::string last_error;
    Redactor::Handle token_guard;
    http::FailoverClient client = edgeClient(o);
    std::string replica;
    for (;;) {
      {
        std::lock_guard lock(shared->mu);
        if (shared->stop) return;
      }
      // Re-read per request so a rotated token is picked up without a restart.
      const std::string target = "/v1/edge/config?after=" + std::to_string(cursor) +
                                 "&wait=" + std::to_string(o.wait.count());
      Result<http::Response> resp =
          edgeRequest(o, client, "GET", target, {}, {},
                      std::chrono::milliseconds(o.wait) + std::chrono::seconds(15), token_guard);
      if (resp && client.currentUrl() != replica) {
        replica = client.currentUrl();
        log::info("following the edge feed of a control-plane replica",
                  {{"url", replica}, {"cursor", cursor}});
      }
      std::string error;
      if (!resp) {
        error = resp.error().toString();
      } else if (resp->status == 304 || resp->status == 204) {
        failures = 0;  // the wait ran out with nothing new
        continue;
      } else if (resp->status != 200) {
        error = "edge feed answered HTTP " + std::to_string(resp->status);
      } else {
        std::lock_guard lock(shared->mu);
        if (shared->stop) return;
        auto set = parseRouteSet(resp->body);
        if (!set) {
          error = "edge feed sent a bad document: " + set.error().toString();
        } else {
          if (auto r = shared->apply(resp->body, "edge-feed"); !r) {
            error = "edge feed config refused: " + r.error().toString();
          } else {
            cursor = set->cursor;
            shared->report_now = true;  // the acknowledgement the drain gate waits for
            shared->cv.notify_all();
          }
        }
      }
      if (error.empty()) {
        failures = 0;
        last_error.clear();
        continue;
      }
      // Back off (0.5 s doubling to 30 s) and log each new kind of failure once.
      ++failures;
      if (error != last_error) {
        log::warn("edge feed unavailable; serving the last good routes",
                  {{"error", error}, {"cursor", cursor}});
        last_error = error;
      }
      const auto backoff = std::chrono::milliseconds(
          std::min<int64_t>(30'000, int64_t{500} << std::min(failures, 6)));
      std::unique_lock lock(shared->mu);
      shared->cv.wait_for(lock, backoff, [&] { return shared->stop || shared->wake; });
      shared->wake = false;
    }
  });
  if (!options_.status) return;
  reporter_ = std::thread([shared = shared_, o = options_] {
    std::string last_error;
    Redactor::Handle token_guard;
    http::FailoverClient client = edgeClient(o);
    for (;;) {
      {
        std::lock_guard lock(shared->mu);
        if (shared->stop) return;
        shared->report_now = false;
      }
      const EdgeStatusReport rep = o.status();
      const std::string error = sendStatus(o, client, rep, token_guard);
      if (!error.empty() && error != last_error) {
        log::warn("edge status report failed; retrying", {{"error", error}});
      }
      last_error = error;
      const auto interval = rep.draining.empty() ? o.report_interval : o.drain_report_interval;
      std::unique_lock lock(shared->mu);
      shared->cv.wait_for(lock, interval, [&] { return shared->stop || shared->report_now; });
    }
  });
}

void EdgeFeedSource::reloadNow() {
  std::lock_guard lock(shared_->mu);
  shared_->wake = true;
  shared_->cv.notify_all();
}

void EdgeFeedSource::stop() {
  {
    std::lock_guard lock(shared_->mu);
    shared_->stop = true;
    shared_->cv.notify_all();
  }
  // A long-poll in flight cannot be interrupted; the thread owns what it
  // uses (shared_ and a copy of the options) and exits when it returns.
  if (thread_.joinable()) thread_.detach();
  // A status request is short (5 s at most); the status function reads the
  // ingress, so the reporter never outlives this source.
  if (reporter_.joinable()) reporter_.join();
}

}  // namespace plfm::ingress
