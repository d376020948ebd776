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

int finish(Invocation& inv, const json& current, const json& instances, const std::string& took,
           const std::string& success_message, std::vector<std::string>& notes) {
  const std::string dep_id = current.value("id", "");
  const std::string status = current.value("status", "");
  if (status == "succeeded") {
    notes.push_back("took " + took);
    Receipt r{.action = "deploy.succeeded",
              .message = success_message + " (deploy " + dep_id + " succeeded)",
              .ids = {dep_id, current.value("release_id", "")},
              .notes = notes,
              .next = {"vt instances list" + inv.scopeFlags(), "vt deploys get " + dep_id,
                       "vt events tail"}};
    inv.out.receipt(r, {{"deploy", current}, {"instances", instances}});
    return exitcode::kOk;
  }
  std::string reason =
      current["reason"].is_string() ? current["reason"].get<std::string>() : "no reason given";
  if (inv.out.format() == Format::kJson) {
    inv.out.json({{"action", "deploy." + status},
                  {"result", {{"deploy", current}, {"instances", instances}}}});
  }
  inv.out.error("deploy " + dep_id + " " + status + " after " + took + ": " + reason,
                status == "failed" ? "the previous release keeps serving; see `vt instances list" +
                                         inv.scopeFlags() + "` and `vt events tail`"
                                   : "a newer deploy replaced it; see `vt deploys list`");
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
                const std::string& success_message, std::vector<std::string> notes) {
  const std::string dep_id = deploy["id"];
  const std::string env_id = env["id"];
  int64_t timeout_ms = int64_t{15} * 60'000;
  if (auto t = inv.args.value("timeout")) {
    timeout_ms = parseDurationMs(*t);
    if (timeout_ms <= 0) {
      inv.out.error("--timeout must be a duration like 90s, 15m or 1h (got `" + *t + "`)", "");
      return exitcode::kUsage;
    }
  }
  const bool tty = ::isatty(2) == 1 && !inv.out.quiet();
  const auto start = Steady::now();
  std::vector<std::string> shown;
  json current = deploy;
  json instances = json::object();
  inv.out.progress("Watching deploy " + dep_id + " (Ctrl-C stops watching; the deploy goes on)");
  for (;;) {
    auto d = client.get("/v1/deploys/" + dep_id);
    if (d) current = *d;
    auto inst = client.get("/v1/envs/" + env_id + "/instances");
    if (inst) instances = *inst;
    auto elapsed = Steady::now() - start;
    std::vector<std::string> lines = renderStatus(current, instances, elapsed);
    if (tty) {
      if (!shown.empty()) inv.out.err() << "\033[" << shown.size() << "A\033[J";
      for (const auto& l : lines) inv.out.err() << l << "\n";
      inv.out.err().flush();
      shown = lines;
    } else if (!inv.out.quiet()) {
      // Without a terminal, print only what changed (ignoring the clock).
      std::vector<std::string> cmp = lines;
      cmp[0] = cmp[0].substr(0, cmp[0].find("  ["));
      std::vector<std::string> prev = shown;
      if (!prev.empty()) prev[0] = prev[0].substr(0, prev[0].find("  ["));
      if (cmp != prev) {
        for (const auto& l : lines) inv.out.err() << l << "\n";
        inv.out.err().flush();
      }
      shown = lines;
    }
    std::string status = current.value("status", "");
    if (status == "succeeded" || status == "failed" || status == "superseded") {
      return finish(inv, current, instances, seconds(Steady::now() - start), success_message,
                    notes);
    }
    if (Steady::now() - start > std::chrono::milliseconds(timeout_ms)) {
      return timedOut(inv, dep_id, status, seconds(Steady::now() - start));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

}  // namespace plfm::vt
