// restic 0.14's --json output, parsed once into typed values (the agent's
// edge for restic's bytes; scripts/check-json-access). A field of the wrong
// type counts as absent, never as an exception.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::agent {

struct ResticBackupSummary {
  std::string short_id;  // restic 0.14 prints the 8-hex short id only
  uint64_t data_added = 0;
};

// The `"message_type": "summary"` line of `restic backup --json` (JSON
// lines, status lines before it); nullopt when there is none.
[[nodiscard]] std::optional<ResticBackupSummary> parseBackupSummary(std::string_view out);

// From `restic snapshots --json`: the full id of the snapshot whose
// short_id is `short_id`; "" when none is listed.
[[nodiscard]] std::string fullSnapshotId(std::string_view out, std::string_view short_id);

// From `restic forget --json` (an array of groups, each with "remove": an
// array of snapshots or null): the tags of every removed snapshot. Empty
// output is nothing removed; output that is not such JSON is an error.
[[nodiscard]] Result<std::vector<std::vector<std::string>>> removedSnapshotTags(
    std::string_view out);

}  // namespace plfm::agent
