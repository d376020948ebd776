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

}  // namespace

EdgeFeedSource::EdgeFeedSource(EdgeFeedOptions options)
    : options_(std::move(options)), shared_(std::make_shared<Shared>()) {}

EdgeFeedSource::~EdgeFeedSource() { stop(); }

void EdgeFeedSource::start(ApplyFn apply) {
  shared_->apply = std::move(apply);
  thread_ = std::thread([shared = shared_, o = options_] {
    int64_t cursor = o.cursor;
    int failures = 0;
    std::string last_error;
    Redactor::Handle token_guard;
    for (;;) {
      {
        std::lock_guard lock(shared->mu);
        if (shared->stop) return;
      }
      // Re-read per request so a rotated token is picked up without a restart.
      Result<http::Response> resp = Error(errc::kUnavailable, "no request");
      auto token = readToken(o.token_file);
      if (!token) {
        resp = token.error();
      } else {
        token_guard = Redactor::global().add(*token);
        http::ClientRequest req;
        req.url = o.base_url + "/v1/edge/config?after=" + std::to_string(cursor) +
                  "&wait=" + std::to_string(o.wait.count());
        req.headers.set("Authorization", "Bearer " + *token);
        req.timeout = std::chrono::milliseconds(o.wait) + std::chrono::seconds(15);
        req.tls.ca_file = o.ca_file;
        req.tls.unsafe_allow_plain_http = o.unsafe_plain_http;
        resp = http::request(req);
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
}

}  // namespace plfm::ingress
