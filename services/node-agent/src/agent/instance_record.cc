#include "agent/instance_record.h"

#include <cstdio>
#include <ctime>
#include <filesystem>

#include "agent/workload_check.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"

namespace plfm::agent {
namespace fs = std::filesystem;
using nlohmann::json;

Result<int64_t> parseRfc3339Ms(const std::string& text) {
  // "2026-11-26T12:01:40.123456Z", the control plane's only form.
  std::tm tm{};
  int micros = 0;
  char z = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%6d%c", &tm.tm_year, &tm.tm_mon,
                  &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &micros, &z) != 8 ||
      z != 'Z') {
    return Error(errc::kInvalidArgument, "bad timestamp '" + text + "'");
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + micros / 1000;
}

Result<Workload> Workload::fromJson(const json& spec) {
  try {
    Workload w;
    w.raw = spec;
    w.instance_id = spec.at("instance_id").get<std::string>();
    w.generation = spec.at("generation").get<int>();
    w.desired = spec.at("desired").get<std::string>();
    w.org_id = spec.value("org_id", "");
    w.app_id = spec.value("app_id", "");
    w.env_id = spec.value("env_id", "");
    w.process_type = spec.value("process_type", "");
    w.release_id = spec.value("release_id", "");
    const auto& image = spec.at("image");
    w.image_ref = image.at("ref").get<std::string>();
    w.image_digest = image.at("digest").get<std::string>();
    w.command = spec.value("command", std::vector<std::string>{});
    w.args = spec.value("args", std::vector<std::string>{});
    w.env = spec.value("env", std::map<std::string, std::string>{});
    const auto& res = spec.at("resources");
    w.vcpus = res.at("vcpus").get<int>();
    w.memory_mb = res.at("memory_mb").get<int>();
    const auto& net = spec.at("network");
    w.address = net.value("address", "");
    w.gateway = net.value("gateway", "fe80::1");
    w.mtu = net.value("mtu", 1420);
    if (auto it = spec.find("secrets"); it != spec.end() && it->is_object()) {
      auto v = it->find("version");
      if (v != it->end() && v->is_string()) w.secrets_version = v->get<std::string>();
    }
    if (auto it = spec.find("checks"); it != spec.end()) w.checks = *it;
    if (auto it = spec.find("restart"); it != spec.end() && it->is_object()) {
      auto nb = it->find("not_before");
      if (nb != it->end() && nb->is_string()) {
        PLFM_ASSIGN_OR_RETURN(w.restart_not_before_ms, parseRfc3339Ms(nb->get<std::string>()));
      }
    }
    if (auto it = spec.find("volumes"); it != spec.end() && !it->is_null()) {
      PLFM_ASSIGN_OR_RETURN(w.volumes, parseWorkloadVolumes(*it));
    }
    if (w.desired != "run" && w.desired != "drain" && w.desired != "stop") {
      return Error(errc::kInvalidArgument,
                   "invalid WorkloadSpec: unknown desired state '" + shownValue(w.desired) + "'");
    }
    PLFM_TRY(checkWorkload(w));
    return w;
  } catch (const json::exception& e) {
    return Error(errc::kInvalidArgument, std::string("bad WorkloadSpec: ") + e.what());
  }
}

json InstanceRecord::toJson() const {
  json t = {{"image_ms", timings.image_ms},
            {"spawn_us", timings.spawn_us},
            {"start_ms", timings.start_ms},
            {"boot_ms", timings.boot_ms},
            {"hello_ms", timings.hello_ms},
            {"guest_init_ms", timings.guest_init_ms},
            {"guest_modules_ms", timings.guest_modules_ms},
            {"guest_mounts_ms", timings.guest_mounts_ms},
            {"guest_config_ms", timings.guest_config_ms},
            {"guest_ready_ms", timings.guest_ready_ms}};
  return {{"spec", workload.raw},
          {"phase", phaseName(phase)},
          {"vm", vm ? vm->toJson() : json(nullptr)},
          {"tap", tap},
          {"run_dir", run_dir},
          {"scratch", scratch},
          {"rootfs", rootfs},
          {"image_acquired", image_acquired},
          {"report_seq", report_seq},
          {"last_reported", last_reported},
          {"exit_code", exit_code ? json(*exit_code) : json(nullptr)},
          {"reason", reason},
          {"exec_revision", exec_revision},
          {"volume_revision", volume_revision},
          {"ipv4", ipv4},
          {"timings", t}};
}

Result<InstanceRecord> InstanceRecord::fromJson(const json& j) {
  try {
    InstanceRecord r;
    PLFM_ASSIGN_OR_RETURN(r.workload, Workload::fromJson(j.at("spec")));
    PLFM_ASSIGN_OR_RETURN(r.phase, parsePhase(j.at("phase").get<std::string>()));
    if (!j.at("vm").is_null()) {
      PLFM_ASSIGN_OR_RETURN(auto vm, runtime::VmHandle::fromJson(j.at("vm")));
      r.vm = std::move(vm);
    }
    r.tap = j.value("tap", "");
    r.run_dir = j.value("run_dir", "");
    r.scratch = j.value("scratch", "");
    r.rootfs = j.value("rootfs", "");
    r.image_acquired = j.value("image_acquired", false);
    r.report_seq = j.value("report_seq", int64_t{0});
    r.last_reported = j.value("last_reported", "");
    if (j.contains("exit_code") && j["exit_code"].is_number_integer()) {
      r.exit_code = j["exit_code"].get<int>();
    }
    r.reason = j.value("reason", "");
    r.exec_revision = j.value("exec_revision", uint32_t{0});
    r.volume_revision = j.value("volume_revision", uint32_t{0});
    r.ipv4 = j.value("ipv4", "");
    if (auto it = j.find("timings"); it != j.end()) {
      r.timings.image_ms = it->value("image_ms", int64_t{-1});
      r.timings.spawn_us = it->value("spawn_us", int64_t{-1});
      r.timings.start_ms = it->value("start_ms", int64_t{-1});
      r.timings.boot_ms = it->value("boot_ms", int64_t{-1});
      r.timings.hello_ms = it->value("hello_ms", int64_t{-1});
      r.timings.guest_init_ms = it->value("guest_init_ms", int64_t{-1});
      r.timings.guest_modules_ms = it->value("guest_modules_ms", int64_t{-1});
      r.timings.guest_mounts_ms = it->value("guest_mounts_ms", int64_t{-1});
      r.timings.guest_config_ms = it->value("guest_config_ms", int64_t{-1});
      r.timings.guest_ready_ms = it->value("guest_ready_ms", int64_t{-1});
    }
    return r;
  } catch (const json::exception& e) {
    return Error(errc::kInvalidArgument, std::string("bad instance record: ") + e.what());
  }
}

StateStore::StateStore(std::string dir) : dir_(std::move(dir)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
}

Result<void> StateStore::save(const InstanceRecord& rec) const {
  return writeFileAtomic(dir_ + "/" + rec.workload.instance_id + ".json", rec.toJson().dump(1),
                         0600);
}

Result<void> StateStore::remove(const std::string& instance_id) const {
  std::error_code ec;
  fs::remove(dir_ + "/" + instance_id + ".json", ec);
  if (ec) return Error(errc::kIo, "removing record of " + instance_id + ": " + ec.message());
  return ok();
}

Result<std::vector<InstanceRecord>> StateStore::loadAll() const { return readAll(true); }

Result<std::vector<InstanceRecord>> StateStore::peekAll() const { return readAll(false); }

Result<std::vector<InstanceRecord>> StateStore::readAll(bool move_aside) const {
  std::vector<InstanceRecord> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const auto& path = entry.path();
    if (path.extension() != ".json") continue;
    auto text = readFile(path.string());
    Result<InstanceRecord> rec = text ? [&]() -> Result<InstanceRecord> {
      auto j = json::parse(*text, nullptr, false);
      if (j.is_discarded()) return Error(errc::kInvalidArgument, "not JSON");
      return InstanceRecord::fromJson(j);
    }()
        : Result<InstanceRecord>(text.error());
    if (!rec && !move_aside) continue;
    if (!rec) {
      log::error("unreadable instance record moved aside",
                 {{"path", path.string()}, {"error", rec.error().toString()}});
      fs::rename(path, path.string() + ".corrupt", ec);
      continue;
    }
    out.push_back(std::move(*rec));
  }
  if (ec) return Error(errc::kIo, "listing " + dir_ + ": " + ec.message());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.workload.instance_id < b.workload.instance_id;
  });
  return out;
}

}  // namespace plfm::agent
