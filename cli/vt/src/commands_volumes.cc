// vt volumes: create, list, get, extend, rm. A volume is one process slot's
// persistent disk (docs/specs/runtime/volume-mounts.md, docs/specs/api/v1.md
// "Volumes", docs/specs/cli/output.md "vt volumes"). Names (uploads-0)
// resolve to ids through the env's list.
#include <algorithm>
#include <charconv>
#include <tuple>

#include "commands.h"
#include "invocation.h"
#include "plfm/manifest/volume_rules.h"

namespace plfm::vt {
namespace {

using nlohmann::json;

std::string sizeCell(const json& bytes) {
  if (!bytes.is_number_integer()) return "-";
  return manifest::formatVolumeSize(bytes.get<uint64_t>());
}

// --size as the API's "size" field; the server checks the range and says so.
Result<std::string> sizeFlag(Invocation& inv) {
  auto v = inv.args.value("size");
  if (!v) return Error("usage", "--size is required, like --size 10GiB (binary units)");
  if (!manifest::parseVolumeSize(*v)) {
    return Error("usage",
                 "--size must be a size with a binary unit, like 512MiB, 10GiB or 1TiB "
                 "(got `" +
                     *v + "`)");
  }
  return *v;
}

Result<std::vector<json>> envVolumes(Invocation& inv, json* env_out = nullptr) {
  PLFM_ASSIGN_OR_RETURN(auto env, inv.env());
  PLFM_ASSIGN_OR_RETURN(ApiClient * client, inv.api());
  if (env_out != nullptr) *env_out = env;
  PLFM_ASSIGN_OR_RETURN(auto items,
                        client->listAll("/v1/envs/" + env["id"].get<std::string>() + "/volumes"));
  // By process, name and slot (as the API lists them), whatever the server sent.
  auto key = [](const json& v) {
    return std::make_tuple(v.value("process", ""), v.value("name", ""), v.value("slot", 0),
                           v.value("volume_id", ""));
  };
  std::sort(items.begin(), items.end(),
            [&](const json& a, const json& b) { return key(a) < key(b); });
  return items;
}

// VOLUME is an id (vol_...) or a full name (uploads-0) of the env.
Result<json> findVolume(Invocation& inv) {
  const std::string& sel = inv.args.positionals[0];
  PLFM_ASSIGN_OR_RETURN(ApiClient * client, inv.api());
  if (sel.rfind("vol_", 0) == 0) return client->get("/v1/volumes/" + sel);
  json env;
  PLFM_ASSIGN_OR_RETURN(auto volumes, envVolumes(inv, &env));
  for (auto& v : volumes) {
    if (v.value("full_name", "") == sel) return v;
  }
  // A name without its slot ("uploads") is the usual slip.
  const bool slotless = sel.find_first_of("0123456789") == std::string::npos;
  return Error(errc::kNotFound, "no volume `" + sel + "` in env " + env.value("name", ""))
      .with("hint", (slotless ? "name it with its slot, like `" + sel + "-0`; " : std::string()) +
                        "list them with `vt volumes list" + inv.scopeFlags() + "`");
}

int volumesCreate(Invocation& inv) {
  auto size = sizeFlag(inv);
  if (!size) return fail(inv, size.error());
  auto process = inv.args.value("process");
  if (!process)
    return fail(inv, Error("usage", "--process (the process type it serves) is required"));
  json body = {{"name", inv.args.positionals[0]}, {"process", *process}, {"size", *size}};
  if (auto slot = inv.args.value("slot")) {
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
  auto v =
      (*client)->mutate("POST", "/v1/envs/" + (*env)["id"].get<std::string>() + "/volumes", body);
  if (!v) return fail(inv, v.error());
  const std::string id = (*v)["volume_id"];
  const std::string full = (*v)["full_name"];
  Receipt r{.action = "volume.created",
            .message = "Created volume " + full + " (" + sizeCell((*v)["size_bytes"]) +
                       ") for process " + (*v)["process"].get<std::string>() + " in env " +
                       (*env)["name"].get<std::string>() + " (" + id + ")",
            .ids = {id},
            .notes = {"pending: it is placed on a node when slot " +
                      std::to_string((*v)["slot"].get<int64_t>()) + " of " +
                      (*v)["process"].get<std::string>() + " is"},
            .next = {"vt volumes list" + inv.scopeFlags(), "vt deploy" + inv.scopeFlags()}};
  inv.out.receipt(r, *v);
  return 0;
}

int volumesList(Invocation& inv) {
  auto volumes = envVolumes(inv);
  if (!volumes) return fail(inv, volumes.error());
  printList(inv, *volumes, {"NAME", "PROCESS", "SIZE", "NODE", "STATE"}, [](const json& v) {
    return std::vector<std::string>{v["full_name"], v["process"], sizeCell(v["size_bytes"]),
                                    v["node_id"].is_null() ? "-" : cell(v["node_id"]), v["state"]};
  });
  return 0;
}

int volumesGet(Invocation& inv) {
  auto v = findVolume(inv);
  if (!v) return fail(inv, v.error());
  const json& j = *v;
  if (inv.out.quiet() && inv.out.format() != Format::kJson) {
    inv.out.out() << j["volume_id"].get<std::string>() << "\n";
    return 0;
  }
  printOne(inv, j,
           {{"id", j["volume_id"]},
            {"name", j["full_name"]},
            {"process", j["process"]},
            {"slot", cell(j["slot"])},
            {"size", sizeCell(j["size_bytes"])},
            {"reported_size", sizeCell(j["reported_size_bytes"])},
            {"node", j["node_id"].is_null() ? "- (pending)" : cell(j["node_id"])},
            {"state", j["state"]},
            {"reason", j["reason"].get<std::string>().empty() ? "-" : cell(j["reason"])},
            {"env", cell(j["env_id"])},
            {"created", shortTime(j["created_at"])},
            {"updated", shortTime(j["updated_at"])}});
  return 0;
}

int volumesExtend(Invocation& inv) {
  auto size = sizeFlag(inv);
  if (!size) return fail(inv, size.error());
  auto v = findVolume(inv);
  if (!v) return fail(inv, v.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  const std::string id = (*v)["volume_id"];
  auto res = (*client)->mutate("POST", "/v1/volumes/" + id + "/extend", {{"size", *size}});
  if (!res) return fail(inv, res.error());
  Receipt r{
      .action = "volume.extend_requested",
      .message = "Extending volume " + (*res)["full_name"].get<std::string>() + " from " +
                 sizeCell((*v)["size_bytes"]) + " to " + sizeCell((*res)["size_bytes"]) + " (" +
                 id + ")",
      .ids = {id},
      .notes = {"the node grows the disk; the filesystem follows at the instance's next "
                "start at the latest"},
      .next = {"vt volumes get " + (*res)["full_name"].get<std::string>() + inv.scopeFlags()}};
  inv.out.receipt(r, *res);
  return 0;
}

int volumesRm(Invocation& inv) {
  auto v = findVolume(inv);
  if (!v) return fail(inv, v.error());
  const std::string id = (*v)["volume_id"];
  const std::string full = (*v)["full_name"];
  if (!inv.args.has("yes")) {
    return fail(inv, Error("usage", "deleting volume " + full +
                                        " destroys its data for good; "
                                        "run again with --yes to confirm")
                         .with("hint", "vt volumes rm " + full + " --yes" + inv.scopeFlags()));
  }
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto res = (*client)->mutate("DELETE", "/v1/volumes/" + id, json::object());
  if (!res) return fail(inv, res.error());
  const bool gone = (*res)["state"] == "deleted";
  Receipt r{.action = gone ? "volume.deleted" : "volume.delete_requested",
            .message = (gone ? "Deleted volume " : "Deleting volume ") + full + " (" + id + ")",
            .ids = {id},
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
