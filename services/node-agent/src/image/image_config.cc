#include "image/image_config.h"

#include <algorithm>

#include "image/errors.h"
#include "image/json_util.h"
#include "plfm/core/json.h"

namespace plfm::image {

namespace {

using json::Json;

constexpr size_t kMaxConfigBytes = 8 << 20;

Error badConfig(std::string_view what) {
  return Error(errc::kBadConfig, "malformed image config: " + std::string(what));
}

Result<std::vector<std::string>> stringList(const Json& obj, std::string_view field,
                                            std::string_view path) {
  std::vector<std::string> out;
  const json::Json* it = findField(obj, field);
  if (it == nullptr || it->is_null()) return out;
  if (!it->is_array()) return badConfig(json::fieldPath(path, field) + " must be an array");
  for (const auto& v : *it) {
    if (!v.is_string()) {
      return badConfig(json::fieldPath(path, field) + " must hold only strings");
    }
    out.push_back(v.get<std::string>());
  }
  return out;
}

Result<std::string> configString(const Json& obj, std::string_view field, std::string_view path) {
  return optStringField(obj, field, path, badConfig);
}

}  // namespace

Result<ImageConfig> parseImageConfig(std::string_view bytes) {
  if (bytes.size() > kMaxConfigBytes) {
    return badConfig("config is " + std::to_string(bytes.size()) + " bytes; the limit is " +
                     std::to_string(kMaxConfigBytes));
  }
  auto parsed = json::parse(bytes);
  if (!parsed) return badConfig(parsed.error().message());
  const Json& j = *parsed;
  if (!j.is_object()) return badConfig("the config must be a JSON object");
  ImageConfig c;
  PLFM_ASSIGN_OR_RETURN(c.os, configString(j, "os", ""));
  PLFM_ASSIGN_OR_RETURN(c.architecture, configString(j, "architecture", ""));
  if (const json::Json* cfg = findField(j, "config"); cfg != nullptr && !cfg->is_null()) {
    if (!cfg->is_object()) return badConfig("config must be an object");
    PLFM_ASSIGN_OR_RETURN(c.entrypoint, stringList(*cfg, "Entrypoint", "config"));
    PLFM_ASSIGN_OR_RETURN(c.cmd, stringList(*cfg, "Cmd", "config"));
    PLFM_ASSIGN_OR_RETURN(c.env, stringList(*cfg, "Env", "config"));
    PLFM_ASSIGN_OR_RETURN(c.workdir, configString(*cfg, "WorkingDir", "config"));
    PLFM_ASSIGN_OR_RETURN(c.user, configString(*cfg, "User", "config"));
    if (const json::Json* ports = findField(*cfg, "ExposedPorts");
        ports != nullptr && !ports->is_null()) {
      if (!ports->is_object()) return badConfig("config.ExposedPorts must be an object");
      for (auto it = ports->begin(); it != ports->end(); ++it) c.exposed_ports.push_back(it.key());
      std::sort(c.exposed_ports.begin(), c.exposed_ports.end());
    }
  }
  if (const json::Json* rootfs = findField(j, "rootfs"); rootfs != nullptr && !rootfs->is_null()) {
    if (!rootfs->is_object()) return badConfig("rootfs must be an object");
    PLFM_ASSIGN_OR_RETURN(auto ids, stringList(*rootfs, "diff_ids", "rootfs"));
    for (size_t i = 0; i < ids.size(); ++i) {
      auto d = Digest::parse(ids[i]);
      if (!d)
        return badConfig("rootfs.diff_ids[" + std::to_string(i) + "]: " + d.error().message());
      c.diff_ids.push_back(*d);
    }
  }
  return c;
}

nlohmann::json ImageConfig::toJson() const {
  Json j = Json::object();
  j["entrypoint"] = entrypoint;
  j["cmd"] = cmd;
  j["env"] = env;
  j["workdir"] = workdir.empty() ? "/" : workdir;
  j["user"] = user.empty() ? "root" : user;
  j["exposed_ports"] = exposed_ports;
  return j;
}

}  // namespace plfm::image
