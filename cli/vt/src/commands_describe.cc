// vt instances get | releases get: one instance or one release described
// (GET /v1/instances/{id}, GET /v1/releases/{id}; docs/specs/cli/output.md,
// "Describing"). A table-mode description is "key: value" lines, then
// sections in a fixed order; JSON mode prints the API's object.
#include <algorithm>
#include <charconv>

#include "commands.h"
#include "describe_view.h"
#include "invocation.h"
#include "plfm/core/id.h"

namespace plfm::vt {
namespace {

using nlohmann::json;

// A typed id from a positional, checked before anything is sent: the error
// names the argument and the field.
template <class Id>
Result<Id> idArg(Invocation& inv, std::string_view arg, std::string_view field,
                 std::string_view hint) {
  auto id = Id::parse(inv.args.positionals[0]);
  if (!id) {
    return Error(errc::kInvalidArgument, std::string(arg) + ": " + id.error().message())
        .with("field", std::string(field))
        .with("hint", std::string(hint));
  }
  return id;
}

// --NAME N within lo..hi, `def` when absent.
Result<int> intFlag(Invocation& inv, const std::string& name, int def, int lo, int hi) {
  auto v = inv.args.value(name);
  if (!v) return def;
  int out = 0;
  auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc() || end != v->data() + v->size() || out < lo || out > hi) {
    return Error("usage", "--" + name + " must be " + std::to_string(lo) + "-" +
                              std::to_string(hi) + " (got `" + v->substr(0, 20) + "`)");
  }
  return out;
}

// 10000 -> "10s", 1500 -> "1500ms".
std::string millis(int64_t ms) {
  return ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : std::to_string(ms) + "ms";
}

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

std::string orDash(const std::string& s) { return s.empty() ? "-" : s; }
std::string orDash(const std::optional<int64_t>& v) { return v ? std::to_string(*v) : "-"; }

// "tcp port 8443, every 10s, timeout 2s, grace 5s"; "http port 8080 /healthz, ...".
std::string checkText(const manifest::Check& c) {
  std::string out = c.type;
  if (c.type == "exec") {
    out += " `" + joined(c.command) + "`";
  } else {
    out += " port " + std::to_string(c.port);
    if (c.type == "http") out += " " + c.path;
  }
  return out + ", every " + millis(c.interval_ms) + ", timeout " + millis(c.timeout_ms) +
         ", grace " + millis(c.grace_ms);
}

// "image 120ms, start 30ms, boot 1480ms": the agent's steps in the order
// they happen, then any other in name order.
std::string timingsText(const std::vector<std::pair<std::string, int64_t>>& timings) {
  static const std::vector<std::string> kSteps = {"image_ms", "start_ms", "boot_ms"};
  std::string out;
  auto add = [&out](const std::string& name, int64_t ms) {
    out += (out.empty() ? "" : ", ") + name + " " + std::to_string(ms) + "ms";
  };
  for (const auto& step : kSteps) {
    for (const auto& t : timings) {
      if (t.first == step) add(step.substr(0, step.size() - 3), t.second);
    }
  }
  for (const auto& t : timings) {
    if (std::find(kSteps.begin(), kSteps.end(), t.first) == kSteps.end()) add(t.first, t.second);
  }
  return orDash(out);
}

// JSON mode prints the API's object and --quiet the id; true when done.
bool printedPlainly(Invocation& inv, const json& d, const std::string& id) {
  if (inv.out.format() == Format::kJson) {
    inv.out.json(d);
  } else if (inv.out.quiet()) {
    inv.out.out() << id << "\n";
  } else {
    return false;
  }
  return true;
}

void section(Invocation& inv, const std::string& title) {
  inv.out.line("");
  inv.out.line(title);
}

// ---- vt instances get ----

void instanceFields(Invocation& inv, const InstanceView& i) {
  std::string current = orDash(i.current_state);
  if (!i.phase_since.empty()) current += " since " + shortTime(i.phase_since);
  if (i.lost) current += " (lost with its node)";
  std::vector<std::pair<std::string, std::string>> kv = {
      {"id", i.id},
      {"process", orDash(i.process_type)},
      {"env", orDash(i.env_id)},
      {"release", orDash(i.release_id)},
      {"deploy", orDash(i.deploy_id)},
      {"node", orDash(i.node_id)},
      {"address", orDash(i.address)},
      {"desired", orDash(i.desired_state)},
      {"current", current},
      {"reason", orDash(i.reason)},
      {"generation", orDash(i.generation)},
      {"restarts", orDash(i.restarts)},
      {"exit code", orDash(i.exit_code)},
      {"resources", orDash(i.vcpus) + " vCPU, " + orDash(i.memory_mb) + " MiB"},
      {"timings", timingsText(i.timings)},
      {"created", shortTime(i.created_at)}};
  if (!i.not_before.empty()) kv.emplace_back("starts after", shortTime(i.not_before));
  inv.out.fields(kv);
}

void instanceChecks(Invocation& inv, const InstanceDetailView& d) {
  section(inv, "Checks:");
  if (d.checks.empty()) inv.out.line("  none configured (running counts as healthy)");
  for (const auto& c : d.checks) inv.out.line("  " + checkText(c));
  if (!d.last_check) {
    inv.out.line("  last result: none reported yet");
    return;
  }
  const CheckResultView& last = *d.last_check;
  std::string text = "  last result: " + orDash(last.status) + " at " + shortTime(last.at) +
                     " (generation " + orDash(last.generation) + ")";
  inv.out.line(last.reason.empty() ? text : text + ": " + last.reason);
}

void instanceEvents(Invocation& inv, const InstanceDetailView& d) {
  section(inv, "Events (oldest first):");
  std::vector<std::vector<std::string>> rows;
  rows.reserve(d.events.size());
  for (const auto& e : d.events) {
    std::string type = e.event_type;
    if (type.starts_with("instance.")) type.erase(0, 9);
    rows.push_back({shortTime(e.occurred_at), orDash(type), orDash(e.generation), orDash(e.phase),
                    orDash(e.reason)});
  }
  inv.out.table({"TIME", "EVENT", "GEN", "PHASE", "REASON"}, rows);
}

void instanceLogs(Invocation& inv, const InstanceDetailView& d) {
  section(inv, "Logs:");
  if (!d.logs_unavailable.empty()) {
    inv.out.line("  unavailable: " + d.logs_unavailable);
    return;
  }
  if (d.log_lines.empty()) {
    inv.out.line("  none");
    return;
  }
  std::vector<std::vector<std::string>> rows;
  rows.reserve(d.log_lines.size());
  for (const auto& l : d.log_lines) rows.push_back({shortTime(l.ts), l.stream, l.line});
  inv.out.table({"TIME", "STREAM", "LINE"}, rows);
}

int instancesGet(Invocation& inv) {
  auto id = idArg<InstanceId>(inv, "INSTANCE", "instance_id",
                              "list instance ids with `vt instances list`");
  if (!id) return fail(inv, id.error());
  auto events = intFlag(inv, "events", 20, 1, 200);
  if (!events) return fail(inv, events.error());
  auto lines = intFlag(inv, "lines", 20, 0, 200);
  if (!lines) return fail(inv, lines.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto d = (*client)->get("/v1/instances/" + id->str() + "?events=" + std::to_string(*events) +
                          "&log_lines=" + std::to_string(*lines));
  if (!d) return fail(inv, d.error());
  if (printedPlainly(inv, *d, id->str())) return 0;
  auto view = parseInstanceDetail(*d);
  if (!view) return fail(inv, view.error());
  instanceFields(inv, view->instance);
  instanceChecks(inv, *view);
  instanceEvents(inv, *view);
  if (*lines > 0) instanceLogs(inv, *view);
  return 0;
}

// ---- vt releases get ----

// "prod (current, 2 instances); staging (deploy in_progress, 1 instance)".
std::string envsText(const std::vector<ReleaseEnvView>& envs) {
  std::string out;
  for (const auto& e : envs) {
    std::string what = e.current ? "current, " : "";
    if (!e.deploy_status.empty() && e.deploy_status != "succeeded") {
      what += "deploy " + e.deploy_status + ", ";
    }
    what += std::to_string(e.instances) + (e.instances == 1 ? " instance" : " instances");
    out += (out.empty() ? "" : "; ") + e.name + " (" + what + ")";
  }
  return out.empty() ? "none" : out;
}

std::string deployText(const manifest::DeployPolicy& p) {
  return "strategy " + p.strategy + ", max_surge " + std::to_string(p.max_surge) +
         ", max_unavailable " + std::to_string(p.max_unavailable) + ", progress_deadline " +
         millis(p.progress_deadline_ms) + ", drain_timeout " + millis(p.drain_timeout_ms) +
         ", auto_rollback " + (p.auto_rollback ? "on" : "off");
}

void releaseManifest(Invocation& inv, const manifest::Manifest& m) {
  section(inv, "Processes:");
  std::vector<std::vector<std::string>> rows;
  rows.reserve(m.processes.size());
  for (const auto& p : m.processes) {
    std::vector<std::string> argv = p.command;
    argv.insert(argv.end(), p.args.begin(), p.args.end());
    rows.push_back({p.name, std::to_string(p.resources.vcpus),
                    std::to_string(p.resources.memory_mb) + " MiB",
                    argv.empty() ? "(the image's)" : joined(argv)});
  }
  inv.out.table({"PROCESS", "VCPUS", "MEMORY", "COMMAND"}, rows);
  section(inv, "Checks:");
  if (m.checks.empty()) {
    inv.out.line("  none (running counts as healthy)");
    return;
  }
  rows.clear();
  for (const auto& c : m.checks) rows.push_back({c.process, checkText(c)});
  inv.out.table({"PROCESS", "CHECK"}, rows);
}

int releasesGet(Invocation& inv) {
  auto id =
      idArg<ReleaseId>(inv, "RELEASE", "release_id", "list release ids with `vt releases list`");
  if (!id) return fail(inv, id.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto r = (*client)->get("/v1/releases/" + id->str());
  if (!r) return fail(inv, r.error());
  if (printedPlainly(inv, *r, id->str())) return 0;
  auto view = parseReleaseDetail(*r);
  if (!view) return fail(inv, view.error());
  std::vector<std::pair<std::string, std::string>> kv = {{"id", view->id},
                                                         {"app", orDash(view->app_id)},
                                                         {"image", orDash(view->image_ref)},
                                                         {"digest", orDash(view->image_digest)},
                                                         {"created", shortTime(view->created_at)},
                                                         {"runs in", envsText(view->envs)}};
  if (!view->manifest) {
    kv.emplace_back("manifest",
                    "cannot summarize (" + view->manifest_error + "); `--format json` shows it");
    inv.out.fields(kv);
    return 0;
  }
  const manifest::Manifest& m = *view->manifest;
  std::vector<std::string> env_names;
  env_names.reserve(m.env.size());
  for (const auto& e : m.env) env_names.push_back(e.first);  // names only, never values
  kv.emplace_back("deploy", deployText(m.deploy));
  kv.emplace_back("env vars", orDash(joined(env_names)));
  kv.emplace_back("secrets", orDash(joined(m.secrets)));
  inv.out.fields(kv);
  releaseManifest(inv, m);
  return 0;
}

}  // namespace

Command instancesGetCommand() {
  return {.name = "get",
          .summary = "Describe one instance: state, events with reasons, checks, last log lines",
          .help =
              "Shows desired vs current state, timings, the last status changes with\n"
              "their reasons, the checks and the agent's last check result, and the\n"
              "instance's last log lines.\n\nExamples:\n  vt instances get inst_01j...\n"
              "  vt instances get inst_01j... --events 50 --lines 0 --format json",
          .flags = {{.name = "events",
                     .value_name = "N",
                     .help = "how many recent status changes (1-200, default 20)"},
                    {.name = "lines",
                     .short_name = 'n',
                     .value_name = "N",
                     .help = "how many recent log lines (0-200, default 20; 0: none)"}},
          .positionals = {{.name = "INSTANCE", .help = "instance id (inst_...)"}},
          .run = instancesGet};
}

Command releasesGetCommand() {
  return {.name = "get",
          .summary = "Describe one release: image, processes, checks, deploy settings, envs",
          .help =
              "Shows the release's image digest, a summary of its manifest (processes,\n"
              "resources, checks, deploy settings; env and secret names only) and the\n"
              "envs that run it now. --format json prints the whole manifest.\n\n"
              "Examples:\n  vt releases get rel_01j...",
          .positionals = {{.name = "RELEASE", .help = "release id (rel_...)"}},
          .run = releasesGet};
}

}  // namespace plfm::vt
