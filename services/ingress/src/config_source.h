// Where routes come from. Two implementations of one interface:
//
//   FileSource      a JSON route document on disk (tests and dev); reloads on
//                   SIGHUP (reloadNow) and when the file changes (polled).
//   EdgeFeedSource  the control plane's edge feed, GET /v1/edge/config?after=
//                   CURSOR, long-polled with the edge bearer token
//                   (docs/specs/ingress/edge-feed.md). Given several URLs
//                   (the control plane's replicas), it stays with the one
//                   that answers and moves to the next when it cannot be
//                   reached, resuming from its cursor there.
//
// A source hands every document it reads to the `apply` callback, which
// validates it, swaps the routing table and persists it; a document that
// fails is reported and the previous table stays in use.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "plfm/core/result.h"
#include "route_config.h"

namespace plfm::ingress {

// Takes the text of a route document and where it came from ("file",
// "edge-feed"); returns the error if the document was refused.
using ApplyFn = std::function<Result<void>(std::string_view text, std::string_view origin)>;

class ConfigSource {
 public:
  virtual ~ConfigSource() = default;
  // Starts watching. FileSource reads the file once before returning, so the
  // routes are in place when start() returns.
  virtual void start(ApplyFn apply) = 0;
  // Re-reads now (SIGHUP).
  virtual void reloadNow() = 0;
  virtual void stop() = 0;
};

class FileSource final : public ConfigSource {
 public:
  FileSource(std::string path, std::chrono::milliseconds poll_interval);
  ~FileSource() override;
  void start(ApplyFn apply) override;
  void reloadNow() override;
  void stop() override;

 private:
  void loop();
  void readAndApply();

  std::string path_;
  std::chrono::milliseconds interval_;
  ApplyFn apply_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool reload_ = false;
  std::string last_stamp_;  // inode, size and mtime of the last file read
  std::thread thread_;
};

// What an ingress tells the control plane (PUT /v1/edge/status): the cursor
// of the config it serves, and the open connections of each backend that
// config marks draining. The control plane's drain gate waits for both.
struct EdgeStatusReport {
  struct Backend {
    std::string address;  // an IP literal, as inet_ntop writes it
    uint16_t port = 0;
    int64_t active = 0;
  };
  int64_t cursor = 0;
  std::vector<Backend> draining;
};
using StatusFn = std::function<EdgeStatusReport()>;

struct EdgeFeedOptions {
  // "https://cp:8443", "http://[::1]:8080" or "unix:/path": one per replica,
  // tried in order (http::FailoverClient).
  std::vector<std::string> base_urls;
  std::string token_file;
  std::string ca_file;  // verifies each https:// base URL; empty: the system store
  bool unsafe_plain_http = false;
  std::chrono::seconds wait{30};  // asked of the server per long-poll
  int64_t cursor = 0;             // the cursor of the persisted config, if any
  // Status reports: sent after each config applied, then every
  // drain_report_interval while a backend drains, else every report_interval.
  // None are sent without a status function.
  StatusFn status;
  std::chrono::milliseconds report_interval{5000};
  std::chrono::milliseconds drain_report_interval{500};
};

class EdgeFeedSource final : public ConfigSource {
 public:
  explicit EdgeFeedSource(EdgeFeedOptions options);
  ~EdgeFeedSource() override;
  void start(ApplyFn apply) override;
  void reloadNow() override;
  void stop() override;

 private:
  struct Shared;  // outlives the object when a long-poll is still in flight at stop
  EdgeFeedOptions options_;
  std::shared_ptr<Shared> shared_;
  std::thread thread_;
  std::thread reporter_;  // joined at stop: it calls options_.status
};

}  // namespace plfm::ingress
