// Volumes: a process slot's persistent disk (docs/specs/runtime/volume-mounts.md
// "API, events and CLI", docs/specs/api/v1.md "Volumes"). Users create one
// ahead of a deploy, list, get, extend (never shrink) and delete them; the
// scheduler places them and the node agent holds their files. Every
// mutation is an event (volume.created, volume.extend_requested,
// volume.delete_requested, volume.deleted) that the projection applies to
// volumes_view, which is what these handlers read.
#include "api.h"
#include "plfm/manifest/volume_rules.h"
#include "volume_deletion.h"

namespace plfm::cp {
namespace {

using json::Json;

const std::string kVolumeColumns =
    "volume_id, env_id, app_id, process_type AS process, name, slot, full_name, size_bytes, "
    "node_id, state, reason, reported_size_bytes, " +
    ts("created_at") + " AS created_at, " + ts("updated_at") + " AS updated_at";

// Slots follow instance counts, which scale caps at 1000.
constexpr int64_t kMaxSlot = 999;

// The state of a volume, read inside a mutation's transaction after the
// org's lock (so the view holds every event of the org committed so far).
struct VolumeRow {
  Json body;  // the API's representation
  std::string id, org, env, process, name, full_name, state;
  std::optional<std::string> node;  // nullopt: never placed
  int64_t slot = 0;
  uint64_t size_bytes = 0;
};

Error volumeNotFound(const std::string& id) {
  return Error(plfm::errc::kNotFound, "volume " + id + " not found").with("volume_id", id);
}

// "size": "10GiB" or "size_bytes": N, exactly one, within the manifest's range.
Result<uint64_t> parseSize(const Json& body) {
  PLFM_ASSIGN_OR_RETURN(auto text, optionalString(body, "size"));
  auto it = body.find("size_bytes");
  const bool has_bytes = it != body.end() && !it->is_null();
  if (text.has_value() == has_bytes) {
    return invalidField("size", R"(or 'size_bytes' is required, not both ("size": "10GiB"))");
  }
  uint64_t bytes = 0;
  std::string_view field = "size";
  if (text) {
    auto parsed = manifest::parseVolumeSize(*text);
    if (!parsed) {
      return invalidField("size",
                          R"(must be a size with a binary unit, like "512MiB", "10GiB" or "1TiB")");
    }
    bytes = *parsed;
  } else {
    field = "size_bytes";
    auto n = json::getInt(body, "size_bytes");
    if (!n || *n < 0) return invalidField("size_bytes", "must be a positive integer (bytes)");
    bytes = static_cast<uint64_t>(*n);
  }
  if (auto why = manifest::checkVolumeSize(bytes)) return invalidField(field, "must be " + *why);
  return bytes;
}

// The volume if the caller is a member of its org; not_found otherwise.
Result<Json> visibleVolume(Ctx& ctx, const VolumeId& id) {
  PLFM_ASSIGN_OR_RETURN(auto j, visibleRow(ctx,
                                           "SELECT " + kVolumeColumns +
                                               ", org_id FROM volumes_view WHERE volume_id = $1",
                                           id.str(), "volume"));
  j.erase("org_id");
  return j;
}

// Takes the volume's org lock, then reads its row.
Result<VolumeRow> lockedVolume(Api& api, pg::Transaction& tx, const std::string& id) {
  const std::string select =
      "SELECT " + kVolumeColumns + ", org_id FROM volumes_view WHERE volume_id = $1";
  PLFM_ASSIGN_OR_RETURN(auto before, tx.exec(select, {id}));
  if (before.rows() != 1) return volumeNotFound(id);
  PLFM_TRY(api.lockOrgQuotas(tx, std::string(before.text(0, before.columns() - 1))));
  PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec(select, {id}));
  if (rs.rows() != 1) return volumeNotFound(id);
  // The columns in kVolumeColumns order, then org_id.
  VolumeRow v;
  v.body = rowToJson(rs, 0);
  v.body.erase("org_id");
  v.id = rs.text(0, 0);
  v.env = rs.text(0, 1);
  v.process = rs.text(0, 3);
  v.name = rs.text(0, 4);
  PLFM_ASSIGN_OR_RETURN(v.slot, rs.int64(0, 5));
  v.full_name = rs.text(0, 6);
  PLFM_ASSIGN_OR_RETURN(int64_t size, rs.int64(0, 7));
  v.size_bytes = static_cast<uint64_t>(size);
  if (!rs.isNull(0, 8)) v.node = std::string(rs.text(0, 8));
  v.state = rs.text(0, 9);
  v.org = rs.text(0, rs.columns() - 1);
  return v;
}

// A live volume of the env with this full name, or nullopt.
Result<std::optional<std::string>> liveNamed(pg::Transaction& tx, const std::string& env,
                                             const std::string& full_name) {
  PLFM_ASSIGN_OR_RETURN(auto rs,
                        tx.exec("SELECT volume_id FROM volumes_view WHERE env_id = $1 AND "
                                "full_name = $2 AND state <> 'deleted' ORDER BY volume_id LIMIT 1",
                                {env, full_name}));
  if (rs.rows() == 0) return std::optional<std::string>();
  return std::optional<std::string>(std::string(rs.text(0, 0)));
}

// An instance that should be running with this volume: same env, process
// and slot, desired to run, and its release's manifest declares a volume of
// that name for the process. Its id, or nullopt.
Result<std::optional<std::string>> instanceUsing(pg::Transaction& tx, const VolumeRow& v) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs,
      tx.exec("SELECT i.instance_id FROM instances_view i JOIN releases_view r ON r.release_id = "
              "i.release_id WHERE i.env_id = $1 AND i.process_type = $2 AND i.slot = $3 AND "
              "i.desired_state = 'run' AND i.current_state <> 'stopped' AND EXISTS (SELECT 1 FROM "
              "jsonb_array_elements(CASE WHEN "
              "jsonb_typeof(r.manifest->'volumes') = 'array' THEN r.manifest->'volumes' ELSE "
              "'[]'::jsonb END) m WHERE m->>'name' = $4 AND m->>'process' = i.process_type) "
              "ORDER BY i.instance_id LIMIT 1",
              {v.env, v.process, v.slot, v.name}));
  if (rs.rows() == 0) return std::optional<std::string>();
  return std::optional<std::string>(std::string(rs.text(0, 0)));
}

Error notLive(const VolumeRow& v, std::string_view action) {
  const std::string& full = v.full_name;
  return Error(plfm::errc::kFailedPrecondition,
               "volume " + full + " is " + v.state + "; it cannot be " + std::string(action))
      .with("volume_id", v.id)
      .with("state", v.state);
}

}  // namespace

Result<CreateVolume> parseCreateVolume(const http::Request& req) {
  PLFM_ASSIGN_OR_RETURN(auto body,
                        parseBody(req, {"process", "name", "slot", "size", "size_bytes"}));
  CreateVolume c;
  PLFM_ASSIGN_OR_RETURN(c.process, requireString(body, "process"));
  if (!validProcessName(c.process))
    return invalidField("process", "must match [a-z][a-z0-9-]{0,29}");
  PLFM_ASSIGN_OR_RETURN(c.name, requireString(body, "name"));
  if (auto why = manifest::checkVolumeName(c.name)) return invalidField("name", "must be " + *why);
  auto slot = body.find("slot");
  if (slot != body.end() && !slot->is_null()) {
    auto n = json::getInt(body, "slot");
    if (!n || *n < 0 || *n > kMaxSlot) {
      return invalidField("slot", "must be an integer 0.." + std::to_string(kMaxSlot));
    }
    c.slot = *n;
  }
  PLFM_ASSIGN_OR_RETURN(c.size_bytes, parseSize(body));
  // At most 59 + "-" + 3 digits: always a name the agent accepts.
  c.full_name = c.name + "-" + std::to_string(c.slot);
  return c;
}

void Api::registerVolumeRoutes(http::Router& r) {
  route(r, "POST", "/v1/envs/{env_id}/volumes", Access::kUser,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto env, pathId<EnvId>(ctx.req, "env_id"));
          PLFM_ASSIGN_OR_RETURN(CreateVolume c, parseCreateVolume(ctx.req));
          PLFM_ASSIGN_OR_RETURN(auto e, visibleEnv(ctx, env));
          const std::string org = e["org_id"];
          const std::string app = e["app_id"];
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            PLFM_TRY(lockOrgQuotas(tx, org));
            PLFM_ASSIGN_OR_RETURN(auto taken, liveNamed(tx, env.str(), c.full_name));
            if (taken) {
              return Error(plfm::errc::kAlreadyExists,
                           "volume " + c.full_name + " already exists in this env (" + *taken +
                               "); extend it with `vt volumes extend " + c.full_name +
                               "`, or pick another name or slot")
                  .with("field", "name")
                  .with("volume_id", *taken);
            }
            const std::string id = VolumeId::generate().str();
            const std::string now = toRfc3339(deps_.clock.now());
            Mutation m;
            m.body = {{"volume_id", id},
                      {"env_id", env.str()},
                      {"app_id", app},
                      {"process", c.process},
                      {"name", c.name},
                      {"slot", c.slot},
                      {"full_name", c.full_name},
                      {"size_bytes", c.size_bytes},
                      {"node_id", nullptr},
                      {"state", "pending"},
                      {"reason", ""},
                      {"reported_size_bytes", nullptr},
                      {"created_at", now},
                      {"updated_at", now}};
            m.events = {events::toNewEvent(
                events::VolumeCreated{.volume_id = id,
                                      .org_id = org,
                                      .app_id = app,
                                      .env_id = env.str(),
                                      .process_type = c.process,
                                      .name = c.name,
                                      .slot = c.slot,
                                      .full_name = c.full_name,
                                      .size_bytes = static_cast<int64_t>(c.size_bytes),
                                      .origin = "api"},
                1, org)};
            return m;
          });
        });

  route(r, "GET", "/v1/envs/{env_id}/volumes", Access::kUser,
        [](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto env, pathId<EnvId>(ctx.req, "env_id"));
          PLFM_ASSIGN_OR_RETURN(auto page, parsePage(ctx.req, "vol"));
          PLFM_TRY(visibleEnv(ctx, env));
          // Ordered by process, name and slot; the cursor is the last
          // volume's id, whose position the next page starts after.
          PLFM_ASSIGN_OR_RETURN(
              auto rs,
              ctx.db().exec("SELECT " + kVolumeColumns +
                                " FROM volumes_view WHERE env_id = $1 AND state <> 'deleted' "
                                "AND ($2::text IS NULL OR (process_type, name, slot, volume_id) > "
                                "(SELECT process_type, name, slot, volume_id FROM volumes_view "
                                "WHERE volume_id = $2)) ORDER BY process_type, name, slot, "
                                "volume_id LIMIT $3",
                            {env.str(), page.cursor, page.limit}));
          Json items = rowsToJson(rs);
          Json next = nullptr;
          if (static_cast<int>(items.size()) == page.limit) next = items.back()["volume_id"];
          return jsonResponse(200, {{"items", items}, {"next_cursor", next}});
        });

  route(r, "GET", "/v1/volumes/{volume_id}", Access::kUser, [](Ctx& ctx) -> Result<http::Response> {
    PLFM_ASSIGN_OR_RETURN(auto id, pathId<VolumeId>(ctx.req, "volume_id"));
    PLFM_ASSIGN_OR_RETURN(auto j, visibleVolume(ctx, id));
    return jsonResponse(200, j);
  });

  route(
      r, "POST", "/v1/volumes/{volume_id}/extend", Access::kUser,
      [this](Ctx& ctx) -> Result<http::Response> {
        PLFM_ASSIGN_OR_RETURN(auto id, pathId<VolumeId>(ctx.req, "volume_id"));
        PLFM_ASSIGN_OR_RETURN(auto body, parseBody(ctx.req, {"size", "size_bytes"}));
        PLFM_ASSIGN_OR_RETURN(uint64_t size, parseSize(body));
        PLFM_TRY(visibleVolume(ctx, id));
        return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
          PLFM_ASSIGN_OR_RETURN(VolumeRow v, lockedVolume(*this, tx, id.str()));
          if (v.state == "deleting" || v.state == "deleted") return notLive(v, "extended");
          if (size <= v.size_bytes) {
            const std::string current = manifest::formatVolumeSize(v.size_bytes);
            return Error(apierr::kVolumeNotGrown,
                         "volume " + v.full_name + " is " + current + " (" +
                             std::to_string(v.size_bytes) +
                             " bytes); extend takes a larger size (volumes never shrink)")
                .with("field", body.contains("size") ? "size" : "size_bytes")
                .with("size_bytes", std::to_string(v.size_bytes))
                .with("size", current);
          }
          PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, id.str()));
          Mutation m;
          m.status = 200;
          m.body = v.body;
          m.body["size_bytes"] = size;
          m.body["updated_at"] = toRfc3339(deps_.clock.now());
          m.events = {events::toNewEvent(
              events::VolumeExtendRequested{
                  .volume_id = id.str(), .env_id = v.env, .size_bytes = static_cast<int64_t>(size)},
              next, v.org)};
          return m;
        });
      });

  route(r, "DELETE", "/v1/volumes/{volume_id}", Access::kUser,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto id, pathId<VolumeId>(ctx.req, "volume_id"));
          PLFM_TRY(visibleVolume(ctx, id));
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            PLFM_ASSIGN_OR_RETURN(VolumeRow v, lockedVolume(*this, tx, id.str()));
            Mutation m;
            m.status = 200;
            m.body = v.body;
            // Already on its way out: nothing more to ask.
            if (v.state == "deleting" || v.state == "deleted") return m;
            const std::string& full = v.full_name;
            PLFM_ASSIGN_OR_RETURN(auto user, instanceUsing(tx, v));
            if (user) {
              return Error(plfm::errc::kFailedPrecondition,
                           "volume " + full + " is in use by instance " + *user + " (process " +
                               v.process + ", slot " + std::to_string(v.slot) +
                               "); scale the process to " + std::to_string(v.slot) +
                               " instances or fewer (`vt scale set " + v.process + "=" +
                               std::to_string(v.slot) + "`), or remove the volume from vt.toml " +
                               "and deploy, then delete it")
                  .with("volume_id", id.str())
                  .with("instance_id", *user);
            }
            PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, id.str()));
            m.body["updated_at"] = toRfc3339(deps_.clock.now());
            m.body["state"] = v.node ? "deleting" : "deleted";
            m.events = {volumeDeletion(id.str(), v.env, v.node, next, v.org, "api")};
            return m;
          });
        });
}

}  // namespace plfm::cp
