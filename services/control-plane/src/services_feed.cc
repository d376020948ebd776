#include "services_feed.h"

#include "projection_appliers.h"

namespace plfm::cp {
namespace {

using json::Json;

constexpr std::string_view kVersionSql =
    "SELECT coalesce((SELECT version FROM services_feed_view WHERE id = 1), 0)";

// One row per (process, serving address), or one row with a NULL address for
// a process without any; ordered so that a process's rows are adjacent.
std::string servicesSql() {
  return std::string(
             "WITH procs AS (SELECT DISTINCT i.org_id, i.env_id, i.process_type FROM "
             "instances_view i WHERE i.org_id IN (SELECT org_id FROM instances_view WHERE "
             "node_id = $1)) "
             "SELECT t.net_tag, a.name, e.name, p.process_type, s.address FROM procs p "
             "JOIN org_net_tags t ON t.org_id = p.org_id "
             "JOIN envs_view e ON e.env_id = p.env_id "
             "JOIN apps_view a ON a.app_id = e.app_id "
             "LEFT JOIN LATERAL (SELECT i.address, i.instance_id FROM instances_view i "
             "WHERE i.env_id = p.env_id AND i.process_type = p.process_type AND ") +
         std::string(projection::kServesSql) + " ORDER BY i.instance_id LIMIT " +
         std::to_string(kServicesFeedMaxAddresses) +
         ") s ON true ORDER BY t.net_tag, a.name, e.name, p.process_type, s.instance_id";
}

}  // namespace

ServicesFeed::ServicesFeed(std::string conninfo, ProjectionWorker& worker)
    : VersionFeed("services", std::move(conninfo), worker,
                  "SELECT 'services', version FROM services_feed_view WHERE version > $1") {}

Result<int64_t> servicesVersion(pg::Connection& conn) { return readVersion(conn, kVersionSql); }

Result<Json> buildServicesFeed(pg::Connection& conn, const std::string& node_id) {
  PLFM_ASSIGN_OR_RETURN(auto tx, pg::Transaction::begin(conn, pg::Isolation::kRepeatableRead));
  PLFM_TRY(tx.exec("SET TRANSACTION READ ONLY"));
  PLFM_ASSIGN_OR_RETURN(auto head, tx.exec(kVersionSql));
  PLFM_ASSIGN_OR_RETURN(int64_t version, head.int64(0, 0));
  PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec(servicesSql(), {node_id}));
  Json services = Json::array();
  Json addresses = Json::array();
  Json current;  // the process whose addresses are being collected
  for (int r = 0; r < rs.rows(); ++r) {
    PLFM_ASSIGN_OR_RETURN(int64_t tag, rs.int64(r, 0));
    Json process{{"org_tag", tag},
                 {"app", std::string(rs.text(r, 1))},
                 {"env", std::string(rs.text(r, 2))},
                 {"process", std::string(rs.text(r, 3))}};
    if (process != current) {
      if (!current.is_null()) {
        current["addresses"] = std::move(addresses);
        services.push_back(std::move(current));
      }
      current = std::move(process);
      addresses = Json::array();
    }
    if (!rs.isNull(r, 4)) addresses.push_back(std::string(rs.text(r, 4)));
  }
  if (!current.is_null()) {
    current["addresses"] = std::move(addresses);
    services.push_back(std::move(current));
  }
  PLFM_TRY(tx.commit());
  return Json{{"version", version}, {"services", std::move(services)}};
}

}  // namespace plfm::cp
