#include "volume_deletion.h"

#include "plfm/events/events.h"

namespace plfm::cp {

NewEvent volumeDeletion(const std::string& volume_id, const std::string& env_id,
                        const std::optional<std::string>& node_id, int next_seq,
                        const std::string& org_id, const std::string& reason) {
  if (!node_id) {
    return events::toNewEvent(
        events::VolumeDeleted{.volume_id = volume_id, .node_id = std::nullopt}, next_seq, org_id);
  }
  return events::toNewEvent(
      events::VolumeDeleteRequested{.volume_id = volume_id, .env_id = env_id, .reason = reason},
      next_seq, org_id);
}

Result<std::vector<NewEvent>> envVolumeDeletions(pg::Transaction& tx, const std::string& env_id,
                                                 const std::string& org_id) {
  PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec("SELECT volume_id, node_id FROM volumes_view WHERE "
                                         "env_id = $1 AND state NOT IN ('deleting', 'deleted') "
                                         "ORDER BY volume_id",
                                         {env_id}));
  std::vector<NewEvent> out;
  if (rs.rows() == 0) return out;
  PLFM_ASSIGN_OR_RETURN(auto locked, EventStore::lockedSeqsOf(tx, rs));
  for (int i = 0; i < rs.rows(); ++i) {
    const std::string& id = locked.ids[static_cast<size_t>(i)];
    const auto node =
        rs.isNull(i, 1) ? std::nullopt : std::optional<std::string>(std::string(rs.text(i, 1)));
    out.push_back(volumeDeletion(id, env_id, node, locked.seqs[id] + 1, org_id, "env_deleted"));
  }
  return out;
}

}  // namespace plfm::cp
