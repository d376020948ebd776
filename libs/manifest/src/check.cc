#include "check.h"

#include <algorithm>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "plfm/core/strings.h"
#include "rules.h"

namespace plfm::manifest {
namespace {

using Rule = std::optional<std::string> (*)(std::string_view);

// "at services[0].routes[1] (line 12)", to point from a duplicate to the first.
std::string where(const Sink& sink, const std::string& path) {
  const int line = sink.lineOf(path);
  return line > 0 ? path + " (line " + std::to_string(line) + ")" : path;
}

std::string oneOf(std::initializer_list<std::string_view> options) {
  std::string out;
  size_t i = 0;
  for (auto o : options) {
    if (i > 0) out += (i + 1 == options.size()) ? " or " : ", ";
    out += "\"" + std::string(o) + "\"";
    ++i;
  }
  return out;
}

void checkString(Sink& sink, const std::string& path, const std::string& value, Rule rule) {
  if (sink.bad(path)) return;
  auto why = rule(value);
  if (!why) return;
  if (value.empty() && !sink.present(path)) {
    sink.report(path, "required: expected " + *why);
  } else {
    sink.report(path, "expected " + *why + ", got " + rules::quote(value));
  }
}

void checkInt(Sink& sink, const std::string& path, std::int64_t value, rules::IntRange range,
              bool required) {
  if (sink.bad(path)) return;
  if (required && value == 0 && !sink.present(path)) {
    sink.report(path, "required: expected " + range.expected());
  } else if (!range.contains(value)) {
    sink.report(path, "expected " + range.expected() + ", got " + std::to_string(value));
  }
}

void checkEnum(Sink& sink, const std::string& path, const std::string& value,
               std::initializer_list<std::string_view> options) {
  if (sink.bad(path)) return;
  if (std::find(options.begin(), options.end(), value) != options.end()) return;
  if (value.empty() && !sink.present(path)) {
    sink.report(path, "required: expected " + oneOf(options));
    return;
  }
  sink.report(path, "expected " + oneOf(options) + ", got " + rules::quote(value),
              didYouMean(value, std::vector<std::string_view>(options)));
}

void checkArgv(Sink& sink, const std::string& path, const std::vector<std::string>& argv,
               bool isCommand) {
  if (sink.bad(path)) return;
  if (argv.size() > rules::kMaxArgv) {
    sink.report(path, "expected at most " + std::to_string(rules::kMaxArgv) + " elements, got " +
                          std::to_string(argv.size()));
    return;
  }
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string p = indexPath(path, i);
    if (sink.bad(p)) continue;
    if (isCommand && i == 0 && argv[0].empty()) {
      sink.report(p, "expected the program to run, got \"\"");
    } else {
      checkString(sink, p, argv[i], rules::checkArg);
    }
  }
}

void checkDuration(Sink& sink, const std::string& path, std::int64_t ms, std::int64_t lo,
                   std::int64_t hi) {
  if (sink.bad(path) || (ms >= lo && ms <= hi)) return;
  sink.report(path, "expected a duration from " + rules::formatDuration(lo) + " to " +
                        rules::formatDuration(hi) + ", got " + rules::formatDuration(ms));
}

std::vector<std::string_view> processNames(const Manifest& m) {
  std::vector<std::string_view> names;
  names.reserve(m.processes.size());
  for (const auto& p : m.processes) names.push_back(p.name);
  return names;
}

std::string joinNames(const std::vector<std::string_view>& names) {
  std::string out;
  for (auto n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

// `value` must name a defined process. An empty value was either left out
// with several processes defined (the reader reported that) or is missing
// from JSON.
void checkProcessRef(Sink& sink, const Manifest& m, const std::string& path,
                     const std::string& value) {
  if (sink.bad(path) || m.processes.empty()) return;
  const auto names = processNames(m);
  if (value.empty() && !sink.present(path)) {
    sink.report(path, "required: expected the name of a process (" + joinNames(names) + ")");
    return;
  }
  if (m.findProcess(value) != nullptr) return;
  sink.report(
      path, "expected the name of a process (" + joinNames(names) + "), got " + rules::quote(value),
      didYouMean(value, names));
}

void checkProcesses(const Manifest& m, Sink& sink) {
  if (m.processes.empty()) {
    if (!sink.bad("processes")) {
      sink.report("processes", "required: expected at least one process, like [processes.web]");
    }
    return;
  }
  if (m.processes.size() > rules::kMaxProcesses) {
    sink.report("processes", "expected at most " + std::to_string(rules::kMaxProcesses) +
                                 " processes, got " + std::to_string(m.processes.size()));
  }
  std::set<std::string> seen;
  for (const auto& p : m.processes) {
    const std::string path = keyPath("processes", p.name);
    if (auto why = rules::checkName(p.name)) {
      sink.report(path, "expected a process name: " + *why + ", got " + rules::quote(p.name));
    }
    if (!seen.insert(p.name).second) {
      sink.report(path, "duplicate process " + rules::quote(p.name));
    }
    checkArgv(sink, path + ".command", p.command, true);
    checkArgv(sink, path + ".args", p.args, false);
    checkInt(sink, path + ".resources.vcpus", p.resources.vcpus, rules::kVcpus, false);
    checkInt(sink, path + ".resources.memory_mb", p.resources.memory_mb, rules::kMemoryMb, false);
  }
}

void checkServices(const Manifest& m, Sink& sink) {
  if (m.services.size() > rules::kMaxServices) {
    sink.report("services", "expected at most " + std::to_string(rules::kMaxServices) +
                                " services, got " + std::to_string(m.services.size()));
  }
  // The first route and service seen for each key, to name it in duplicates.
  std::map<std::pair<std::string, int>, std::string> routes;   // (hostname, port)
  std::map<int, std::pair<std::string, bool>> ports;           // port -> (route, is tcp)
  std::map<std::pair<std::string, int>, std::string> targets;  // (process, internal_port)
  for (size_t i = 0; i < m.services.size(); ++i) {
    const Service& s = m.services[i];
    const std::string path = indexPath("services", i);
    checkProcessRef(sink, m, path + ".process", s.process);
    checkInt(sink, path + ".internal_port", s.internal_port, rules::kPort, true);
    checkEnum(sink, path + ".protocol", s.protocol, {"tls-passthrough", "tcp"});
    if (!s.process.empty() && s.internal_port != 0) {
      auto [it, inserted] = targets.emplace(std::pair(s.process, s.internal_port), path);
      if (!inserted) {
        sink.report(path + ".internal_port",
                    "duplicate service: " + where(sink, it->second) + " already targets port " +
                        std::to_string(s.internal_port) + " of process " + rules::quote(s.process) +
                        "; add the routes there");
      }
    }
    if (s.routes.size() > rules::kMaxRoutesPerService) {
      sink.report(path + ".routes", "expected at most " +
                                        std::to_string(rules::kMaxRoutesPerService) +
                                        " routes, got " + std::to_string(s.routes.size()));
    }
    const bool tcp = s.protocol == "tcp";
    for (size_t j = 0; j < s.routes.size(); ++j) {
      const Route& r = s.routes[j];
      const std::string rpath = indexPath(path + ".routes", j);
      checkString(sink, rpath + ".hostname", r.hostname, rules::checkHostname);
      checkInt(sink, rpath + ".port", r.port, rules::kPort, false);
      checkEnum(sink, rpath + ".proxy_protocol", r.proxy_protocol, {"none", "v2"});
      if (r.hostname.empty()) continue;
      auto [it, inserted] = routes.emplace(std::pair(r.hostname, r.port), rpath);
      if (!inserted) {
        sink.report(rpath + ".hostname", "duplicate route " + r.hostname + ":" +
                                             std::to_string(r.port) + ", first defined at " +
                                             where(sink, it->second));
        continue;
      }
      auto [pit, first] = ports.emplace(r.port, std::pair(rpath, tcp));
      if (!first && (tcp || pit->second.second)) {
        sink.report(rpath + ".port",
                    "port " + std::to_string(r.port) + " is also used by " +
                        where(sink, pit->second.first) +
                        "; a \"tcp\" service needs a port of its own (plain TCP carries no "
                        "hostname to route by)");
      }
    }
  }
}

void checkVolumes(const Manifest& m, Sink& sink) {
  if (!rules::kVolumesSupported && !m.volumes.empty()) {
    sink.report("volumes",
                "volumes are not supported yet: nodes cannot attach them, so the data would not "
                "persist; remove the [[volumes]] tables to deploy");
  }
  if (m.volumes.size() > rules::kMaxVolumes) {
    sink.report("volumes", "expected at most " + std::to_string(rules::kMaxVolumes) +
                               " volumes, got " + std::to_string(m.volumes.size()));
  }
  std::map<std::string, std::string> names;                           // name -> path
  std::map<std::pair<std::string, std::string>, std::string> mounts;  // (process, mount)
  for (size_t i = 0; i < m.volumes.size(); ++i) {
    const Volume& v = m.volumes[i];
    const std::string path = indexPath("volumes", i);
    checkString(sink, path + ".name", v.name, rules::checkName);
    if (!sink.bad(path + ".name") && v.name.size() > rules::kMaxVolumeNameLen) {
      sink.report(path + ".name",
                  "expected a volume name of at most " + std::to_string(rules::kMaxVolumeNameLen) +
                      " characters (each slot's volume is named <name>-<slot>, at most 63), got " +
                      std::to_string(v.name.size()));
    }
    checkString(sink, path + ".mount", v.mount, rules::checkMount);
    checkProcessRef(sink, m, path + ".process", v.process);
    const std::string sizePath = path + ".size";
    if (!sink.bad(sizePath)) {
      const std::string range = "a size from " + rules::formatSize(rules::kMinVolumeBytes) +
                                " to " + rules::formatSize(rules::kMaxVolumeBytes);
      if (v.size_bytes == 0 && !sink.present(sizePath)) {
        sink.report(sizePath, "required: expected " + range + ", like \"10GiB\"");
      } else if (v.size_bytes < rules::kMinVolumeBytes || v.size_bytes > rules::kMaxVolumeBytes) {
        sink.report(sizePath, "expected " + range + ", got " + rules::formatSize(v.size_bytes));
      }
    }
    const std::string everyPath = path + ".backup_every";
    if (!sink.bad(everyPath) && v.backup_every_seconds != 0 &&
        (v.backup_every_seconds < rules::kMinBackupEverySeconds ||
         v.backup_every_seconds > rules::kMaxBackupEverySeconds)) {
      sink.report(everyPath, "expected \"off\" or a duration from " +
                                 rules::formatDuration(rules::kMinBackupEverySeconds * 1000) +
                                 " to " +
                                 rules::formatDuration(rules::kMaxBackupEverySeconds * 1000) +
                                 ", got " + rules::formatDuration(v.backup_every_seconds * 1000));
    }
    checkInt(sink, path + ".backup_keep", v.backup_keep, rules::kBackupKeep, false);
    if (!v.name.empty()) {
      auto [it, inserted] = names.emplace(v.name, path);
      if (!inserted) {
        sink.report(path + ".name", "duplicate volume name " + rules::quote(v.name) +
                                        ", first defined at " + where(sink, it->second));
      }
    }
    if (!v.mount.empty() && !v.process.empty()) {
      auto [it, inserted] = mounts.emplace(std::pair(v.process, v.mount), path);
      if (!inserted) {
        sink.report(path + ".mount", "process " + rules::quote(v.process) + " already mounts " +
                                         where(sink, it->second) + " at " + rules::quote(v.mount));
      }
    }
  }
}

void checkOneCheck(const Check& c, const std::string& path, Sink& sink) {
  checkEnum(sink, path + ".type", c.type, {"tcp", "http", "exec"});
  const bool exec = c.type == "exec";
  const bool http = c.type == "http";
  if (c.type == "tcp" || http) {
    checkInt(sink, path + ".port", c.port, rules::kPort, true);
    if (!sink.bad(path + ".command") && !c.command.empty()) {
      sink.report(path + ".command", "only checks of type \"exec\" take a command");
    }
  }
  if (http) {
    checkString(sink, path + ".path", c.path, rules::checkHttpPath);
  } else if (!c.path.empty() && !sink.bad(path + ".path")) {
    sink.report(path + ".path", "only checks of type \"http\" take a path");
  }
  if (exec) {
    if (c.port != 0 && !sink.bad(path + ".port")) {
      sink.report(path + ".port", "checks of type \"exec\" take no port");
    }
    if (c.command.empty() && !sink.bad(path + ".command")) {
      sink.report(path + ".command",
                  "required for type \"exec\": expected the command to run, like "
                  "[\"/bin/healthcheck\"]");
    } else {
      checkArgv(sink, path + ".command", c.command, true);
    }
  }
  checkDuration(sink, path + ".interval", c.interval_ms, rules::kMinInterval, rules::kMaxInterval);
  checkDuration(sink, path + ".timeout", c.timeout_ms, rules::kMinTimeout, rules::kMaxTimeout);
  checkDuration(sink, path + ".grace", c.grace_ms, 0, rules::kMaxGrace);
  checkInt(sink, path + ".failure_threshold", c.failure_threshold, rules::kFailureThreshold, false);
  if (!sink.bad(path + ".timeout") && !sink.bad(path + ".interval") &&
      c.timeout_ms > c.interval_ms && c.interval_ms >= rules::kMinInterval) {
    sink.report(path + ".timeout", "expected at most the interval (" +
                                       rules::formatDuration(c.interval_ms) + "), got " +
                                       rules::formatDuration(c.timeout_ms));
  }
}

void checkChecks(const Manifest& m, Sink& sink) {
  std::set<std::string> seen;
  for (const auto& c : m.checks) {
    const std::string path = keyPath("checks", c.process);
    if (!sink.bad(path) && !m.processes.empty() && m.findProcess(c.process) == nullptr) {
      const auto names = processNames(m);
      sink.report(path,
                  "expected a check named after a process (" + joinNames(names) + "), got " +
                      rules::quote(c.process),
                  didYouMean(c.process, names));
    }
    if (!seen.insert(c.process).second) {
      sink.report(path, "duplicate check for process " + rules::quote(c.process));
    }
    checkOneCheck(c, path, sink);
  }
}

void checkEnvAndSecrets(const Manifest& m, Sink& sink) {
  if (m.env.size() > rules::kMaxEnv) {
    sink.report("env", "expected at most " + std::to_string(rules::kMaxEnv) + " variables, got " +
                           std::to_string(m.env.size()));
  }
  for (const auto& [key, value] : m.env) {
    const std::string path = keyPath("env", key);
    if (auto why = rules::checkEnvKey(key)) {
      sink.report(path, "expected " + *why + ", got " + rules::quote(key));
    }
    // Values may be sensitive: describe the problem, never echo the value.
    if (auto why = rules::checkEnvValue(value); why && !sink.bad(path)) {
      sink.report(path, "expected " + *why);
    }
  }
  if (m.secrets.size() > rules::kMaxSecrets) {
    sink.report("secrets.names", "expected at most " + std::to_string(rules::kMaxSecrets) +
                                     " names, got " + std::to_string(m.secrets.size()));
  }
  std::map<std::string, std::string> seen;
  for (size_t i = 0; i < m.secrets.size(); ++i) {
    const std::string& name = m.secrets[i];
    const std::string path = indexPath("secrets.names", i);
    checkString(sink, path, name, rules::checkSecretName);
    auto [it, inserted] = seen.emplace(name, path);
    if (!inserted) {
      sink.report(path, "duplicate secret name " + rules::quote(name) + ", first listed at " +
                            where(sink, it->second));
      continue;
    }
    if (!m.secrets_export_env) continue;
    if (m.env.count(name) != 0) {
      sink.report(keyPath("env", name),
                  "also a secret name, and secrets.export_env sets secrets as env vars; remove "
                  "one of them");
    } else if (startsWith(name, rules::kReservedEnvPrefix)) {
      sink.report(path, "expected a name not starting with " +
                            std::string(rules::kReservedEnvPrefix) +
                            " when secrets.export_env is true (reserved for the platform), got " +
                            rules::quote(name));
    }
  }
}

void checkDeploy(const Manifest& m, Sink& sink) {
  const DeployPolicy& d = m.deploy;
  checkEnum(sink, "deploy.strategy", d.strategy, {"rolling", "immediate"});
  checkInt(sink, "deploy.max_surge", d.max_surge, rules::kMaxSurge, false);
  checkInt(sink, "deploy.max_unavailable", d.max_unavailable, rules::kMaxUnavailable, false);
  checkDuration(sink, "deploy.progress_deadline", d.progress_deadline_ms,
                rules::kMinProgressDeadline, rules::kMaxProgressDeadline);
  checkDuration(sink, "deploy.drain_timeout", d.drain_timeout_ms, rules::kMinDrainTimeout,
                rules::kMaxDrainTimeout);
  if (d.strategy == "rolling" && d.max_surge == 0 && d.max_unavailable == 0 &&
      !sink.bad("deploy.max_surge") && !sink.bad("deploy.max_unavailable")) {
    sink.report("deploy.max_surge",
                "with strategy \"rolling\", max_surge and max_unavailable cannot both be 0 (the "
                "deploy could never make progress)");
  }
}

}  // namespace

void checkManifest(const Manifest& m, Sink& sink) {
  checkString(sink, "app", m.app, rules::checkName);
  checkString(sink, "image", m.image, rules::checkImage);
  checkProcesses(m, sink);
  checkServices(m, sink);
  checkVolumes(m, sink);
  checkChecks(m, sink);
  checkEnvAndSecrets(m, sink);
  checkDeploy(m, sink);
}

void normalizeBeforeCheck(Manifest& m) {
  for (auto& s : m.services) {
    for (auto& r : s.routes) r.hostname = rules::toLowerAscii(r.hostname);
  }
}

void normalizeAfterCheck(Manifest& m) {
  std::stable_sort(m.processes.begin(), m.processes.end(),
                   [](const Process& a, const Process& b) { return a.name < b.name; });
  std::stable_sort(m.checks.begin(), m.checks.end(),
                   [](const Check& a, const Check& b) { return a.process < b.process; });
  std::sort(m.secrets.begin(), m.secrets.end());
}

}  // namespace plfm::manifest
