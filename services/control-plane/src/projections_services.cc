// The services feed's version (docs/specs/networking/mesh.md, "Internal
// names"): services_feed_view holds the seq of the last event that changed
// whether an instance serves (servesSql). The projector reads the instance's
// serving state before and after each instance event and bumps the version
// when it differs, so a healthy report, a non-healthy report of a healthy
// instance, a stop, a loss or a drain moves it, and nothing else does. Like
// every applier this takes its values from the event: a rebuild gives the
// same version.
#include "projection_appliers.h"

namespace plfm::cp::projection {

Result<bool> instanceServes(pg::Transaction& tx, const StoredEvent& e) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs, tx.exec(std::string("SELECT 1 FROM instances_view i WHERE i.instance_id = $1 AND ") +
                           std::string(kServesSql),
                       {e.aggregate_id}));
  return rs.rows() > 0;
}

Result<void> bumpServicesVersion(pg::Transaction& tx, int64_t seq) {
  return exec(tx,
              "INSERT INTO services_feed_view (id, version) VALUES (1, $1) ON CONFLICT (id) DO "
              "UPDATE SET version = GREATEST(services_feed_view.version, EXCLUDED.version)",
              {seq});
}

}  // namespace plfm::cp::projection
