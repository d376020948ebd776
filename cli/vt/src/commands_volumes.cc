// vt volumes: create, list, get, extend, rm. A volume is one process slot's
// persistent disk (docs/specs/runtime/volume-mounts.md, docs/specs/api/v1.md
// "Volumes", docs/specs/cli/output.md "vt volumes"). Names (uploads-0)
// resolve to ids through the env's list.
#include <algorithm>
#include <charconv>
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

std::optional<std::string> flag(const Invocation& inv, const std::string& name) {
  return inv.args.value(name);
}

// --size as the API's "size" field; the server checks the range and says so.
Result<std::string> sizeFlag(Invocation& inv) {
  auto v = flag(inv, "size");
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
  auto process = flag(inv, "process");
  if (!process) {
    return fail(inv, Error("usage", "--process (the process type it serves) is required"));
  }
  json body = {{"name", inv.args.positionals[0]}, {"process", *process}, {"size", *size}};
  if (auto slot = flag(inv, "slot")) {
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

const Positional kVolume{.name = "VOLUME", .help = "volume name with its slot (uploads-0) or id"};
const Flag kSize{
    .name = "size", .value_name = "SIZE", .help = "10GiB, 512MiB, 1TiB (binary units)"};

}  // namespace

Command volumesCommand() {
  const std::string scope =
      "Volumes live in an env: --app and --env (or VT_APP/VT_ENV, ./vt.toml, the context).\n"
      "A volume serves one slot of a process: uploads-0 is volume `uploads` of slot 0, kept\n"
      "across restarts and deploys on the node that holds it. Deploys create the volumes\n"
      "vt.toml declares ([[volumes]]); `create` makes one ahead of time.";
  Command c{.name = "volumes",
            .summary = "Persistent disks of process slots: create, list, get, extend, rm",
            .help = scope +
                    "\n\nExamples:\n"
                    "  vt volumes create uploads --process web --size 10GiB\n"
                    "  vt volumes list\n"
                    "  vt volumes get uploads-0 --format json\n"
                    "  vt volumes extend uploads-0 --size 20GiB\n"
                    "  vt volumes rm uploads-1 --yes"};
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
                        .summary = "Show one volume: size, node, state",
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
  return c;
}

}  // namespace plfm::vt
