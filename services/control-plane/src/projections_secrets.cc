// Appliers of the secrets events (docs/specs/state/event-types.md). The
// events carry key names and ids only, so the views they build never hold
// a value: secret_versions_view (one row per version) and secret_keys_view
// (each current key and the version that last set it).
#include "projection_appliers.h"

namespace plfm::cp::projection {

Result<void> secretsVersionCreated(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::SecretsVersionCreated>());
  const std::string& version = ev.version_id;
  const std::string& env = ev.env_id;
  const int64_t number = ev.number;
  const std::string keys = json::dump(json::Json(ev.keys));
  const std::string set_keys = json::dump(json::Json(ev.set_keys));
  const std::string unset_keys = json::dump(json::Json(ev.unset_keys));
  PLFM_ASSIGN_OR_RETURN(auto inserted,
                        tx.exec("INSERT INTO secret_versions_view (version_id, org_id, env_id, "
                                "number, operation, keys, set_keys, unset_keys, deploy_id, "
                                "created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6::jsonb, "
                                "$7::jsonb, $8::jsonb, $9, $10, $11) "
                                "ON CONFLICT (version_id) DO NOTHING RETURNING 1",
                                {version, ev.org_id, env, number, ev.operation, keys, set_keys,
                                 unset_keys, ev.deploy_id, p.e.occurred_at, p.e.actor}));
  if (inserted.rows() == 0) return ok();  // a replay
  PLFM_TRY(exec(tx,
                "DELETE FROM secret_keys_view WHERE env_id = $1 AND key IN "
                "(SELECT jsonb_array_elements_text($2::jsonb))",
                {env, unset_keys}));
  return exec(tx,
              "INSERT INTO secret_keys_view (env_id, key, version_id, number, updated_at, "
              "updated_by) SELECT $1, k, $2, $3, $4, $5 FROM jsonb_array_elements_text($6::jsonb) "
              "AS k ON CONFLICT (env_id, key) DO UPDATE SET version_id = $2, number = $3, "
              "updated_at = $4, updated_by = $5 WHERE secret_keys_view.number < $3",
              {env, version, number, p.e.occurred_at, p.e.actor, set_keys});
}

}  // namespace plfm::cp::projection
