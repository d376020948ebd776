#include "netdev/mesh_rotation.h"

#include <sodium.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "netdev/mesh.h"
#include "plfm/core/process.h"

namespace plfm::netdev {
namespace {
using nlohmann::json;

Error rotationFieldError(const std::string& field, std::string_view why) {
  return Error(errc::kInvalidArgument, "rotation." + field + ": " + std::string(why))
      .with("field", field);
}

Result<std::string> stringField(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return rotationFieldError(key, "not a string");
  return it->get<std::string>();
}

Result<int64_t> intField(const json& j, const char* key, int64_t lo, int64_t hi) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return rotationFieldError(key, "not an integer");
  const auto v = it->get<int64_t>();
  if (v < lo || v > hi) return rotationFieldError(key, "out of range");
  return v;
}

}  // namespace

std::string defaultMeshInterface2(std::string_view first) {
  std::string name(first);
  if (!name.empty() && name.back() == '0') {
    name.back() = '1';
  } else {
    name += '1';
  }
  return validMeshInterfaceName(name) ? name : std::string();
}

json MeshRotation::toJson() const {
  return {{"interface", interface},
          {"listen_port", listen_port},
          {"public_key", public_key.base64()},
          {"phase", phase},
          {"retire_interface", retire_interface.empty() ? json(nullptr) : json(retire_interface)},
          {"retire_after", retire_after == 0 ? json(nullptr) : json(retire_after)},
          {"since", since}};
}

Result<MeshRotation> parseMeshRotation(const json& j) {
  if (!j.is_object()) return rotationFieldError("", "not an object");
  MeshRotation r;
  PLFM_ASSIGN_OR_RETURN(r.interface, stringField(j, "interface"));
  if (!validMeshInterfaceName(r.interface))
    return rotationFieldError("interface", "not an interface name");
  PLFM_ASSIGN_OR_RETURN(int64_t port, intField(j, "listen_port", 1, 65535));
  r.listen_port = static_cast<uint16_t>(port);
  PLFM_ASSIGN_OR_RETURN(std::string key, stringField(j, "public_key"));
  auto k = WgKey::parse(key);
  if (!k) return rotationFieldError("public_key", k.error().message());
  r.public_key = *k;
  PLFM_ASSIGN_OR_RETURN(r.phase, stringField(j, "phase"));
  if (r.phase != "staged" && r.phase != "published") {
    return rotationFieldError("phase", R"(must be "staged" or "published")");
  }
  if (auto it = j.find("retire_interface"); it != j.end() && !it->is_null()) {
    PLFM_ASSIGN_OR_RETURN(r.retire_interface, stringField(j, "retire_interface"));
    if (!validMeshInterfaceName(r.retire_interface) || r.retire_interface == r.interface) {
      return rotationFieldError("retire_interface", "not the other interface's name");
    }
    PLFM_ASSIGN_OR_RETURN(r.retire_after, intField(j, "retire_after", 1, INT64_MAX));
  }
  if (j.contains("since")) {
    PLFM_ASSIGN_OR_RETURN(r.since, intField(j, "since", 0, INT64_MAX));
  }
  return r;
}

std::string meshRotationPath(const std::string& state_dir) {
  return state_dir + "/mesh/rotation.json";
}
std::string meshNextKeyPath(const std::string& state_dir) { return state_dir + "/mesh/next.key"; }
std::string meshKeyPath(const std::string& state_dir) { return state_dir + "/wireguard.key"; }

Result<std::optional<MeshRotation>> loadMeshRotation(const std::string& state_dir) {
  const std::string path = meshRotationPath(state_dir);
  if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) return std::optional<MeshRotation>();
  PLFM_ASSIGN_OR_RETURN(std::string text, readFile(path));
  auto r = parseMeshRotation(json::parse(text, nullptr, false));
  if (!r) return std::move(r).error().with("path", path);
  return std::optional(*r);
}

Result<void> saveMeshRotation(const std::string& state_dir, const MeshRotation& r) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir + "/mesh", ec);
  return writeFileAtomic(meshRotationPath(state_dir), r.toJson().dump(1) + "\n", 0600);
}

Result<void> removeMeshRotation(const std::string& state_dir) {
  if (::unlink(meshRotationPath(state_dir).c_str()) != 0 && errno != ENOENT) {
    return errnoError("unlink " + meshRotationPath(state_dir), errno);
  }
  return ok();
}

Result<void> writePrivateKeyFile(const std::string& path, const WgKey& key) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  std::string text = key.base64() + "\n";
  auto r = writeFileAtomic(path, text, 0600);
  sodium_memzero(text.data(), text.size());
  return r;
}

}  // namespace plfm::netdev
