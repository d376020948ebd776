// Operating an app: releases, deploys, scale, instances, events (nodes: commands_nodes.cc).
#include <algorithm>
#include <chrono>
#include <thread>

#include "commands.h"
#include "deploy_watch.h"
#include "invocation.h"

namespace plfm::vt {
namespace {

using nlohmann::json;

// Newest first: ids are time-sortable.
std::vector<json> newestFirst(std::vector<json> items) {
  std::sort(items.begin(), items.end(),
            [](const json& a, const json& b) { return a.value("id", "") > b.value("id", ""); });
  return items;
}

std::string processesOf(const json& manifest) {
  std::string out;
  if (manifest.contains("processes") && manifest["processes"].is_array()) {
    for (const auto& p : manifest["processes"]) {
      out += (out.empty() ? "" : ",") + p.value("name", "?");
    }
  }
  return out.empty() ? "-" : out;
}

int releasesList(Invocation& inv) {
  auto app = inv.app();
  if (!app) return fail(inv, app.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto items = (*client)->listAll("/v1/apps/" + (*app)["id"].get<std::string>() + "/releases");
  if (!items) return fail(inv, items.error());
  printList(inv, newestFirst(*items), {"ID", "IMAGE", "DIGEST", "PROCESSES", "CREATED"},
            [](const json& r) {
              std::string digest = r.value("image_digest", "");
              // The digest has its own column; keep the image column readable.
              std::string image = r.value("image_ref", "");
              image = image.substr(0, image.find('@'));
              return std::vector<std::string>{field(r, "id"), image, digest.substr(0, 19),
                                              processesOf(field(r, "manifest")),
                                              shortTime(field(r, "created_at"))};
            });
  return 0;
}

int deploysList(Invocation& inv) {
  auto env = inv.env();
  if (!env) return fail(inv, env.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto items = (*client)->listAll("/v1/envs/" + (*env)["id"].get<std::string>() + "/deploys");
  if (!items) return fail(inv, items.error());
  printList(inv, newestFirst(*items), {"ID", "RELEASE", "STRATEGY", "STATUS", "REASON", "CREATED"},
            [](const json& d) {
              return std::vector<std::string>{
                  field(d, "id"),     field(d, "release_id"),   field(d, "strategy"),
                  field(d, "status"), cell(field(d, "reason")), shortTime(field(d, "created_at"))};
            });
  return 0;
}

int deploysGet(Invocation& inv) {
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto d = (*client)->get("/v1/deploys/" + inv.args.positionals[0]);
  if (!d) return fail(inv, d.error());
  if (inv.out.format() == Format::kJson) {
    inv.out.json(*d);
  } else if (inv.out.quiet()) {
    inv.out.out() << (*d)["status"].get<std::string>() << "\n";
  } else {
    inv.out.fields({{"id", (*d)["id"]},
                    {"status", (*d)["status"]},
                    {"reason", cell((*d)["reason"])},
                    {"release", (*d)["release_id"]},
                    {"secrets", cell((*d).value("secrets_version", json()))},
                    {"env", (*d)["env_id"]},
                    {"strategy", (*d)["strategy"]},
                    {"created", shortTime((*d)["created_at"])},
                    {"updated", shortTime((*d)["updated_at"])}});
  }
  return 0;
}

int rollback(Invocation& inv) {
  auto env = inv.env();
  if (!env) return fail(inv, env.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  std::string env_id = (*env)["id"];
  std::string current = (*env)["current_release_id"].is_string()
                            ? (*env)["current_release_id"].get<std::string>()
                            : "";
  std::string target;
  // After a failed deploy that was not rolled back (auto_rollback off), the
  // env's current release is still the last good one: go back to it.
  bool failed_current = false;
  if (!current.empty() && (*env)["current_deploy_id"].is_string()) {
    auto d = (*client)->get("/v1/deploys/" + (*env)["current_deploy_id"].get<std::string>());
    if (!d) return fail(inv, d.error());
    failed_current = field(*d, "status") == "failed" && field(*d, "release_id") != current;
  }
  if (!inv.args.positionals.empty()) {
    target = inv.args.positionals[0];
    auto rel = (*client)->get("/v1/releases/" + target);
    if (!rel) return fail(inv, rel.error());
  } else if (failed_current) {
    target = current;
  } else {
    auto deploys = (*client)->listAll("/v1/envs/" + env_id + "/deploys");
    if (!deploys) return fail(inv, deploys.error());
    for (const auto& d : newestFirst(*deploys)) {
      if (field(d, "status") == "succeeded" && field(d, "release_id") != current) {
        target = field(d, "release_id");
        break;
      }
    }
    if (target.empty()) {
      return fail(inv, Error(errc::kFailedPrecondition,
                             "no earlier successful release to roll back to in env " +
                                 (*env)["name"].get<std::string>())
                           .with("hint",
                                 "list releases with `vt releases list` and pass one: "
                                 "`vt rollback rel_...`"));
    }
  }
  if (target == current && !failed_current) {
    return fail(inv, Error(errc::kFailedPrecondition,
                           "release " + target + " is already the env's current release"));
  }
  json body = {{"release_id", target}};
  if (auto s = inv.args.value("strategy")) body["strategy"] = *s;
  auto dep = (*client)->mutate("POST", "/v1/envs/" + env_id + "/deploys", body);
  if (!dep) return fail(inv, dep.error());
  std::string dep_id = (*dep)["id"];
  if (inv.args.has("detach")) {
    Receipt r{.action = "deploy.created",
              .message = "Rolling back env " + (*env)["name"].get<std::string>() + " to release " +
                         target + " with deploy " + dep_id,
              .ids = {dep_id, target},
              .next = {"vt deploys get " + dep_id, "vt instances list" + inv.scopeFlags(),
                       "vt events tail --follow"}};
    inv.out.receipt(r, *dep);
    return 0;
  }
  return watchDeploy(inv, **client, *env, *dep, "Rolled back to release " + target);
}

int scaleSet(Invocation& inv) {
  json procs = json::object();
  for (const auto& arg : inv.args.positionals) {
    auto eq = arg.find('=');
    int count = -1;
    if (eq != std::string::npos && eq > 0 && eq + 1 < arg.size() && eq + 5 >= arg.size()) {
      try {
        size_t used = 0;
        count = std::stoi(arg.substr(eq + 1), &used);
        if (used != arg.size() - eq - 1) count = -1;
      } catch (const std::exception&) {
        count = -1;
      }
    }
    if (count < 0 || count > 1000) {
      return fail(inv, Error("usage", "`" + arg + "` is not PROCESS=COUNT (count 0-1000)")
                           .with("hint", "e.g. vt scale set web=3 worker=1"));
    }
    procs[arg.substr(0, eq)] = count;
  }
  auto env = inv.env();
  if (!env) return fail(inv, env.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto res = (*client)->mutate("PUT", "/v1/envs/" + (*env)["id"].get<std::string>() + "/scale",
                               {{"processes", procs}});
  if (!res) return fail(inv, res.error());
  std::string desc;
  for (const auto& [name, count] : procs.items()) {
    desc += (desc.empty() ? "" : ", ") + name + "=" + std::to_string(count.get<int>());
  }
  Receipt r{.action = "env.scale_set",
            .message = "Scaled env " + (*env)["name"].get<std::string>() + ": " + desc,
            .ids = {(*env)["id"]},
            .next = {"vt instances list" + inv.scopeFlags(), "vt scale show" + inv.scopeFlags()}};
  inv.out.receipt(r, *res);
  return 0;
}

int scaleShow(Invocation& inv) {
  auto env = inv.env();
  if (!env) return fail(inv, env.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto res = (*client)->get("/v1/envs/" + (*env)["id"].get<std::string>() + "/scale");
  if (!res) return fail(inv, res.error());
  if (inv.out.format() == Format::kJson) {
    inv.out.json(*res);
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, count] : (*res)["processes"].items()) {  // sorted keys
    rows.push_back({name, std::to_string(count.get<int>())});
  }
  inv.out.table({"PROCESS", "COUNT"}, rows);
  return 0;
}

int instancesList(Invocation& inv) {
  auto env = inv.env();
  if (!env) return fail(inv, env.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto res = (*client)->get("/v1/envs/" + (*env)["id"].get<std::string>() + "/instances");
  if (!res) return fail(inv, res.error());
  std::vector<json> items = (*res)["items"].get<std::vector<json>>();
  std::sort(items.begin(), items.end(), [](const json& a, const json& b) {
    return std::make_pair(a.value("process_type", ""), a.value("id", "")) <
           std::make_pair(b.value("process_type", ""), b.value("id", ""));
  });
  std::vector<json> summary = (*res)["summary"].get<std::vector<json>>();
  std::sort(summary.begin(), summary.end(), [](const json& a, const json& b) {
    return a.value("process_type", "") < b.value("process_type", "");
  });
  if (inv.out.format() == Format::kJson) {
    inv.out.json({{"items", items}, {"summary", summary}});
    return 0;
  }
  if (inv.out.quiet()) {
    for (const auto& i : items) inv.out.out() << field(i, "id").get<std::string>() << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  rows.reserve(std::max(summary.size(), items.size()));
  for (const auto& s : summary) {
    rows.push_back({field(s, "process_type"), std::to_string(field(s, "desired").get<int>()),
                    std::to_string(field(s, "current").get<int>()), cell(field(s, "reason"))});
  }
  inv.out.table({"PROCESS", "DESIRED", "CURRENT", "REASON"}, rows);
  inv.out.line("");
  rows.clear();
  for (const auto& i : items) {
    rows.push_back({field(i, "id"), field(i, "process_type"), cell(field(i, "node_id")),
                    cell(field(i, "address")), field(i, "desired_state"), field(i, "current_state"),
                    cell(field(i, "reason"))});
  }
  inv.out.table({"INSTANCE", "PROCESS", "NODE", "ADDRESS", "DESIRED", "CURRENT", "REASON"}, rows);
  return 0;
}

std::vector<std::string> eventRow(const json& e) {
  return {std::to_string(field(e, "seq").get<int64_t>()), shortTime(field(e, "occurred_at")),
          field(e, "event_type"), field(e, "aggregate_id"), cell(field(e, "actor"))};
}

int eventsTail(Invocation& inv) {
  auto org = inv.org();
  if (!org) return fail(inv, org.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  int lines = 20;
  if (auto n = inv.args.value("lines")) {
    try {
      lines = std::stoi(*n);
    } catch (const std::exception&) {
      lines = -1;
    }
    if (lines < 1 || lines > 10000) return fail(inv, Error("usage", "--lines must be 1-10000"));
  }
  std::string base = "/v1/orgs/" + (*org)["id"].get<std::string>() + "/events";
  // Walk to the end of the log, keeping the last `lines` events.
  std::vector<json> tail;
  int64_t after = 0;
  for (;;) {
    auto page = (*client)->get(base + "?limit=200&after=" + std::to_string(after));
    if (!page) return fail(inv, page.error());
    auto& items = (*page)["items"];
    for (auto& e : items) tail.push_back(std::move(e));
    if (tail.size() > static_cast<size_t>(lines)) {
      tail.erase(tail.begin(), tail.end() - lines);
    }
    int64_t next = (*page)["next_after"].get<int64_t>();
    if (items.empty() || next == after) break;
    after = next;
  }
  bool json_lines = inv.out.format() == Format::kJson;
  const std::vector<std::string> headers = {"SEQ", "TIME", "TYPE", "AGGREGATE", "ACTOR"};
  if (json_lines) {
    // One JSON object per line, so `--follow` output can be streamed into jq.
    for (const auto& e : tail) inv.out.out() << e.dump() << "\n";
  } else {
    std::vector<std::vector<std::string>> rows;
    rows.reserve(tail.size());
    for (const auto& e : tail) rows.push_back(eventRow(e));
    inv.out.table(headers, rows);
  }
  if (!inv.args.has("follow")) return 0;
  inv.out.out().flush();
  for (;;) {
    auto page = (*client)->get(base + "?limit=200&wait=25&after=" + std::to_string(after),
                               std::chrono::seconds(40));
    if (!page) return fail(inv, page.error());
    for (const auto& e : (*page)["items"]) {
      if (json_lines) {
        inv.out.out() << e.dump() << "\n";
      } else {
        auto row = eventRow(e);
        std::string line;
        for (const auto& c : row) line += (line.empty() ? "" : "  ") + c;
        inv.out.out() << line << "\n";
      }
    }
    inv.out.out().flush();
    after = (*page)["next_after"].get<int64_t>();
  }
}

const Flag kDetach{.name = "detach", .help = "return at once instead of watching the deploy"};

}  // namespace

Command rollbackCommand() {
  return {
      .name = "rollback",
      .summary = "Redeploy an earlier release (default: the last one that succeeded)",
      .help =
          "Creates a new deploy of an earlier release of the env and watches it.\n"
          "Without RELEASE, picks the newest succeeded deploy whose release differs\n"
          "from the current one; after a failed deploy that was not rolled back\n"
          "([deploy] auto_rollback = false), the current release, which still serves.\n"
          "\nExamples:\n  vt rollback\n  vt rollback rel_01j...",
      .flags = {kDetach,
                {.name = "strategy", .value_name = "rolling|immediate", .help = "deploy strategy"},
                {.name = "timeout",
                 .value_name = "DURATION",
                 .help = "stop watching after this long (default 15m)"}},
      .positionals = {{.name = "RELEASE", .help = "release id", .required = false}},
      .mutating = true,
      .run = rollback};
}

Command releasesCommand() {
  Command c{.name = "releases", .summary = "List and inspect an app's releases"};
  c.children.push_back(
      {.name = "list", .summary = "List releases (newest first)", .run = releasesList});
  c.children.push_back(releasesGetCommand());
  return c;
}

Command deploysCommand() {
  Command c{.name = "deploys", .summary = "List and inspect an env's deploys"};
  c.children.push_back(
      {.name = "list", .summary = "List deploys (newest first)", .run = deploysList});
  c.children.push_back({.name = "get",
                        .summary = "Show one deploy",
                        .positionals = {{.name = "DEPLOY", .help = "deploy id (dep_...)"}},
                        .run = deploysGet});
  return c;
}

Command scaleCommand() {
  Command c{.name = "scale", .summary = "Set or show instance counts per process"};
  c.children.push_back({.name = "set",
                        .summary = "Set instance counts: vt scale set web=3 worker=1",
                        .help = "Processes not named keep their count.",
                        .positionals = {{.name = "PROCESS=COUNT",
                                         .help = "one or more, count 0-1000",
                                         .variadic = true}},
                        .mutating = true,
                        .run = scaleSet});
  c.children.push_back({.name = "show", .summary = "Show instance counts", .run = scaleShow});
  return c;
}

Command instancesCommand() {
  Command c{.name = "instances", .summary = "Instances: desired vs current, with reasons"};
  c.children.push_back({.name = "list",
                        .summary = "List an env's instances and per-process summary",
                        .run = instancesList});
  c.children.push_back(instancesGetCommand());
  return c;
}

Command eventsCommand() {
  Command c{.name = "events", .summary = "The org's event log"};
  c.children.push_back(
      {.name = "tail",
       .summary = "Show the latest events; --follow keeps streaming",
       .help = "In JSON mode each event is one line (JSON Lines), so\n"
               "`vt events tail -f --format json | jq` works.",
       .flags = {{.name = "follow", .short_name = 'f', .help = "keep streaming new events"},
                 {.name = "lines",
                  .short_name = 'n',
                  .value_name = "N",
                  .help = "how many recent events to show (default 20)"}},
       .run = eventsTail});
  return c;
}

}  // namespace plfm::vt
