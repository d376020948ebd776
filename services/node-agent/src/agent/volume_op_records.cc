#include "agent/volume_op_records.h"

#include <filesystem>

#include "agent/volume_snapshot.h"
#include "plfm/core/id.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"

namespace plfm::agent {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

template <class OutgoingReport>
json outboxJson(const std::vector<OutgoingReport>& outbox) {
  json out = json::array();
  for (const auto& o : outbox) out.push_back({{"report", o.report}, {"delivered", o.delivered}});
  return out;
}

// Every STATE/<dir>/*.json record that parses, by `key`; the others are
// logged and left alone.
template <class Rec, class Key>
void loadRecords(const std::string& dir, std::map<std::string, Rec>& into, Key key) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() != ".json") continue;
    auto text = readFile(e.path().string());
    auto rec = text ? Rec::fromJson(json::parse(*text, nullptr, false))
                    : Result<Rec>(std::move(text).error());
    if (!rec) {
      log::warn("ignoring an unreadable volume record",
                {{"path", e.path().string()}, {"error", rec.error().toString()}});
      continue;
    }
    std::string k = key(*rec);
    into[k] = std::move(*rec);
  }
}

}  // namespace

json SnapshotRecord::toJson() const {
  return {{"snapshot_id", snapshot_id},
          {"volume_id", volume_id},
          {"origin", origin},
          {"state", state},
          {"path", path},
          {"local", local},
          {"sha256", sha256},
          {"taken_at_ms", taken_at_ms},
          {"backup_id", backup_id},
          {"backup_expired", backup_expired},
          {"backup_attempts", backup_attempts},
          {"backup_attempt_ms", backup_attempt_ms},
          {"outbox", outboxJson(outbox)}};
}

namespace {

template <class Rec>
Result<void> readOutbox(const json& j, Rec& rec) {
  for (const auto& o : j.value("outbox", json::array())) {
    if (!o.is_object() || !o.contains("report")) {
      return Error(errc::kInvalidArgument, "an outbox entry is not an object with a report");
    }
    rec.outbox.push_back({o["report"], o.value("delivered", false)});
  }
  return ok();
}

}  // namespace

Result<SnapshotRecord> SnapshotRecord::fromJson(const json& j) {
  try {
    SnapshotRecord r;
    r.snapshot_id = j.at("snapshot_id").get<std::string>();
    r.volume_id = j.at("volume_id").get<std::string>();
    r.origin = j.value("origin", "api");
    r.state = j.at("state").get<std::string>();
    r.path = j.value("path", "");
    r.local = j.value("local", false);
    r.sha256 = j.value("sha256", "");
    r.taken_at_ms = j.value("taken_at_ms", int64_t{0});
    r.backup_id = j.value("backup_id", "");
    r.backup_expired = j.value("backup_expired", false);
    r.backup_attempts = j.value("backup_attempts", 0);
    r.backup_attempt_ms = j.value("backup_attempt_ms", int64_t{0});
    PLFM_TRY(readOutbox(j, r));
    if (!validSnapshotId(r.snapshot_id) || !VolumeId::parse(r.volume_id)) {
      return Error(errc::kInvalidArgument, "a snapshot record names an invalid id");
    }
    return r;
  } catch (const json::exception& e) {
    return Error(errc::kInvalidArgument, std::string("a snapshot record: ") + e.what());
  }
}

json OpRecord::toJson() const {
  return {{"op_id", op_id},
          {"kind", kind},
          {"volume_id", volume_id},
          {"ok", ok},
          {"reason", reason},
          {"finished_ms", finished_ms},
          {"outbox", outboxJson(outbox)}};
}

Result<OpRecord> OpRecord::fromJson(const json& j) {
  try {
    OpRecord r;
    r.op_id = j.at("op_id").get<std::string>();
    r.kind = j.at("kind").get<std::string>();
    r.volume_id = j.at("volume_id").get<std::string>();
    r.ok = j.value("ok", false);
    r.reason = j.value("reason", "");
    r.finished_ms = j.value("finished_ms", int64_t{0});
    if (!VolumeOpId::parse(r.op_id) || !VolumeId::parse(r.volume_id)) {
      return Error(errc::kInvalidArgument, "a volume op record names an invalid id");
    }
    PLFM_TRY(readOutbox(j, r));
    return r;
  } catch (const json::exception& e) {
    return Error(errc::kInvalidArgument, std::string("a volume op record: ") + e.what());
  }
}

void loadSnapshotRecords(const std::string& dir, std::map<std::string, SnapshotRecord>& into) {
  loadRecords(dir, into, [](const SnapshotRecord& r) { return r.snapshot_id; });
}

void loadOpRecords(const std::string& dir, std::map<std::string, OpRecord>& into) {
  loadRecords(dir, into, [](const OpRecord& r) { return r.op_id; });
}

void saveRecord(const std::string& dir, const std::string& id, const json& record) {
  const std::string path = dir + "/" + id + ".json";
  if (auto w = writeFileAtomic(path, record.dump() + "\n", 0600); !w) {
    log::error("cannot save a volume record", {{"error", w.error().toString()}});
  }
}

}  // namespace plfm::agent
