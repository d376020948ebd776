// Keyed mutations under a fault, against the real `plfm-control-plane`
// binary: CpProcess starts (and restarts) the binary; runKeyedLoad() sends
// many idempotent requests from concurrent clients, each retrying with its
// own Idempotency-Key until it gets a final answer, and runs `fault` (kill -9
// and restart, a failover, ...) once midway. The test then checks what the
// idempotency contract promises (docs/specs/api/idempotency.md): nothing
// acknowledged is lost, nothing runs twice, every replay is the saved answer.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "plfm/core/json.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"
#include "plfm/http/http.h"
#include "plfm/pg/pg.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::cp::testsupport {

// The control plane binary on [::1]:0 with a state dir and a database. Its
// URL changes on every start; target() is safe to call from any thread.
class CpProcess {
 public:
  CpProcess(std::string binary, std::string conninfo, const testing::TempDir& dir)
      : binary_(std::move(binary)), conninfo_(std::move(conninfo)), dir_(dir) {}

  // Starts the binary and waits (up to 10 s) until it listens.
  [[nodiscard]] bool start() {
    std::filesystem::remove(dir_.file("cp.out"));
    SpawnOptions o;
    o.stdout_path = dir_.file("cp.out");
    o.stderr_path = dir_.file("cp.log");
    auto p = spawn({binary_, "serve", "--listen", "[::1]:0", "--database", conninfo_, "--state-dir",
                    dir_.path()},
                   o);
    if (!p) return false;
    proc_ = std::move(*p);
    for (int i = 0; i < 500; ++i) {
      auto out = readFile(dir_.file("cp.out"));
      if (out && out->find("listening ") != std::string::npos) {
        const std::string line(trim(out->substr(out->find("listening ") + 10)));
        std::lock_guard lock(mu_);
        url_ = "http://" + line.substr(0, line.find(','));
        token_ = std::string(trim(readFile(dir_.file("admin-token")).value_or("")));
        return true;
      }
      if (proc_.poll().has_value()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // kill -9: no shutdown path runs.
  void kill9() {
    proc_.signal(SIGKILL);
    (void)proc_.waitFor(std::chrono::seconds(10));
    std::lock_guard lock(mu_);
    url_.clear();
  }

  // The base URL ("" while down) and the admin token.
  [[nodiscard]] std::pair<std::string, std::string> target() const {
    std::lock_guard lock(mu_);
    return {url_, token_};
  }
  [[nodiscard]] std::string log() const { return tailFile(dir_.file("cp.log"), 30); }

 private:
  const std::string binary_;
  const std::string conninfo_;
  const testing::TempDir& dir_;
  Process proc_;
  mutable std::mutex mu_;
  std::string url_;
  std::string token_;
};

struct KeyedRequest {
  std::string method;
  std::string path;
  std::string body;
  std::string key;
};

struct KeyedAnswer {
  int status = 0;
  std::string body;
  bool replayed = false;
};

struct KeyedLoadOptions {
  int clients = 32;
  size_t fault_after = 0;  // run the fault once this many requests have a final answer
  std::chrono::seconds deadline{240};
};

struct KeyedLoadReport {
  // Per request, in order: every answer that settled it or acknowledged it
  // (2xx, and 4xx other than 409 idempotency_in_progress); the last settled it.
  std::vector<std::vector<KeyedAnswer>> answers;
  size_t transient = 0;  // attempts retried: no answer, 5xx, 409 in progress, 202
  bool fault_ran = false;
  bool finished = false;  // every request settled before the deadline
};

// A final answer settles a request; anything else is retried with its key.
inline bool settles(const http::Response& r) {
  if (r.status == 202 || r.status >= 500) return false;
  if (r.status == 409 && r.body.find("idempotency_in_progress") != std::string::npos) return false;
  return true;
}

// Sends each request from `options.clients` threads, each retrying its own
// request with the same key until settled, and runs `fault` once when
// `options.fault_after` requests are settled. `target` gives the current
// base URL ("" while down) and bearer token.
inline KeyedLoadReport runKeyedLoad(
    const std::vector<KeyedRequest>& requests,
    const std::function<std::pair<std::string, std::string>()>& target,
    const std::function<void()>& fault, const KeyedLoadOptions& options) {
  KeyedLoadReport report;
  report.answers.resize(requests.size());
  std::atomic<size_t> next{0};
  std::atomic<size_t> settled{0};
  std::atomic<size_t> transient{0};
  std::atomic<bool> stop{false};
  const auto deadline = std::chrono::steady_clock::now() + options.deadline;
  auto client = [&] {
    for (size_t i = next++; i < requests.size(); i = next++) {
      const KeyedRequest& rq = requests[i];
      for (;;) {
        if (std::chrono::steady_clock::now() > deadline) {
          stop = true;
          return;
        }
        const auto [url, token] = target();
        if (url.empty()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          continue;
        }
        http::ClientRequest req;
        req.method = rq.method;
        req.url = url + rq.path;
        req.body = rq.body;
        req.timeout = std::chrono::seconds(20);
        req.headers.set("Authorization", "Bearer " + token);
        req.headers.set("Idempotency-Key", rq.key);
        req.headers.set("Content-Type", "application/json");
        auto r = http::request(req);
        if (r && (r->status < 500)) {
          const bool replayed =
              r->headers.get("Idempotent-Replayed").value_or("") == std::string_view("true");
          if (r->status == 202 || settles(*r)) {
            report.answers[i].push_back(KeyedAnswer{r->status, r->body, replayed});
          }
          if (settles(*r)) {
            ++settled;
            break;
          }
        }
        ++transient;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  };
  std::thread faulter([&] {
    while (!stop && settled < options.fault_after && settled < requests.size()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (!stop && settled < requests.size()) {
      fault();
      report.fault_ran = true;
    }
  });
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(options.clients));
  for (int c = 0; c < options.clients; ++c) threads.emplace_back(client);
  for (auto& t : threads) t.join();
  stop = true;
  faulter.join();
  report.transient = transient;
  report.finished = settled == requests.size();
  return report;
}

// POST /v1/orgs/{org}/apps `count` times, one key (key_prefix + i) and one
// name (app-i) each.
inline std::vector<KeyedRequest> createAppRequests(const std::string& org, int count,
                                                   const std::string& key_prefix) {
  std::vector<KeyedRequest> out;
  for (int i = 0; i < count; ++i) {
    const std::string name = "app-" + std::to_string(i);
    out.push_back({"POST", "/v1/orgs/" + org + "/apps", json::dump(json::Json{{"name", name}}),
                   key_prefix + std::to_string(i)});
  }
  return out;
}

// After a keyed load of createAppRequests(org, n, key_prefix), and a fault:
// every request settled with 201 and every replay of it (during the load and
// now) is the saved answer byte for byte; one app.created event and one key
// record per request (none lost, none twice); the whole log is gapless.
inline void expectEachAppCreatedOnce(
    pg::Connection& db, const std::string& org, const std::string& key_prefix,
    const std::vector<KeyedRequest>& requests, const KeyedLoadReport& report,
    const std::function<std::pair<std::string, std::string>()>& target) {
  ASSERT_TRUE(report.finished) << "some requests never got an answer";
  std::set<std::string> ids;
  for (size_t i = 0; i < requests.size(); ++i) {
    SCOPED_TRACE(requests[i].key);
    const auto& answers = report.answers[i];
    ASSERT_FALSE(answers.empty());
    const KeyedAnswer& final = answers.back();
    ASSERT_EQ(final.status, 201) << final.body;
    // Every 2xx other than a 202 (views behind) is the saved answer.
    for (const auto& a : answers) {
      if (a.status != 202) {
        EXPECT_EQ(a.body, final.body);
      }
    }
    auto body = json::parse(final.body);
    ASSERT_TRUE(body.has_value());
    ids.insert((*body)["id"].get<std::string>());
    // A replay now, after the fault, is the same bytes.
    const auto [url, token] = target();
    http::ClientRequest req;
    req.method = requests[i].method;
    req.url = url + requests[i].path;
    req.body = requests[i].body;
    req.headers.set("Authorization", "Bearer " + token);
    req.headers.set("Idempotency-Key", requests[i].key);
    req.headers.set("Content-Type", "application/json");
    auto again = http::request(req);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->status, 201);
    EXPECT_EQ(again->body, final.body);
    EXPECT_EQ(again->headers.get("Idempotent-Replayed").value_or(""), std::string_view("true"));
  }
  // One app per request: none lost, none twice.
  EXPECT_EQ(ids.size(), requests.size());
  auto created = db.exec(
      "SELECT count(*), count(DISTINCT aggregate_id) FROM events WHERE event_type = "
      "'app.created' AND org_id = $1",
      {org});
  ASSERT_TRUE(created.has_value()) << created.error().toString();
  EXPECT_EQ(created->int64(0, 0).value_or(-1), static_cast<int64_t>(requests.size()));
  EXPECT_EQ(created->int64(0, 1).value_or(-1), static_cast<int64_t>(requests.size()));
  auto keys =
      db.exec("SELECT count(*) FROM idempotency_keys WHERE starts_with(key, $1)", {key_prefix});
  ASSERT_TRUE(keys.has_value());
  EXPECT_EQ(keys->int64(0, 0).value_or(-1), static_cast<int64_t>(requests.size()));
  // The log is gapless: seqs 1..max, each once.
  auto log = db.exec(
      "SELECT count(*), count(DISTINCT seq), coalesce(min(seq), 0), "
      "coalesce(max(seq), 0) FROM events");
  ASSERT_TRUE(log.has_value());
  EXPECT_EQ(log->int64(0, 0).value_or(-1), log->int64(0, 3).value_or(-2));
  EXPECT_EQ(log->int64(0, 1).value_or(-1), log->int64(0, 3).value_or(-2));
  EXPECT_EQ(log->int64(0, 2).value_or(-1), 1);
}

}  // namespace plfm::cp::testsupport
