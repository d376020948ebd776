// vt logs: an env's workload log lines, merged across instances in timestamp
// order (GET /v1/envs/{env_id}/logs, docs/specs/runtime/logs.md). `-f` loops
// on the API's long-poll with the cursor each answer carries, so no line is
// shown twice or skipped when the connection is re-made.
#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "client.h"
#include "commands.h"
#include "invocation.h"
#include "output.h"

namespace plfm::vt {
namespace {

using nlohmann::json;

// "2026-12-03T06:30:00.123456Z" -> "2026-12-03 06:30:00.123": fixed width,
// so rows printed while following line up with the first page.
std::string logTime(const std::string& ts) {
  if (ts.size() < 23) return ts;
  std::string out = ts.substr(0, 23);
  out[10] = ' ';
  return out;
}

std::string pad(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

constexpr size_t kTimeWidth = 23;
constexpr size_t kInstanceWidth = 31;  // inst_ + 26
constexpr size_t kStreamWidth = 8;

void printLine(Invocation& inv, const json& l) {
  if (inv.out.format() == Format::kJson) {
    inv.out.out() << l.dump() << "\n";
    return;
  }
  inv.out.out() << pad(logTime(l.value("ts", "")), kTimeWidth) << "  "
                << pad(l.value("instance_id", ""), kInstanceWidth) << "  "
                << pad(l.value("stream", ""), kStreamWidth) << "  " << l.value("line", "") << "\n";
}

void warnUnavailable(Invocation& inv, const json& page, std::set<std::string>& warned) {
  for (const auto& u : page.value("unavailable", json::array())) {
    const std::string id = u.value("instance_id", "");
    if (!warned.insert(id).second) continue;
    inv.out.warn("no logs from " + id + ": " + u.value("reason", ""));
  }
}

int logsRun(Invocation& inv) {
  auto env = inv.env();
  if (!env) return fail(inv, env.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  std::string query;
  const auto add = [&](const std::string& k, const std::string& v) {
    query += (query.empty() ? "?" : "&") + k + "=" + urlEncode(v);
  };
  if (auto p = inv.args.value("process")) add("process", *p);
  if (auto i = inv.args.value("instance")) add("instance", *i);
  if (auto s = inv.args.value("since")) add("since", *s);
  if (auto n = inv.args.value("tail")) {
    int tail = -1;
    try {
      tail = std::stoi(*n);
    } catch (const std::exception&) {
      tail = -1;
    }
    if (tail < 1 || tail > 5000) return fail(inv, Error("usage", "--tail must be 1-5000"));
    add("tail", std::to_string(tail));
  } else if (!inv.args.has("since") && inv.args.has("follow")) {
    add("tail", "20");  // like `tail -f`: some context, then new lines
  }
  const std::string base = "/v1/envs/" + (*env)["id"].get<std::string>() + "/logs";
  auto first = (*client)->get(base + query);
  if (!first) return fail(inv, first.error());
  std::set<std::string> warned;
  warnUnavailable(inv, *first, warned);
  const bool table = inv.out.format() != Format::kJson;
  if (table) {
    inv.out.out() << pad("TIME", kTimeWidth) << "  " << pad("INSTANCE", kInstanceWidth) << "  "
                  << pad("STREAM", kStreamWidth) << "  LINE\n";
  }
  for (const auto& l : (*first)["items"]) printLine(inv, l);
  inv.out.out().flush();
  if (!inv.args.has("follow")) return 0;
  std::string cursor = (*first)["cursor"].get<std::string>();
  std::string follow_query;
  if (auto p = inv.args.value("process")) follow_query += "&process=" + urlEncode(*p);
  if (auto i = inv.args.value("instance")) follow_query += "&instance=" + urlEncode(*i);
  for (;;) {
    std::string target = base;
    target += "?follow=true&wait=20";
    target += follow_query;
    target += "&cursor=";
    target += urlEncode(cursor);
    auto page = (*client)->get(target, std::chrono::seconds(40));
    if (!page) return fail(inv, page.error());
    warnUnavailable(inv, *page, warned);
    for (const auto& l : (*page)["items"]) printLine(inv, l);
    inv.out.out().flush();
    cursor = (*page)["cursor"].get<std::string>();
  }
}

}  // namespace

Command logsCommand() {
  return {.name = "logs",
          .summary = "Show an env's workload logs, merged across instances; -f follows",
          .help =
              "Lines are ordered by time, then instance, then position. The platform keeps\n"
              "a bounded window per instance on its node (recently stopped instances too),\n"
              "with the instance's secret values masked. In JSON mode each line is one\n"
              "object (JSON Lines), so `vt logs -f --format json | jq` works.\n"
              "\n"
              "  vt logs --tail 50                  the last 50 lines, all instances merged\n"
              "  vt logs --process web -f           follow the web processes\n"
              "  vt logs --since 10m                the last ten minutes\n"
              "  vt logs --since 2026-12-03T06:30:00Z --instance inst_...",
          .flags = {{.name = "follow", .short_name = 'f', .help = "keep showing new lines"},
                    {.name = "process", .value_name = "TYPE", .help = "only this process type"},
                    {.name = "instance", .value_name = "ID", .help = "only this instance"},
                    {.name = "since",
                     .value_name = "DURATION|TIME",
                     .help = "from this long ago (30s, 10m, 2h, 1d) or a UTC time"},
                    {.name = "tail",
                     .short_name = 'n',
                     .value_name = "N",
                     .help = "only the last N lines (default with -f: 20)"}},
          .run = logsRun};
}

}  // namespace plfm::vt
