// The canonical JSON form (api/schemas/manifest.json): every field present,
// defaults spelled out, durations in milliseconds and sizes in bytes, so a
// reader needs no manifest knowledge beyond the schema.
#include <climits>
#include <utility>

#include "check.h"
#include "plfm/core/json.h"
#include "plfm/manifest/manifest.h"
#include "plfm/manifest/volume_rules.h"
#include "sink.h"

namespace plfm::manifest {
namespace {

using Json = nlohmann::json;

Error fieldError(const std::string& path, const std::string& what) {
  return Error(errc::kInvalidArgument, "field '" + path + "' " + what).with("field", path);
}

// `obj` is known to be an object.
Result<const Json*> member(const Json& obj, std::string_view field, const std::string& path) {
  auto it = obj.find(field);
  if (it == obj.end()) return fieldError(json::fieldPath(path, field), "is required");
  return &*it;
}

Result<int> getInt32(const Json& obj, std::string_view field, const std::string& path) {
  PLFM_ASSIGN_OR_RETURN(std::int64_t v, json::getInt(obj, field, path));
  if (v < INT_MIN || v > INT_MAX)
    return fieldError(json::fieldPath(path, field), "is out of range");
  return static_cast<int>(v);
}

Result<std::vector<std::string>> getStrings(const Json& obj, std::string_view field,
                                            const std::string& path) {
  PLFM_ASSIGN_OR_RETURN(const Json* v, member(obj, field, path));
  const std::string p = json::fieldPath(path, field);
  if (!v->is_array()) return fieldError(p, "must be an array of strings");
  std::vector<std::string> out;
  out.reserve(v->size());
  for (const Json& el : *v) {
    if (!el.is_string()) return fieldError(p, "must be an array of strings");
    out.push_back(el.get<std::string>());
  }
  return out;
}

// The elements of array `field`, each required to be an object.
Result<std::vector<const Json*>> getObjects(const Json& obj, std::string_view field,
                                            const std::string& path) {
  PLFM_ASSIGN_OR_RETURN(const Json* v, member(obj, field, path));
  const std::string p = json::fieldPath(path, field);
  if (!v->is_array()) return fieldError(p, "must be an array of objects");
  std::vector<const Json*> out;
  for (const Json& el : *v) {
    if (!el.is_object()) return fieldError(p, "must be an array of objects");
    out.push_back(&el);
  }
  return out;
}

// Reads optional `field` of `obj` into `out` with `read` when present; an
// absent field keeps the default `out` already holds (as in vt.toml).
template <class T, class Read>
Result<void> ifPresent(const Json& obj, std::string_view field, T& out, Read read) {
  if (!obj.contains(field)) return ok();
  PLFM_ASSIGN_OR_RETURN(out, read());
  return ok();
}

// Optional array `field` of objects: empty when absent.
Result<std::vector<const Json*>> optionalObjects(const Json& obj, std::string_view field,
                                                 const std::string& path) {
  if (!obj.contains(field)) return std::vector<const Json*>();
  return getObjects(obj, field, path);
}

// Optional object `field`: an empty object when absent.
Result<const Json*> optionalObject(const Json& obj, std::string_view field,
                                   const std::string& path) {
  static const Json kEmpty = Json::object();
  if (!obj.contains(field)) return &kEmpty;
  return json::getObject(obj, field, path);
}

Result<Process> processFromJson(const Json& j, const std::string& path) {
  PLFM_TRY(json::rejectUnknownFields(j, {"name", "command", "args", "resources"}, path));
  Process p;
  PLFM_ASSIGN_OR_RETURN(p.name, json::getString(j, "name", path));
  PLFM_TRY(ifPresent(j, "command", p.command, [&] { return getStrings(j, "command", path); }));
  PLFM_TRY(ifPresent(j, "args", p.args, [&] { return getStrings(j, "args", path); }));
  PLFM_ASSIGN_OR_RETURN(const Json* r, optionalObject(j, "resources", path));
  const std::string rpath = path + ".resources";
  PLFM_TRY(json::rejectUnknownFields(*r, {"vcpus", "memory_mb"}, rpath));
  PLFM_TRY(ifPresent(*r, "vcpus", p.resources.vcpus, [&] { return getInt32(*r, "vcpus", rpath); }));
  PLFM_TRY(ifPresent(*r, "memory_mb", p.resources.memory_mb,
                     [&] { return getInt32(*r, "memory_mb", rpath); }));
  return p;
}

Result<Service> serviceFromJson(const Json& j, const std::string& path) {
  PLFM_TRY(json::rejectUnknownFields(j, {"process", "internal_port", "protocol", "routes"}, path));
  Service s;
  PLFM_ASSIGN_OR_RETURN(s.process, json::getString(j, "process", path));
  PLFM_ASSIGN_OR_RETURN(s.internal_port, getInt32(j, "internal_port", path));
  PLFM_TRY(
      ifPresent(j, "protocol", s.protocol, [&] { return json::getString(j, "protocol", path); }));
  PLFM_ASSIGN_OR_RETURN(auto routes, optionalObjects(j, "routes", path));
  for (size_t i = 0; i < routes.size(); ++i) {
    const Json& rj = *routes[i];
    const std::string rpath = indexPath(path + ".routes", i);
    PLFM_TRY(json::rejectUnknownFields(rj, {"hostname", "port", "proxy_protocol"}, rpath));
    Route r;
    PLFM_ASSIGN_OR_RETURN(r.hostname, json::getString(rj, "hostname", rpath));
    PLFM_TRY(ifPresent(rj, "port", r.port, [&] { return getInt32(rj, "port", rpath); }));
    PLFM_TRY(ifPresent(rj, "proxy_protocol", r.proxy_protocol,
                       [&] { return json::getString(rj, "proxy_protocol", rpath); }));
    s.routes.push_back(std::move(r));
  }
  return s;
}

Result<Volume> volumeFromJson(const Json& j, const std::string& path) {
  PLFM_TRY(json::rejectUnknownFields(
      j, {"name", "mount", "process", "size_bytes", "backup_every_seconds", "backup_keep"}, path));
  Volume v;
  PLFM_ASSIGN_OR_RETURN(v.name, json::getString(j, "name", path));
  PLFM_ASSIGN_OR_RETURN(v.mount, json::getString(j, "mount", path));
  PLFM_ASSIGN_OR_RETURN(v.process, json::getString(j, "process", path));
  PLFM_ASSIGN_OR_RETURN(std::int64_t size, json::getInt(j, "size_bytes", path));
  if (size < 0) return fieldError(path + ".size_bytes", "must not be negative");
  v.size_bytes = static_cast<std::uint64_t>(size);
  // Absent in releases made before the backup policy existed: the defaults.
  PLFM_TRY(ifPresent(j, "backup_every_seconds", v.backup_every_seconds,
                     [&] { return json::getInt(j, "backup_every_seconds", path); }));
  PLFM_TRY(
      ifPresent(j, "backup_keep", v.backup_keep, [&] { return getInt32(j, "backup_keep", path); }));
  return v;
}

Result<Check> checkFromJson(const Json& j, const std::string& path) {
  PLFM_TRY(json::rejectUnknownFields(j,
                                     {"process", "type", "port", "path", "command", "interval_ms",
                                      "timeout_ms", "grace_ms", "failure_threshold"},
                                     path));
  Check c;
  PLFM_ASSIGN_OR_RETURN(c.process, json::getString(j, "process", path));
  PLFM_ASSIGN_OR_RETURN(c.type, json::getString(j, "type", path));
  PLFM_TRY(ifPresent(j, "port", c.port, [&] { return getInt32(j, "port", path); }));
  PLFM_TRY(ifPresent(j, "path", c.path, [&] { return json::getString(j, "path", path); }));
  PLFM_TRY(ifPresent(j, "command", c.command, [&] { return getStrings(j, "command", path); }));
  // (No structured binding: clang cannot capture one in the lambda.)
  for (const auto& duration :
       {std::pair<std::string_view, std::int64_t*>{"interval_ms", &c.interval_ms},
        {"timeout_ms", &c.timeout_ms},
        {"grace_ms", &c.grace_ms}}) {
    const std::string_view field = duration.first;
    PLFM_TRY(ifPresent(j, field, *duration.second, [&] { return json::getInt(j, field, path); }));
  }
  PLFM_TRY(ifPresent(j, "failure_threshold", c.failure_threshold,
                     [&] { return getInt32(j, "failure_threshold", path); }));
  return c;
}

// Reads the JSON form. Required as in vt.toml: app, image, processes and
// the fields that name things; every other field may be left out and then
// takes the default vt.toml gives it.
Result<Manifest> readJson(const Json& j) {
  PLFM_TRY(json::rejectUnknownFields(j, {"schema_version", "app", "image", "processes", "services",
                                         "volumes", "checks", "env", "secrets", "deploy"}));
  std::int64_t version = kSchemaVersion;
  PLFM_TRY(
      ifPresent(j, "schema_version", version, [&] { return json::getInt(j, "schema_version"); }));
  if (version != kSchemaVersion) {
    return fieldError("schema_version", "is " + std::to_string(version) +
                                            "; this reader understands " +
                                            std::to_string(kSchemaVersion));
  }
  Manifest m;
  PLFM_ASSIGN_OR_RETURN(m.app, json::getString(j, "app"));
  PLFM_ASSIGN_OR_RETURN(m.image, json::getString(j, "image"));
  PLFM_ASSIGN_OR_RETURN(auto procs, getObjects(j, "processes", ""));
  for (size_t i = 0; i < procs.size(); ++i) {
    PLFM_ASSIGN_OR_RETURN(auto p, processFromJson(*procs[i], indexPath("processes", i)));
    m.processes.push_back(std::move(p));
  }
  PLFM_ASSIGN_OR_RETURN(auto services, optionalObjects(j, "services", ""));
  for (size_t i = 0; i < services.size(); ++i) {
    PLFM_ASSIGN_OR_RETURN(auto s, serviceFromJson(*services[i], indexPath("services", i)));
    m.services.push_back(std::move(s));
  }
  PLFM_ASSIGN_OR_RETURN(auto volumes, optionalObjects(j, "volumes", ""));
  for (size_t i = 0; i < volumes.size(); ++i) {
    PLFM_ASSIGN_OR_RETURN(auto v, volumeFromJson(*volumes[i], indexPath("volumes", i)));
    m.volumes.push_back(std::move(v));
  }
  PLFM_ASSIGN_OR_RETURN(auto checks, optionalObjects(j, "checks", ""));
  for (size_t i = 0; i < checks.size(); ++i) {
    PLFM_ASSIGN_OR_RETURN(auto c, checkFromJson(*checks[i], indexPath("checks", i)));
    m.checks.push_back(std::move(c));
  }
  PLFM_ASSIGN_OR_RETURN(const Json* env, optionalObject(j, "env", ""));
  for (const auto& [key, value] : env->items()) {
    if (!value.is_string()) return fieldError(json::fieldPath("env", key), "must be a string");
    m.env[key] = value.get<std::string>();
  }
  PLFM_ASSIGN_OR_RETURN(const Json* secrets, optionalObject(j, "secrets", ""));
  PLFM_TRY(json::rejectUnknownFields(*secrets, {"names", "export_env"}, "secrets"));
  PLFM_TRY(ifPresent(*secrets, "names", m.secrets,
                     [&] { return getStrings(*secrets, "names", "secrets"); }));
  PLFM_TRY(ifPresent(*secrets, "export_env", m.secrets_export_env,
                     [&] { return json::getBool(*secrets, "export_env", "secrets"); }));
  PLFM_ASSIGN_OR_RETURN(const Json* deploy, optionalObject(j, "deploy", ""));
  PLFM_TRY(json::rejectUnknownFields(*deploy,
                                     {"strategy", "max_surge", "max_unavailable",
                                      "progress_deadline_ms", "drain_timeout_ms", "auto_rollback"},
                                     "deploy"));
  PLFM_TRY(ifPresent(*deploy, "strategy", m.deploy.strategy,
                     [&] { return json::getString(*deploy, "strategy", "deploy"); }));
  PLFM_TRY(ifPresent(*deploy, "max_surge", m.deploy.max_surge,
                     [&] { return getInt32(*deploy, "max_surge", "deploy"); }));
  PLFM_TRY(ifPresent(*deploy, "max_unavailable", m.deploy.max_unavailable,
                     [&] { return getInt32(*deploy, "max_unavailable", "deploy"); }));
  PLFM_TRY(ifPresent(*deploy, "progress_deadline_ms", m.deploy.progress_deadline_ms,
                     [&] { return json::getInt(*deploy, "progress_deadline_ms", "deploy"); }));
  PLFM_TRY(ifPresent(*deploy, "drain_timeout_ms", m.deploy.drain_timeout_ms,
                     [&] { return json::getInt(*deploy, "drain_timeout_ms", "deploy"); }));
  PLFM_TRY(ifPresent(*deploy, "auto_rollback", m.deploy.auto_rollback,
                     [&] { return json::getBool(*deploy, "auto_rollback", "deploy"); }));
  return m;
}

}  // namespace

Json Check::toJson() const {
  Json j = {{"process", process},
            {"type", type},
            {"port", port},
            {"path", path},
            {"command", command},
            {"interval_ms", interval_ms},
            {"timeout_ms", timeout_ms},
            {"grace_ms", grace_ms}};
  // Only when set, so releases stored before it existed keep their form.
  if (failure_threshold != Check{}.failure_threshold) j["failure_threshold"] = failure_threshold;
  return j;
}

namespace {

// The progress deadline, the drain timeout and auto_rollback are written
// only when they are not the default, so releases stored before they
// existed keep their canonical form.
Json deployJson(const DeployPolicy& d) {
  Json j = {
      {"strategy", d.strategy}, {"max_surge", d.max_surge}, {"max_unavailable", d.max_unavailable}};
  if (d.progress_deadline_ms != DeployPolicy{}.progress_deadline_ms) {
    j["progress_deadline_ms"] = d.progress_deadline_ms;
  }
  if (d.drain_timeout_ms != DeployPolicy{}.drain_timeout_ms) {
    j["drain_timeout_ms"] = d.drain_timeout_ms;
  }
  if (d.auto_rollback != DeployPolicy{}.auto_rollback) j["auto_rollback"] = d.auto_rollback;
  return j;
}

}  // namespace

Json Manifest::toJson() const {
  Json procs = Json::array();
  for (const auto& p : processes) {
    procs.push_back(
        {{"name", p.name},
         {"command", p.command},
         {"args", p.args},
         {"resources", {{"vcpus", p.resources.vcpus}, {"memory_mb", p.resources.memory_mb}}}});
  }
  Json svcs = Json::array();
  for (const auto& s : services) {
    Json routes = Json::array();
    for (const auto& r : s.routes) {
      routes.push_back(
          {{"hostname", r.hostname}, {"port", r.port}, {"proxy_protocol", r.proxy_protocol}});
    }
    svcs.push_back({{"process", s.process},
                    {"internal_port", s.internal_port},
                    {"protocol", s.protocol},
                    {"routes", std::move(routes)}});
  }
  Json vols = Json::array();
  for (const auto& v : volumes) {
    Json vj = {
        {"name", v.name}, {"mount", v.mount}, {"process", v.process}, {"size_bytes", v.size_bytes}};
    // Only when not the default, so that releases stored before the backup
    // policy existed keep their canonical form.
    if (v.backup_every_seconds != kDefaultBackupEverySeconds) {
      vj["backup_every_seconds"] = v.backup_every_seconds;
    }
    if (v.backup_keep != kDefaultBackupKeep) vj["backup_keep"] = v.backup_keep;
    vols.push_back(std::move(vj));
  }
  Json chks = Json::array();
  for (const auto& c : checks) chks.push_back(c.toJson());
  Json envj = Json::object();
  for (const auto& [k, v] : env) envj[k] = v;
  return Json{
      {"schema_version", kSchemaVersion},
      {"app", app},
      {"image", image},
      {"processes", std::move(procs)},
      {"services", std::move(svcs)},
      {"volumes", std::move(vols)},
      {"checks", std::move(chks)},
      {"env", std::move(envj)},
      {"secrets", {{"names", secrets}, {"export_env", secrets_export_env}}},
      {"deploy", deployJson(deploy)},
  };
}

Result<Manifest> fromJson(const Json& j) {
  if (!j.is_object()) return fieldError("manifest", "must be a JSON object");
  PLFM_ASSIGN_OR_RETURN(Manifest m, readJson(j));
  Sink sink{""};
  sink.assumeAllPresent();
  checkManifest(m, sink);
  std::vector<Diagnostic> problems = sink.take();
  if (!problems.empty()) {
    const Diagnostic& first = problems.front();
    return Error(errc::kInvalidArgument, "invalid manifest: " + first.format())
        .with("field", first.path)
        .with("problems", std::to_string(problems.size()));
  }
  normalizeAfterCheck(m);
  return m;
}

}  // namespace plfm::manifest
