// Deleting volumes (docs/specs/runtime/volume-mounts.md, "Who appends
// what"): a volume placed on a node goes to `deleting` (volume.delete_requested)
// and its node's agent removes the file and reports volume.deleted; a volume
// that was never placed has no file anywhere and is deleted at once
// (volume.deleted with node_id null). Used by env deletion and by the
// volume API.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "event_store.h"
#include "plfm/core/result.h"
#include "plfm/pg/pg.h"

namespace plfm::cp {

// The event that deletes one live volume. `next_seq` is the volume's
// aggregate_seq after it; `reason` is "api" or "env_deleted" (for
// volume.delete_requested).
[[nodiscard]] NewEvent volumeDeletion(const std::string& volume_id, const std::string& env_id,
                                      const std::optional<std::string>& node_id, int next_seq,
                                      const std::string& org_id, const std::string& reason);

// The events that delete every live volume of an env that is not already
// being deleted, in volume id order. Takes the log lock (the aggregate
// seqs come from the log).
[[nodiscard]] Result<std::vector<NewEvent>> envVolumeDeletions(pg::Transaction& tx,
                                                               const std::string& env_id,
                                                               const std::string& org_id);

}  // namespace plfm::cp
