// Health checks the agent runs against an instance from the host, over the
// instance's IPv6 address (the manifest's [checks]: tcp or http; exec needs the
// exec channel and is reported as passing once the workload runs).
#pragma once

#include <chrono>
#include <string>

#include "plfm/core/result.h"

namespace plfm::agent {

// Connects to [address]:port; success once the TCP handshake completes.
[[nodiscard]] Result<void> checkTcp(const std::string& address, int port,
                                    std::chrono::milliseconds timeout);

// GET path over HTTP/1.1 (plain TCP); success on a 2xx or 3xx status.
[[nodiscard]] Result<void> checkHttp(const std::string& address, int port, const std::string& path,
                                     std::chrono::milliseconds timeout);

}  // namespace plfm::agent
