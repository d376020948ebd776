#include "deploy_watch.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

namespace plfm::vt {
namespace {

using nlohmann::json;
using Steady = std::chrono::steady_clock;

std::string seconds(Steady::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", std::chrono::duration<double>(d).count());
  return buf;
}

// Parses "90s", "15m", "1h", "500ms"; -1 when malformed.
int64_t parseDurationMs(const std::string& s) {
  size_t used = 0;
  int64_t n = 0;
  try {
    n = std::stoll(s, &used);
  } catch (const std::exception&) {
    return -1;
  }
  std::string unit = s.substr(used);
  if (unit == "ms") return n;
  if (unit == "s" || unit.empty()) return n * 1000;
  if (unit == "m") return n * 60'000;
  if (unit == "h") return n * 3'600'000;
  return -1;
}

std::vector<std::string> renderStatus(const json& deploy, const json& instances,
                                      Steady::duration elapsed) {
  std::vector<std::string> lines;
  std::string status = deploy.value("status", "?");
  std::string head =
      "deploy " + deploy.value("id", "") + ": " + status + "  [" + seconds(elapsed) + "]";
  if (deploy.contains("reason") && deploy["reason"].is_string()) {
    head += "  " + deploy["reason"].get<std::string>();
  }
  lines.push_back(head);
  std::string release = deploy.value("release_id", "");
  if (instances.contains("summary")) {
    for (const auto& s : instances["summary"]) {
      std::string line = "  " + s.value("process_type", "?") + ": " +
                         std::to_string(s.value("current", 0)) + "/" +
                         std::to_string(s.value("desired", 0)) + " running";
      if (s.contains("reason") && s["reason"].is_string()) {
        line += " (" + s["reason"].get<std::string>() + ")";
      }
      lines.push_back(line);
    }
  }
  if (instances.contains("items")) {
    std::vector<json> items = instances["items"].get<std::vector<json>>();
    std::sort(items.begin(), items.end(), [](const json& a, const json& b) {
      return std::make_pair(a.value("process_type", ""), a.value("id", "")) <
             std::make_pair(b.value("process_type", ""), b.value("id", ""));
    });
    for (const auto& i : items) {
      if (i.value("release_id", "") != release) continue;
      std::string line = "    " + i.value("id", "") + "  " + i.value("process_type", "") + "  " +
                         i.value("current_state", "?");
      if (i.contains("node_id") && i["node_id"].is_string()) {
        line += "  on " + i["node_id"].get<std::string>();
      }
      if (i.contains("reason") && i["reason"].is_string()) {
        line += "  (" + i["reason"].get<std::string>() + ")";
      }
      lines.push_back(line);
    }
  }
  return lines;
}

// What a watch shares across the deploys it follows (the deploy, then its
// auto-rollback): the terminal, the clock and what is on screen.
struct Watch {
  Invocation& inv;
  ApiClient& client;
  std::string env_id;
  bool tty = false;
  Steady::time_point start;
  std::chrono::milliseconds timeout{0};
  std::vector<std::string> shown{};
  json instances = json::object();
};

bool terminal(const std::string& status) {
  return status == "succeeded" || status == "failed" || status == "superseded";
}

// Polls `current` (a deploy) and the env's instances, rendering both, until
// the deploy is terminal (true) or the watch's timeout passes (false).
bool follow(Watch& w, json& current) {
  const std::string dep_id = current["id"];
  for (;;) {
    auto d = w.client.get("/v1/deploys/" + dep_id);
    if (d) current = *d;
    auto inst = w.client.get("/v1/envs/" + w.env_id + "/instances");
    if (inst) w.instances = *inst;
    std::vector<std::string> lines = renderStatus(current, w.instances, Steady::now() - w.start);
    if (w.tty) {
      if (!w.shown.empty()) w.inv.out.err() << "\033[" << w.shown.size() << "A\033[J";
      for (const auto& l : lines) w.inv.out.err() << l << "\n";
      w.inv.out.err().flush();
      w.shown = lines;
    } else if (!w.inv.out.quiet()) {
      // Without a terminal, print only what changed (ignoring the clock).
      std::vector<std::string> cmp = lines;
      cmp[0] = cmp[0].substr(0, cmp[0].find("  ["));
      std::vector<std::string> prev = w.shown;
      if (!prev.empty()) prev[0] = prev[0].substr(0, prev[0].find("  ["));
      if (cmp != prev) {
        for (const auto& l : lines) w.inv.out.err() << l << "\n";
        w.inv.out.err().flush();
      }
      w.shown = lines;
    }
    if (terminal(current.value("status", ""))) return true;
    if (Steady::now() - w.start > w.timeout) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

// The auto-rollback the control plane created for failed deploy `dep_id`
// (the env's current deploy, with rollback_of = dep_id); null when none.
json findRollback(Watch& w, const std::string& dep_id) {
  auto env = w.client.get("/v1/envs/" + w.env_id);
  if (!env || !(*env)["current_deploy_id"].is_string()) return nullptr;
  const std::string current = (*env)["current_deploy_id"];
  if (current == dep_id) return nullptr;
  auto d = w.client.get("/v1/deploys/" + current);
  if (!d || field(*d, "rollback_of") != dep_id) return nullptr;
  return *d;
}

std::string reasonOf(const json& deploy) {
  return deploy["reason"].is_string() && !deploy["reason"].get<std::string>().empty()
             ? deploy["reason"].get<std::string>()
             : "no reason given";
}

// A failed deploy: the error on stderr, then a receipt whose `next` says
// what to run, depending on whether it was rolled back (`rollback`, null
// when not) and whether there is an earlier release to go back to.
int failed(Watch& w, const json& current, const json& rollback, const std::string& took,
           const std::string& scope) {
  Invocation& inv = w.inv;
  const std::string dep_id = current.value("id", "");
  inv.out.error("deploy " + dep_id + " failed after " + took + ": " + reasonOf(current), "");
  Receipt r{.action = "deploy.failed", .ids = {dep_id}};
  r.next = {"vt logs" + scope, "vt instances list" + scope};
  if (rollback.is_object()) {
    const std::string rb_id = rollback.value("id", "");
    const std::string rb_status = rollback.value("status", "");
    const std::string rel = rollback.value("release_id", "");
    r.ids.push_back(rb_id);
    if (rb_status == "succeeded") {
      r.message = "Deploy " + dep_id + " failed; rolled back to release " + rel + " (deploy " +
                  rb_id + " succeeded)";
    } else {
      r.message = "Deploy " + dep_id + " failed; the rollback to release " + rel + " (deploy " +
                  rb_id + ") is " + rb_status;
      r.notes.push_back("rollback: " + reasonOf(rollback));
    }
    r.next.push_back("vt deploys get " + dep_id);
    if (rb_status == "failed") r.next.push_back("vt releases list" + scope);
  } else {
    r.message = "Deploy " + dep_id + " failed; nothing was rolled back";
    const std::string reason = reasonOf(current);
    if (reason.find("auto_rollback is off") != std::string::npos) {
      r.notes.emplace_back(
          "auto_rollback is off: the failed instances stay for inspection, the previous "
          "release keeps serving");
    }
    if (reason.find("there is no earlier release") == std::string::npos) {
      r.next.insert(r.next.begin(), "vt rollback" + scope);
    }
  }
  r.notes.push_back("took " + took);
  inv.out.receipt(r, {{"deploy", current}, {"rollback", rollback}, {"instances", w.instances}},
                  false);
  return exitcode::kDeployFailed;
}

int timedOut(Invocation& inv, const std::string& dep_id, const std::string& status,
             const std::string& took) {
  inv.out.error(
      "deploy " + dep_id + " is still " + status + " after " + took + "; it goes on on the server",
      "watch it with `vt deploys get " + dep_id + "` or `vt instances list`");
  return exitcode::kUnavailable;
}

}  // namespace

int watchDeploy(Invocation& inv, ApiClient& client, const json& env, const json& deploy,
                const std::string& success_message, std::vector<std::string> notes,
                const std::string& scope) {
  const std::string dep_id = deploy["id"];
  int64_t timeout_ms = int64_t{15} * 60'000;
  if (auto t = inv.args.value("timeout")) {
    timeout_ms = parseDurationMs(*t);
    if (timeout_ms <= 0) {
      inv.out.error("--timeout must be a duration like 90s, 15m or 1h (got `" + *t + "`)", "");
      return exitcode::kUsage;
    }
  }
  Watch w{.inv = inv,
          .client = client,
          .env_id = env["id"],
          .tty = ::isatty(2) == 1 && !inv.out.quiet(),
          .start = Steady::now(),
          .timeout = std::chrono::milliseconds(timeout_ms)};
  json current = deploy;
  inv.out.progress("Watching deploy " + dep_id + " (Ctrl-C stops watching; the deploy goes on)");
  if (!follow(w, current)) {
    return timedOut(inv, dep_id, current.value("status", ""), seconds(Steady::now() - w.start));
  }
  const std::string status = current.value("status", "");
  if (status == "succeeded") {
    notes.push_back("took " + seconds(Steady::now() - w.start));
    Receipt r{.action = "deploy.succeeded",
              .message = success_message + " (deploy " + dep_id + " succeeded)",
              .ids = {dep_id, current.value("release_id", "")},
              .notes = notes,
              .next = {"vt instances list" + inv.scopeFlags(), "vt deploys get " + dep_id,
                       "vt events tail"}};
    inv.out.receipt(r, {{"deploy", current}, {"instances", w.instances}});
    return exitcode::kOk;
  }
  if (status == "superseded") {
    if (inv.out.format() == Format::kJson) {
      inv.out.json({{"action", "deploy.superseded"},
                    {"result", {{"deploy", current}, {"instances", w.instances}}}});
    }
    inv.out.error("deploy " + dep_id + " superseded after " + seconds(Steady::now() - w.start) +
                      ": " + reasonOf(current),
                  "a newer deploy replaced it; see `vt deploys list`");
    return exitcode::kDeployFailed;
  }
  // Failed: follow its auto-rollback live too, if the control plane made one.
  const std::string where = scope.empty() ? inv.scopeFlags() : scope;
  json rollback = findRollback(w, dep_id);
  if (rollback.is_object()) {
    inv.out.progress("Deploy " + dep_id + " failed; auto-rollback: deploy " +
                     rollback.value("id", "") + " redeploys release " +
                     rollback.value("release_id", ""));
    w.shown.clear();
    (void)follow(w, rollback);  // on timeout, the receipt says where it stands
  }
  return failed(w, current, rollback, seconds(Steady::now() - w.start), where);
}

}  // namespace plfm::vt
