#include "agent/workload_check.h"

#include <algorithm>
#include <limits>

#include "agent/instance_record.h"
#include "image/digest.h"
#include "image/image_ref.h"
#include "plfm/core/hex.h"
#include "plfm/core/id.h"
#include "plfm/guest_proto/guest_proto.h"

namespace plfm::agent {
namespace {

constexpr size_t kMaxArgBytes = 128 << 10;  // one argv or env entry

Error badField(std::string_view field, std::string_view value, std::string_view why) {
  const char* what =
      field.starts_with("NodePlan.") ? "invalid NodePlan: " : "invalid WorkloadSpec: ";
  return Error(errc::kInvalidArgument,
               what + std::string(field) + " '" + shownValue(value) + "' " + std::string(why))
      .with("field", std::string(field));
}

template <class Id>
Result<void> checkId(std::string_view field, std::string_view value, bool required) {
  if (value.empty() && !required) return ok();
  if (!Id::parse(value)) {
    return badField(field, value,
                    "is not a " + std::string(Id::kPrefix) + "_ id (" + std::string(Id::kPrefix) +
                        "_ and 26 characters of [0-9a-z] without "
                        "i, l, o, u)");
  }
  return ok();
}

// The schema's process_type: ^[a-z][a-z0-9-]{0,29}$.
bool validProcessType(std::string_view t) {
  if (t.empty() || t.size() > 30 || t[0] < 'a' || t[0] > 'z') return false;
  return std::all_of(t.begin(), t.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

bool printableAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u < 0x7f;
  });
}

Result<void> checkAddress(std::string_view field, const std::string& value) {
  // inet_pton reads a C string: a NUL would hide whatever follows it.
  if (!printableAscii(value) || !guest_proto::parseIpv6(value)) {
    return badField(field, value, "is not an IPv6 address");
  }
  return ok();
}

// argv and env entries become C strings in the guest.
Result<void> checkStrings(std::string_view field, const std::vector<std::string>& values) {
  for (size_t i = 0; i < values.size(); ++i) {
    const std::string& v = values[i];
    if (v.find('\0') != std::string::npos || v.size() > kMaxArgBytes) {
      return badField(std::string(field) + "[" + std::to_string(i) + "]", v,
                      "contains a NUL byte or is longer than 128 KiB");
    }
  }
  return ok();
}

Result<void> checkEnv(const std::map<std::string, std::string>& env) {
  for (const auto& [k, v] : env) {
    if (k.empty() || k.find_first_of(std::string_view("=\0", 2)) != std::string::npos ||
        k.size() > 256) {
      return badField("env key", k, "must be 1 to 256 bytes without '=' or NUL");
    }
    if (v.find('\0') != std::string::npos || v.size() > kMaxArgBytes) {
      return badField("env." + shownValue(k), v, "contains a NUL byte or is longer than 128 KiB");
    }
  }
  return ok();
}

// The host runs http and tcp checks against the guest: the port and the
// HTTP path (a request line) come from the spec.
Result<void> checkChecks(const nlohmann::json& checks) {
  if (!checks.is_array()) return badField("checks", checks.dump(), "is not an array");
  for (const auto& c : checks) {
    if (!c.is_object()) return badField("checks[]", c.dump(), "is not an object");
    const std::string type = c.value("type", "");
    if (type != "http" && type != "tcp" && type != "exec") {
      return badField("checks[].type", type, "is not http, tcp or exec");
    }
    if (const auto t = c.find("failure_threshold");
        t != c.end() &&
        (!t->is_number_integer() || t->get<int64_t>() < 1 || t->get<int64_t>() > 100)) {
      return badField("checks[].failure_threshold", t->dump(), "is not 1 to 100");
    }
    if (type == "exec") {
      // The command runs in the guest through an exec session: the same
      // limits as EXEC_OPEN's argv (host-channel.md §Exec).
      const auto cmd = c.find("command");
      if (cmd == c.end() || !cmd->is_array() || cmd->empty() || cmd->size() > 256) {
        return badField("checks[].command", cmd == c.end() ? "" : cmd->dump().substr(0, 80),
                        "is not 1 to 256 strings");
      }
      for (const auto& a : *cmd) {
        if (!a.is_string() || a.get_ref<const std::string&>().size() > 4096 ||
            (&a == &cmd->front() && a.get_ref<const std::string&>().empty())) {
          return badField("checks[].command[]", a.dump().substr(0, 80),
                          "is not a string of at most 4096 bytes (the first non-empty)");
        }
      }
      continue;
    }
    const auto port = c.find("port");
    if (port != c.end() &&
        (!port->is_number_integer() || port->get<int64_t>() < 0 || port->get<int64_t>() > 65535)) {
      return badField("checks[].port", port->dump(), "is not 0 to 65535");
    }
    if (type == "http") {
      const std::string path = c.value("path", "/");
      if (path.size() > 2048 || !printableAscii(path) || path.find(' ') != std::string::npos ||
          (!path.empty() && path[0] != '/')) {
        return badField("checks[].path", path,
                        "must start with '/' and hold printable ASCII without spaces");
      }
    }
  }
  return ok();
}

// The ID grammar the agent enforces on names (volume-mounts.md §Model).
bool validVolumeName(std::string_view n) {
  return !n.empty() && n.size() <= 63 && std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

Result<std::string> volumeString(const nlohmann::json& v, const std::string& field) {
  auto it = v.find(field.substr(field.rfind('.') + 1));
  if (it == v.end() || !it->is_string()) {
    return badField(field, it == v.end() ? "" : it->dump().substr(0, 80), "is not a string");
  }
  return it->get<std::string>();
}

Result<uint64_t> volumeSize(const nlohmann::json& v, const std::string& field) {
  auto it = v.find("size_bytes");
  if (it == v.end() || !it->is_number_integer() || it->get<int64_t>() < 0 ||
      it->get<uint64_t>() < kMinVolumeBytes || it->get<uint64_t>() > kMaxVolumeBytes) {
    return badField(field, it == v.end() ? "" : it->dump().substr(0, 80),
                    "is not an integer of 16 MiB to 16 TiB");
  }
  return it->get<uint64_t>();
}

}  // namespace

Result<std::vector<WorkloadVolume>> parseWorkloadVolumes(const nlohmann::json& list) {
  if (!list.is_array() || list.size() > kMaxWorkloadVolumes) {
    return badField("volumes", list.dump().substr(0, 80), "is not an array of at most 16");
  }
  std::vector<WorkloadVolume> out;
  out.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string at = "volumes[" + std::to_string(i) + "]";
    const nlohmann::json& v = list[i];
    if (!v.is_object()) return badField(at, v.dump().substr(0, 80), "is not an object");
    WorkloadVolume w;
    PLFM_ASSIGN_OR_RETURN(w.volume_id, volumeString(v, at + ".volume_id"));
    PLFM_TRY(checkId<VolumeId>(at + ".volume_id", w.volume_id, true));
    PLFM_ASSIGN_OR_RETURN(w.name, volumeString(v, at + ".name"));
    if (!validVolumeName(w.name)) return badField(at + ".name", w.name, "is not [a-z0-9-]{1,63}");
    PLFM_ASSIGN_OR_RETURN(w.mount, volumeString(v, at + ".mount"));
    if (std::string why = guest_proto::volumeMountProblem(w.mount); !why.empty()) {
      return badField(at + ".mount", w.mount, why);
    }
    PLFM_ASSIGN_OR_RETURN(w.size_bytes, volumeSize(v, at + ".size_bytes"));
    for (const auto& prior : out) {
      if (prior.volume_id == w.volume_id) {
        return badField(at + ".volume_id", w.volume_id, "appears twice");
      }
      if (prior.mount == w.mount) return badField(at + ".mount", w.mount, "appears twice");
    }
    out.push_back(std::move(w));
  }
  return out;
}

Result<NodeVolume> parseNodeVolume(const nlohmann::json& entry) {
  const std::string at = "NodePlan.volumes[]";
  if (!entry.is_object()) return badField(at, entry.dump().substr(0, 80), "is not an object");
  NodeVolume v;
  PLFM_ASSIGN_OR_RETURN(v.volume_id, volumeString(entry, at + ".volume_id"));
  PLFM_TRY(checkId<VolumeId>(at + ".volume_id", v.volume_id, true));
  PLFM_ASSIGN_OR_RETURN(v.size_bytes, volumeSize(entry, at + ".size_bytes"));
  PLFM_ASSIGN_OR_RETURN(std::string state, volumeString(entry, at + ".state"));
  if (state != "ready" && state != "deleting" && state != "restoring") {
    return badField(at + ".state", state, "is not ready, deleting or restoring");
  }
  v.deleting = state == "deleting";
  v.restoring = state == "restoring";
  if (auto it = entry.find("backup_every_seconds"); it != entry.end() && !it->is_null()) {
    const bool fits =
        it->is_number_integer() &&
        (it->get<int64_t>() == 0 || (it->get<int64_t>() >= 60 && it->get<int64_t>() <= 86'400));
    if (!fits) {
      return badField(at + ".backup_every_seconds", it->dump().substr(0, 80),
                      "is not 0 or 60 to 86400");
    }
    v.backup_every_seconds = it->get<int64_t>();
  }
  if (auto it = entry.find("backup_keep"); it != entry.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > 1000) {
      return badField(at + ".backup_keep", it->dump().substr(0, 80), "is not 1 to 1000");
    }
    v.backup_keep = it->get<int>();
  }
  return v;
}

std::string_view volumeOpKindName(VolumeOp::Kind kind) {
  switch (kind) {
    case VolumeOp::Kind::kSnapshot:
      return "snapshot";
    case VolumeOp::Kind::kRestore:
      return "restore";
    case VolumeOp::Kind::kVerify:
      return "verify";
  }
  return "?";
}

namespace {

Result<bool> opBool(const nlohmann::json& entry, const std::string& field, bool fallback) {
  auto it = entry.find(field.substr(field.rfind('.') + 1));
  if (it == entry.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return badField(field, it->dump().substr(0, 80), "is not a boolean");
  return it->get<bool>();
}

Result<std::string> opHex(const nlohmann::json& entry, const std::string& field) {
  PLFM_ASSIGN_OR_RETURN(std::string s, volumeString(entry, field));
  if (!isLowerHex64(s)) return badField(field, s, "is not 64 lowercase hex characters");
  return s;
}

template <class Id>
Result<std::string> opId(const nlohmann::json& entry, const std::string& field) {
  PLFM_ASSIGN_OR_RETURN(std::string s, volumeString(entry, field));
  PLFM_TRY(checkId<Id>(field, s, true));
  return s;
}

}  // namespace

Result<VolumeOp> parseVolumeOp(const nlohmann::json& entry) {
  const std::string at = "NodePlan.volume_ops[]";
  if (!entry.is_object()) return badField(at, entry.dump().substr(0, 80), "is not an object");
  VolumeOp op;
  PLFM_ASSIGN_OR_RETURN(std::string kind, volumeString(entry, at + ".kind"));
  PLFM_ASSIGN_OR_RETURN(op.volume_id, opId<VolumeId>(entry, at + ".volume_id"));
  if (kind == "snapshot") {
    op.kind = VolumeOp::Kind::kSnapshot;
    PLFM_ASSIGN_OR_RETURN(op.op_id, opId<SnapshotId>(entry, at + ".op_id"));
    op.snapshot_id = op.op_id;
    op.source_volume_id = op.volume_id;
    PLFM_ASSIGN_OR_RETURN(op.freeze, opBool(entry, at + ".freeze", true));
    return op;
  }
  if (kind != "restore" && kind != "verify") {
    return badField(at + ".kind", kind, "is not snapshot, restore or verify");
  }
  PLFM_ASSIGN_OR_RETURN(op.op_id, opId<VolumeOpId>(entry, at + ".op_id"));
  PLFM_ASSIGN_OR_RETURN(op.snapshot_id, opId<SnapshotId>(entry, at + ".snapshot_id"));
  PLFM_ASSIGN_OR_RETURN(op.sha256, opHex(entry, at + ".sha256"));
  if (kind == "verify") {
    op.kind = VolumeOp::Kind::kVerify;
    op.source_volume_id = op.volume_id;
    op.from_backup = true;
    PLFM_ASSIGN_OR_RETURN(op.backup_id, opHex(entry, at + ".backup_id"));
    return op;
  }
  op.kind = VolumeOp::Kind::kRestore;
  PLFM_ASSIGN_OR_RETURN(op.source_volume_id, opId<VolumeId>(entry, at + ".source_volume_id"));
  PLFM_ASSIGN_OR_RETURN(std::string source, volumeString(entry, at + ".source"));
  if (source != "local" && source != "backup") {
    return badField(at + ".source", source, "is not local or backup");
  }
  op.from_backup = source == "backup";
  if (op.from_backup) {
    PLFM_ASSIGN_OR_RETURN(op.backup_id, opHex(entry, at + ".backup_id"));
  } else if (auto it = entry.find("backup_id"); it != entry.end() && !it->is_null()) {
    PLFM_ASSIGN_OR_RETURN(op.backup_id, opHex(entry, at + ".backup_id"));
  }
  PLFM_ASSIGN_OR_RETURN(op.size_bytes, volumeSize(entry, at + ".size_bytes"));
  PLFM_ASSIGN_OR_RETURN(op.in_place, opBool(entry, at + ".in_place", false));
  if (op.in_place && op.source_volume_id != op.volume_id) {
    return badField(at + ".source_volume_id", op.source_volume_id,
                    "differs from volume_id in an in-place restore");
  }
  return op;
}

std::optional<VolumeOp> refusedVolumeOp(const nlohmann::json& entry, const std::string& reason) {
  if (!entry.is_object()) return std::nullopt;
  auto kind = volumeString(entry, "kind");
  auto volume = opId<VolumeId>(entry, "volume_id");
  if (!kind || !volume) return std::nullopt;
  VolumeOp op;
  op.volume_id = *volume;
  op.source_volume_id = *volume;
  op.refusal = reason;
  if (*kind == "snapshot") {
    auto id = opId<SnapshotId>(entry, "op_id");
    if (!id) return std::nullopt;
    op.kind = VolumeOp::Kind::kSnapshot;
    op.op_id = *id;
    op.snapshot_id = *id;
    return op;
  }
  if (*kind != "restore" && *kind != "verify") return std::nullopt;
  auto id = opId<VolumeOpId>(entry, "op_id");
  auto snapshot = opId<SnapshotId>(entry, "snapshot_id");
  if (!id || !snapshot) return std::nullopt;
  op.kind = *kind == "restore" ? VolumeOp::Kind::kRestore : VolumeOp::Kind::kVerify;
  op.op_id = *id;
  op.snapshot_id = *snapshot;
  return op;
}

std::string shownValue(std::string_view value, size_t max) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (char c : value.substr(0, max)) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f && c != '\\' && c != '\'') {
      out += c;
    } else {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  if (value.size() > max) out += "... (" + std::to_string(value.size()) + " bytes)";
  return out;
}

Result<void> checkWorkload(const Workload& w) {
  PLFM_TRY(checkId<InstanceId>("instance_id", w.instance_id, true));
  if (w.generation < 1) return badField("generation", std::to_string(w.generation), "is below 1");
  PLFM_TRY(checkId<OrgId>("org_id", w.org_id, false));
  PLFM_TRY(checkId<AppId>("app_id", w.app_id, false));
  PLFM_TRY(checkId<EnvId>("env_id", w.env_id, false));
  PLFM_TRY(checkId<ReleaseId>("release_id", w.release_id, false));
  if (!w.process_type.empty() && !validProcessType(w.process_type)) {
    return badField("process_type", w.process_type, "does not match [a-z][a-z0-9-]{0,29}");
  }
  if (!image::Digest::parse(w.image_digest)) {
    return badField("image.digest", w.image_digest, "is not sha256: and 64 lowercase hex digits");
  }
  if (w.image_ref.empty() || !printableAscii(w.image_ref) || !image::parseImageRef(w.image_ref)) {
    return badField("image.ref", w.image_ref, "is not an image reference");
  }
  if (w.secrets_version)
    PLFM_TRY(checkId<SecretVersionId>("secrets.version", *w.secrets_version, true));
  if (w.vcpus < 1 || w.vcpus > 255) {
    return badField("resources.vcpus", std::to_string(w.vcpus), "is not 1 to 255");
  }
  if (w.memory_mb < 1) {
    return badField("resources.memory_mb", std::to_string(w.memory_mb), "is below 1");
  }
  if (!w.address.empty()) {
    PLFM_TRY(checkAddress("network.address", w.address));
    PLFM_TRY(checkAddress("network.gateway", w.gateway));
    if (w.mtu < 1280 || w.mtu > 65535) {
      return badField("network.mtu", std::to_string(w.mtu), "is not 1280 to 65535");
    }
  }
  PLFM_TRY(checkStrings("command", w.command));
  PLFM_TRY(checkStrings("args", w.args));
  PLFM_TRY(checkEnv(w.env));
  PLFM_TRY(checkChecks(w.checks));
  if (const auto dep = w.raw.find("deploy_id"); dep != w.raw.end() && !dep->is_null()) {
    if (!dep->is_string()) return badField("deploy_id", dep->dump(), "is not a string");
    PLFM_TRY(checkId<DeployId>("deploy_id", dep->get<std::string>(), true));
  }
  return ok();
}

std::optional<RefusedInstance> refusedInstance(const nlohmann::json& spec) {
  if (!spec.is_object()) return std::nullopt;
  const auto id = spec.find("instance_id");
  const auto gen = spec.find("generation");
  if (id == spec.end() || !id->is_string() || gen == spec.end() || !gen->is_number_integer()) {
    return std::nullopt;
  }
  const auto g = gen->get<int64_t>();
  if (g < 1 || g > std::numeric_limits<int>::max()) return std::nullopt;
  if (!InstanceId::parse(id->get<std::string>())) return std::nullopt;
  return RefusedInstance{id->get<std::string>(), static_cast<int>(g)};
}

std::optional<CheckSpec> firstCheck(const nlohmann::json& checks) {
  if (!checks.is_array() || checks.empty() || !checks[0].is_object()) return std::nullopt;
  const nlohmann::json& c = checks[0];
  auto integer = [&](const char* key, int64_t fallback) {
    auto it = c.find(key);
    return it != c.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
  };
  auto text = [&](const char* key, const std::string& fallback) {
    auto it = c.find(key);
    return it != c.end() && it->is_string() ? it->get<std::string>() : fallback;
  };
  CheckSpec spec;
  spec.type = text("type", "");
  spec.port = static_cast<int>(integer("port", 0));
  spec.path = text("path", "/");
  if (auto cmd = c.find("command"); cmd != c.end() && cmd->is_array()) {
    for (const auto& a : *cmd) {
      if (a.is_string()) spec.command.push_back(a.get<std::string>());
    }
  }
  spec.interval = std::chrono::milliseconds(integer("interval_ms", 10'000));
  spec.timeout = std::chrono::milliseconds(integer("timeout_ms", 2'000));
  spec.grace = std::chrono::milliseconds(integer("grace_ms", 0));
  spec.failure_threshold = static_cast<int>(integer("failure_threshold", 3));
  return spec;
}

}  // namespace plfm::agent
