// vt volumes: create, list, get, extend, rm, and snapshot, snapshots,
// restore, fork, verify. A volume is one process slot's persistent disk
// (docs/specs/runtime/volume-mounts.md, docs/specs/api/v1.md "Volumes",
// docs/specs/cli/output.md "vt volumes"). Names (uploads-0) resolve to ids
// through the env's list.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <functional>
#include <thread>
#include <tuple>

#include "commands.h"
#include "exec_view.h"
#include "invocation.h"
#include "plfm/manifest/volume_rules.h"
#include "volume_view.h"

namespace plfm::vt {
namespace {

using nlohmann::json;

std::string sizeCell(const std::optional<uint64_t>& bytes) {
  return bytes ? manifest::formatVolumeSize(*bytes) : "-";
}

// --size as the API's "size" field; the server checks the range and says so.
Result<std::string> sizeFlag(Invocation& inv) {
  auto v = inv.flag("size");
  if (!v) return Error("usage", "--size is required, like --size 10GiB (binary units)");
  if (!manifest::parseVolumeSize(*v)) {
    return Error("usage",
                 "--size must be a size with a binary unit, like 512MiB, 10GiB or 1TiB "
                 "(got `" +
                     *v + "`)");
  }
  return *v;
}

// The env's volumes by process, name and slot (as the API lists them),
// whatever order the server sent: the JSON and its typed view.
Result<std::vector<std::pair<json, VolumeView>>> envVolumes(Invocation& inv,
                                                            json* env_out = nullptr) {
  PLFM_ASSIGN_OR_RETURN(auto env, inv.env());
  PLFM_ASSIGN_OR_RETURN(ApiClient * client, inv.api());
  if (env_out != nullptr) *env_out = env;
  PLFM_ASSIGN_OR_RETURN(auto items, client->listAll("/v1/envs/" + idOf(env) + "/volumes"));
  std::vector<std::pair<json, VolumeView>> out;
  out.reserve(items.size());
  for (auto& j : items) {
    VolumeView v = parseVolume(j);
    out.emplace_back(std::move(j), std::move(v));
  }
  auto key = [](const VolumeView& v) { return std::tie(v.process, v.name, v.slot, v.id); };
  std::sort(out.begin(), out.end(),
            [&](const auto& a, const auto& b) { return key(a.second) < key(b.second); });
  return out;
}

// VOLUME is an id (vol_...) or a full name (uploads-0) of the env.
Result<std::pair<json, VolumeView>> findVolume(Invocation& inv) {
  const std::string& sel = inv.args.positionals[0];
  PLFM_ASSIGN_OR_RETURN(ApiClient * client, inv.api());
  if (sel.rfind("vol_", 0) == 0) {
    PLFM_ASSIGN_OR_RETURN(auto j, client->get("/v1/volumes/" + sel));
    VolumeView v = parseVolume(j);
    return std::make_pair(std::move(j), std::move(v));
  }
  json env;
  PLFM_ASSIGN_OR_RETURN(auto volumes, envVolumes(inv, &env));
  for (auto& v : volumes) {
    if (v.second.full_name == sel) return std::move(v);
  }
  // A name without its slot ("uploads") is the usual slip.
  const bool slotless = sel.find_first_of("0123456789") == std::string::npos;
  return Error(errc::kNotFound, "no volume `" + sel + "` in env " + nameOf(env))
      .with("hint", (slotless ? "name it with its slot, like `" + sel + "-0`; " : std::string()) +
                        "list them with `vt volumes list" + inv.scopeFlags() + "`");
}

int volumesCreate(Invocation& inv) {
  auto size = sizeFlag(inv);
  if (!size) return fail(inv, size.error());
  auto process = inv.flag("process");
  if (!process) {
    return fail(inv, Error("usage", "--process (the process type it serves) is required"));
  }
  json body = {{"name", inv.args.positionals[0]}, {"process", *process}, {"size", *size}};
  if (auto slot = inv.flag("slot")) {
    int64_t n = -1;
    auto [p, ec] = std::from_chars(slot->data(), slot->data() + slot->size(), n);
    if (ec != std::errc() || p != slot->data() + slot->size() || n < 0) {
      return fail(inv, Error("usage", "--slot must be an integer from 0 (got `" + *slot + "`)"));
    }
    body["slot"] = n;
  }
  auto env = inv.env();
  if (!env) return fail(inv, env.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto made = (*client)->mutate("POST", "/v1/envs/" + idOf(*env) + "/volumes", body);
  if (!made) return fail(inv, made.error());
  const VolumeView v = parseVolume(*made);
  Receipt r{.action = "volume.created",
            .message = "Created volume " + v.full_name + " (" + sizeCell(v.size_bytes) +
                       ") for process " + v.process + " in env " + nameOf(*env) + " (" + v.id + ")",
            .ids = {v.id},
            .notes = {"pending: it is placed on a node when slot " + std::to_string(v.slot) +
                      " of " + v.process + " is"},
            .next = {"vt volumes list" + inv.scopeFlags(), "vt deploy" + inv.scopeFlags()}};
  inv.out.receipt(r, *made);
  return 0;
}

int volumesList(Invocation& inv) {
  auto volumes = envVolumes(inv);
  if (!volumes) return fail(inv, volumes.error());
  std::vector<json> items;
  items.reserve(volumes->size());
  for (const auto& entry : *volumes) items.push_back(entry.first);
  printList(inv, items, {"NAME", "PROCESS", "SIZE", "NODE", "STATE"}, [](const json& j) {
    const VolumeView v = parseVolume(j);
    return std::vector<std::string>{v.full_name, v.process, sizeCell(v.size_bytes),
                                    v.node_id.value_or("-"), v.state};
  });
  return 0;
}

// "42s", "17m", "3h05m": an age for a table cell.
std::string ageText(uint64_t seconds) {
  if (seconds < 120) return std::to_string(seconds) + "s";
  if (seconds < 7200) return std::to_string(seconds / 60) + "m";
  const uint64_t m = (seconds / 60) % 60;
  return std::to_string(seconds / 3600) + "h" + (m < 10 ? "0" : "") + std::to_string(m) + "m";
}

std::string timeCell(const std::optional<std::string>& t) { return t ? shortTime(*t) : "-"; }

std::string verifyCell(const VolumeView& v) {
  if (!v.last_verify_ok) return "-";
  std::string s = (*v.last_verify_ok ? "ok at " : "FAILED at ") + timeCell(v.last_verified_at);
  if (!v.last_verify_reason.empty()) s += ": " + v.last_verify_reason;
  return s;
}

int volumesGet(Invocation& inv) {
  auto found = findVolume(inv);
  if (!found) return fail(inv, found.error());
  const VolumeView& v = found->second;
  if (inv.out.quiet() && inv.out.format() != Format::kJson) {
    inv.out.out() << v.id << "\n";
    return 0;
  }
  printOne(inv, found->first,
           {{"id", v.id},
            {"name", v.full_name},
            {"process", v.process},
            {"slot", std::to_string(v.slot)},
            {"size", sizeCell(v.size_bytes)},
            {"reported_size", sizeCell(v.reported_size_bytes)},
            {"node", v.node_id.value_or("- (pending)")},
            {"state", v.state},
            {"reason", v.reason.empty() ? "-" : v.reason},
            {"backup_every",
             v.backup_every_seconds
                 ? manifest::formatBackupEvery(static_cast<int64_t>(*v.backup_every_seconds))
                 : "-"},
            {"backup_keep", v.backup_keep ? std::to_string(*v.backup_keep) : "-"},
            {"last_snapshot", timeCell(v.last_snapshot_at)},
            {"last_backup", timeCell(v.last_backup_at)},
            {"rpo", v.rpo_seconds ? ageText(*v.rpo_seconds) : "- (no backup yet)"},
            {"last_verify", verifyCell(v)},
            {"env", v.env_id},
            {"created", shortTime(v.created_at)},
            {"updated", shortTime(v.updated_at)}});
  return 0;
}

int volumesExtend(Invocation& inv) {
  auto size = sizeFlag(inv);
  if (!size) return fail(inv, size.error());
  auto found = findVolume(inv);
  if (!found) return fail(inv, found.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  const VolumeView& before = found->second;
  auto res = (*client)->mutate("POST", "/v1/volumes/" + before.id + "/extend", {{"size", *size}});
  if (!res) return fail(inv, res.error());
  const VolumeView after = parseVolume(*res);
  Receipt r{.action = "volume.extend_requested",
            .message = "Extending volume " + after.full_name + " from " +
                       sizeCell(before.size_bytes) + " to " + sizeCell(after.size_bytes) + " (" +
                       after.id + ")",
            .ids = {after.id},
            .notes = {"the node grows the disk; the filesystem follows at the instance's next "
                      "start at the latest"},
            .next = {"vt volumes get " + after.full_name + inv.scopeFlags()}};
  inv.out.receipt(r, *res);
  return 0;
}

int volumesRm(Invocation& inv) {
  auto found = findVolume(inv);
  if (!found) return fail(inv, found.error());
  const VolumeView& v = found->second;
  if (!inv.args.has("yes")) {
    return fail(inv,
                Error("usage", "deleting volume " + v.full_name +
                                   " destroys its data for good; run again with --yes to "
                                   "confirm")
                    .with("hint", "vt volumes rm " + v.full_name + " --yes" + inv.scopeFlags()));
  }
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto res = (*client)->mutate("DELETE", "/v1/volumes/" + v.id, json::object());
  if (!res) return fail(inv, res.error());
  const bool gone = parseVolume(*res).state == "deleted";
  Receipt r{
      .action = gone ? "volume.deleted" : "volume.delete_requested",
      .message = (gone ? "Deleted volume " : "Deleting volume ") + v.full_name + " (" + v.id + ")",
      .ids = {v.id},
      .notes = {gone ? "no node held it" : "its node removes the file, then it is deleted"},
      .next = {"vt volumes list" + inv.scopeFlags()}};
  inv.out.receipt(r, *res);
  return 0;
}

// --wait: polls `path` every 500 ms until `done` says the state is final,
// printing each state it sees on stderr ("snapshot snap_...: taken").
// Gives up after half an hour with what it last saw.
Result<json> waitUntilDone(Invocation& inv, ApiClient& client, const std::string& path,
                           const std::string& what, json current,
                           const std::function<bool(const std::string&)>& done) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::minutes(30);
  std::string shown;
  for (;;) {
    const std::string state = field(current, "state").is_string() ? current["state"] : "";
    std::string line = what;
    if (state != shown) {
      line.append(": ").append(state);
      inv.out.progress(line);
      shown = state;
    }
    if (done(state)) return current;
    if (Clock::now() > deadline) {
      line = what;
      line.append(" is still ").append(state).append(" after 30 minutes");
      return Error(errc::kDeadlineExceeded, line)
          .with("hint", "look again with `vt volumes snapshots` or `vt volumes get`");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    PLFM_ASSIGN_OR_RETURN(current, client.get(path));
  }
}

std::string snapshotDetail(const SnapshotView& s) {
  std::string d = s.method.value_or("?");
  if (s.freeze_ms && *s.freeze_ms >= 0) d += ", froze " + std::to_string(*s.freeze_ms) + " ms";
  if (s.consistent && !*s.consistent) d += ", not app-consistent";
  return d;
}

int volumesSnapshot(Invocation& inv) {
  auto found = findVolume(inv);
  if (!found) return fail(inv, found.error());
  const VolumeView& v = found->second;
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  const bool freeze = !inv.args.has("no-freeze");
  auto made = (*client)->mutate("POST", "/v1/volumes/" + v.id + "/snapshots", {{"freeze", freeze}});
  if (!made) return fail(inv, made.error());
  json result = *made;
  const std::string snap_id = parseSnapshot(result).id;
  if (inv.args.has("wait")) {
    auto waited = waitUntilDone(inv, **client, "/v1/volumes/" + v.id + "/snapshots/" + snap_id,
                                "snapshot " + snap_id, result,
                                [](const std::string& st) { return st != "requested"; });
    if (!waited) return fail(inv, waited.error());
    result = *waited;
  }
  const SnapshotView s = parseSnapshot(result);
  Receipt r{.action = "volume.snapshot_requested",
            .ids = {s.id},
            .next = {"vt volumes snapshots " + v.full_name + inv.scopeFlags()}};
  if (s.state == "requested") {
    r.message =
        "Requested snapshot " + s.id + " of volume " + v.full_name + " on node " + s.node_id;
    r.notes = {freeze ? "app-consistent: the guest's filesystem is frozen for the copy (at most "
                        "5 s)"
                      : "crash-consistent (--no-freeze): the copy holds what the disk held, as "
                        "after a power cut",
               "the node takes it, then backs it up off the node when it has a backup "
               "repository"};
  } else if (s.state == "failed") {
    r.message = "Snapshot " + s.id + " of volume " + v.full_name + " failed";
    r.notes = {s.reason.empty() ? "no reason given" : s.reason};
  } else {
    r.message = std::string(s.state == "backed_up" ? "Backed up" : "Took") + " snapshot " + s.id +
                " of volume " + v.full_name + " (" + snapshotDetail(s) + ")";
  }
  const bool ok = s.state != "failed";
  inv.out.receipt(r, result, ok);
  return ok ? 0 : 1;
}

std::string backupCell(const SnapshotView& s) {
  if (!s.backup_id) return "-";
  if (s.backup_expired) return "expired";
  return s.backup_id->substr(0, 8);
}

int volumesSnapshots(Invocation& inv) {
  auto found = findVolume(inv);
  if (!found) return fail(inv, found.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto res = (*client)->get("/v1/volumes/" + found->second.id + "/snapshots");
  if (!res) return fail(inv, res.error());
  std::vector<json> items;
  for (const auto& item : field(*res, "items")) items.push_back(item);
  printList(inv, items,
            {"SNAPSHOT", "STATE", "ORIGIN", "TAKEN", "SIZE", "METHOD", "LOCAL", "BACKUP"},
            [](const json& j) {
              const SnapshotView s = parseSnapshot(j);
              std::string state = s.state;
              if (s.state == "failed" && !s.reason.empty()) state += ": " + s.reason;
              return std::vector<std::string>{s.id,
                                              state,
                                              s.origin,
                                              timeCell(s.taken_at),
                                              sizeCell(s.size_bytes),
                                              s.method.value_or("-"),
                                              s.local ? "yes" : "no",
                                              backupCell(s)};
            });
  return 0;
}

// Prints the receipt of a restore, fork or verify op (after --wait, the op
// as it ended); exits 1 when the op failed.
int opReceipt(Invocation& inv, ApiClient& client, json result, json op, Receipt r,
              const std::string& done_message) {
  if (inv.args.has("wait")) {
    const VolumeOpView o = parseVolumeOp(op);
    auto waited = waitUntilDone(
        inv, client, "/v1/volumes/" + o.volume_id + "/ops/" + o.id, o.kind + " " + o.id, op,
        [](const std::string& st) { return st == "done" || st == "failed"; });
    if (!waited) return fail(inv, waited.error());
    op = *waited;
    if (result.contains("op")) {
      result["op"] = op;
    } else {
      result = op;
    }
  }
  const VolumeOpView o = parseVolumeOp(op);
  if (o.state == "done") r.message = done_message;
  if (o.state == "failed") {
    r.message = "The " + o.kind + " op " + o.id + " failed";
    r.notes = {o.reason.empty() ? "no reason given" : o.reason};
  }
  const bool ok = o.state != "failed";
  inv.out.receipt(r, result, ok);
  return ok ? 0 : 1;
}

std::string sourceNote(const VolumeOpView& o) {
  return o.source == "local" ? "from the node's local copy of the snapshot"
                             : "from the backup repository (the download is checked against the "
                               "snapshot's sha256 and e2fsck)";
}

int volumesRestore(Invocation& inv) {
  auto from = inv.flag("from");
  if (!from) {
    return fail(inv, Error("usage",
                           "--from SNAPSHOT is required (list them with `vt volumes "
                           "snapshots " +
                               inv.args.positionals[0] + "`)"));
  }
  auto to = inv.flag("to");
  const bool in_place = inv.args.has("in-place");
  if (to && in_place) {
    return fail(inv, Error("usage",
                           "--to NEW and --in-place exclude each other: restore into a "
                           "new volume, or over this one"));
  }
  auto found = findVolume(inv);
  if (!found) return fail(inv, found.error());
  const VolumeView& v = found->second;
  json body = {{"snapshot_id", *from}};
  if (to) body["to"] = *to;
  if (in_place) body["in_place"] = true;
  if (auto node = inv.flag("node")) body["node_id"] = *node;
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto res = (*client)->mutate("POST", "/v1/volumes/" + v.id + "/restore", body);
  if (!res) return fail(inv, res.error());
  const VolumeOpView o = parseVolumeOp(field(*res, "op"));
  const VolumeView target = parseVolume(field(*res, "volume"));
  Receipt r{.action = "volume.restore_requested",
            .ids = {o.id, target.id},
            .notes = {sourceNote(o)},
            .next = {"vt volumes get " + target.full_name + inv.scopeFlags()}};
  std::string done;
  if (o.in_place) {
    r.message = "Restoring volume " + v.full_name + " in place from snapshot " + o.snapshot_id +
                " on node " + o.node_id + " (op " + o.id + ")";
    r.notes.emplace_back(
        "the volume is `restoring` until the node has written it; its "
        "instance stays stopped until then");
    done = "Restored volume " + v.full_name + " in place from snapshot " + o.snapshot_id;
  } else {
    r.message = "Restoring snapshot " + o.snapshot_id + " of " + v.full_name + " into new volume " +
                target.full_name + " on node " + o.node_id + " (" + target.id + ", op " + o.id +
                ")";
    r.notes.emplace_back("the new volume is `restoring` until the node has written it");
    done = "Restored snapshot " + o.snapshot_id + " of " + v.full_name + " into new volume " +
           target.full_name + " on node " + o.node_id;
  }
  return opReceipt(inv, **client, *res, field(*res, "op"), std::move(r), done);
}

int volumesFork(Invocation& inv) {
  auto node = inv.flag("node");
  if (!node) return fail(inv, Error("usage", "--node N (the node to put the copy on) is required"));
  auto found = findVolume(inv);
  if (!found) return fail(inv, found.error());
  const VolumeView& v = found->second;
  json body = {{"node_id", *node}};
  if (auto to = inv.flag("to")) body["to"] = *to;
  if (auto from = inv.flag("from")) body["snapshot_id"] = *from;
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto res = (*client)->mutate("POST", "/v1/volumes/" + v.id + "/fork", body);
  if (!res) return fail(inv, res.error());
  const VolumeOpView o = parseVolumeOp(field(*res, "op"));
  const VolumeView target = parseVolume(field(*res, "volume"));
  Receipt r{.action = "volume.restore_requested",
            .message = "Forking " + v.full_name + " from snapshot " + o.snapshot_id +
                       " into new volume " + target.full_name + " on node " + o.node_id + " (" +
                       target.id + ", op " + o.id + ")",
            .ids = {o.id, target.id},
            .notes = {sourceNote(o), "the new volume is `restoring` until the node has written it"},
            .next = {"vt volumes get " + target.full_name + inv.scopeFlags()}};
  return opReceipt(
      inv, **client, *res, field(*res, "op"), std::move(r),
      "Forked " + v.full_name + " into new volume " + target.full_name + " on node " + o.node_id);
}

int volumesVerify(Invocation& inv) {
  auto found = findVolume(inv);
  if (!found) return fail(inv, found.error());
  const VolumeView& v = found->second;
  json body = json::object();
  if (auto from = inv.flag("from")) body["snapshot_id"] = *from;
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto res = (*client)->mutate("POST", "/v1/volumes/" + v.id + "/verify", body);
  if (!res) return fail(inv, res.error());
  const VolumeOpView o = parseVolumeOp(*res);
  Receipt r{.action = "volume.verify_requested",
            .message = "Verifying the backup of snapshot " + o.snapshot_id + " of volume " +
                       v.full_name + " on node " + o.node_id + " (op " + o.id + ")",
            .ids = {o.id},
            .notes = {"the node restores the backup into a scratch file, compares its sha256 "
                      "with the snapshot's and runs e2fsck -fn; the volume is not touched"},
            .next = {"vt volumes get " + v.full_name + inv.scopeFlags()}};
  return opReceipt(inv, **client, *res, *res, std::move(r),
                   "Verified the backup of snapshot " + o.snapshot_id + " of volume " +
                       v.full_name + ": it restores, matches its sha256 and passes e2fsck");
}

const Positional kVolume{.name = "VOLUME", .help = "volume name with its slot (uploads-0) or id"};
const Flag kSize{
    .name = "size", .value_name = "SIZE", .help = "10GiB, 512MiB, 1TiB (binary units)"};
const Flag kWait{.name = "wait",
                 .help =
                     "wait until it is done or failed, printing each state; exit 1 if it "
                     "failed"};
const Flag kTo{.name = "to",
               .value_name = "NEW",
               .help = "name of the new volume (its full name is NEW-SLOT)"};
const Flag kVolumeNode{.name = "node", .value_name = "NODE", .help = "node id (node_...)"};

}  // namespace

Command volumesCommand() {
  const std::string scope =
      "Volumes live in an env: --app and --env (or VT_APP/VT_ENV, ./vt.toml, the context).\n"
      "A volume serves one slot of a process: uploads-0 is volume `uploads` of slot 0, kept\n"
      "across restarts and deploys on the node that holds it. Deploys create the volumes\n"
      "vt.toml declares ([[volumes]]); `create` makes one ahead of time.";
  Command c{.name = "volumes",
            .summary = "Persistent disks of process slots, their snapshots, backups and restores",
            .help = scope +
                    "\n\nExamples:\n"
                    "  vt volumes create uploads --process web --size 10GiB\n"
                    "  vt volumes list\n"
                    "  vt volumes get uploads-0 --format json\n"
                    "  vt volumes extend uploads-0 --size 20GiB\n"
                    "  vt volumes rm uploads-1 --yes\n"
                    "  vt volumes snapshot uploads-0 --wait\n"
                    "  vt volumes snapshots uploads-0\n"
                    "  vt volumes restore uploads-0 --from snap_... --to uploads-old\n"
                    "  vt volumes fork uploads-0 --node node_...\n"
                    "  vt volumes verify uploads-0 --wait"};
  c.children.push_back(
      {.name = "create",
       .summary = "Create a volume for a slot of a process (pending until it is placed)",
       .help = scope + "\n\nNAME follows the manifest's volume names; its full name is NAME-SLOT.\n"
                       "Sizes are 16MiB to 16TiB.\n\n"
                       "Examples:\n"
                       "  vt volumes create uploads --process web --size 10GiB\n"
                       "  vt volumes create uploads --process web --slot 1 --size 10GiB",
       .flags = {{.name = "process", .value_name = "TYPE", .help = "the process type it serves"},
                 {.name = "slot",
                  .value_name = "N",
                  .help = "the instance slot it serves (default 0)"},
                 kSize},
       .positionals = {{.name = "NAME", .help = "the volume's name, like uploads"}},
       .mutating = true,
       .run = volumesCreate});
  c.children.push_back({.name = "list",
                        .summary = "List the env's volumes, by process, name and slot",
                        .help = scope,
                        .run = volumesList});
  c.children.push_back({.name = "get",
                        .summary = "Show one volume: size, node, state, backups and RPO",
                        .help = scope,
                        .positionals = {kVolume},
                        .run = volumesGet});
  c.children.push_back({.name = "extend",
                        .summary = "Grow a volume to a larger size (volumes never shrink)",
                        .help = scope + "\n\nExample:\n  vt volumes extend uploads-0 --size 20GiB",
                        .flags = {kSize},
                        .positionals = {kVolume},
                        .mutating = true,
                        .run = volumesExtend});
  c.children.push_back(
      {.name = "rm",
       .summary = "Delete a volume and its data (needs --yes)",
       .help = scope +
               "\n\nThe data is gone for good. Refused while an instance of the slot should run\n"
               "with it: scale the process below the slot (vt scale set web=N), or remove the\n"
               "volume from vt.toml and deploy, first.\n\n"
               "Example:\n  vt volumes rm uploads-1 --yes",
       .flags = {{.name = "yes", .help = "confirm that the volume's data is destroyed"}},
       .positionals = {kVolume},
       .mutating = true,
       .run = volumesRm});
  const std::string backups =
      "Snapshots are point-in-time copies taken on the volume's node; with a backup\n"
      "repository the node ships each one off the node (restic: encrypted, incremental)\n"
      "and keeps backup_keep of them. vt.toml's backup_every (default 15m) schedules them.";
  c.children.push_back(
      {.name = "snapshot",
       .summary = "Take a snapshot of a volume now (app-consistent unless --no-freeze)",
       .help = scope + "\n\n" + backups +
               "\n\nThe guest's filesystem is frozen for the copy (FIFREEZE, at most 5 s), so\n"
               "the snapshot is what the app had written. --no-freeze takes it as it is, like\n"
               "a power cut, for guests that cannot freeze. The volume must be ready on a node.\n\n"
               "Examples:\n"
               "  vt volumes snapshot uploads-0\n"
               "  vt volumes snapshot uploads-0 --no-freeze --wait",
       .flags = {{.name = "no-freeze", .help = "crash-consistent: do not freeze the guest"}, kWait},
       .positionals = {kVolume},
       .mutating = true,
       .run = volumesSnapshot});
  c.children.push_back({.name = "snapshots",
                        .summary = "List a volume's snapshots and backups, newest first",
                        .help = scope + "\n\n" + backups +
                                "\n\nLOCAL says the node still holds the file (a fast restore);\n"
                                "BACKUP is the backup's id in the repository, or `expired`.\n\n"
                                "Example:\n  vt volumes snapshots uploads-0",
                        .positionals = {kVolume},
                        .run = volumesSnapshots});
  c.children.push_back(
      {.name = "restore",
       .summary = "Restore a snapshot into a new volume, or in place",
       .help = scope + "\n\n" + backups +
               "\n\nBy default the snapshot becomes a new volume NEW-SLOT (NEW defaults to\n"
               "NAME-restore) of the same process and slot, on the snapshot's node when it\n"
               "still holds the file, else (or on --node) from the backup. --in-place writes\n"
               "it over the volume itself: refused while the slot's instance should run, so\n"
               "scale the process below the slot first. Every restore is checked (sha256,\n"
               "e2fsck) before it replaces anything.\n\n"
               "Examples:\n"
               "  vt volumes restore uploads-0 --from snap_... --to uploads-old\n"
               "  vt volumes restore uploads-0 --from snap_... --in-place --wait",
       .flags = {{.name = "from", .value_name = "SNAPSHOT", .help = "the snapshot (snap_...)"},
                 kTo,
                 {.name = "in-place", .help = "write it over this volume (its slot stopped)"},
                 kVolumeNode,
                 kWait},
       .positionals = {kVolume},
       .mutating = true,
       .run = volumesRestore});
  c.children.push_back(
      {.name = "fork",
       .summary = "Copy a volume onto another node, from its newest backup",
       .help = scope + "\n\n" + backups +
               "\n\nThe copy is a new volume NEW-SLOT (NEW defaults to NAME-fork) on --node,\n"
               "made from --from or the newest backed-up snapshot (refused when there is none\n"
               "yet: take one with `vt volumes snapshot`).\n\n"
               "Examples:\n"
               "  vt volumes fork uploads-0 --node node_...\n"
               "  vt volumes fork uploads-0 --node node_... --from snap_... --to staging --wait",
       .flags = {kVolumeNode,
                 {.name = "from",
                  .value_name = "SNAPSHOT",
                  .help = "the snapshot (default: the newest backed-up one)"},
                 kTo,
                 kWait},
       .positionals = {kVolume},
       .mutating = true,
       .run = volumesFork});
  c.children.push_back(
      {.name = "verify",
       .summary = "Restore drill: check that a backup restores, without touching the volume",
       .help = scope + "\n\n" + backups +
               "\n\nThe node restores the backup into a scratch file, compares its sha256 with\n"
               "the one recorded at backup time and runs e2fsck -fn; `vt volumes get` shows the\n"
               "last result. Nodes also run this drill by themselves once a day.\n\n"
               "Examples:\n"
               "  vt volumes verify uploads-0 --wait\n"
               "  vt volumes verify uploads-0 --from snap_...",
       .flags = {{.name = "from",
                  .value_name = "SNAPSHOT",
                  .help = "the snapshot whose backup to check (default: the newest)"},
                 kWait},
       .positionals = {kVolume},
       .mutating = true,
       .run = volumesVerify});
  return c;
}

}  // namespace plfm::vt
