// `plfm-ingress inspect-clienthello FILE [--proxy-protocol]`: a debugging view
// of a captured connection start, built from the same parsers the ingress
// runs. The command is a thin wrapper: read the file, call
// inspectClientHello, print the JSON on one line, and exit non-zero when it
// has an "error" key.
//
//   {"sni": "a.example.com", "alpn": ["h2", "http/1.1"],
//    "tls_versions": ["TLSv1.3", "TLSv1.2"], "records": 1}
//   {"error": "bad_server_name: invalid host name"}
//
// "sni" is null without the extension. "tls_versions" lists the offered
// versions (GREASE values left out; the legacy version when the client sends
// no supported_versions). ALPN names that are not printable ASCII appear as
// "0x" and their hex. With proxy_protocol, the capture must start with a
// PROXY header (v2, or v1); its decoded form is added as "proxy":
//   {"version": 2, "command": "PROXY", "source": "203.0.113.7:51234",
//    "destination": "[2001:db8::1]:443", "tlvs": [{"type": 5, "hex": "..."}]}
// Bytes after the ClientHello (the client's next records) are ignored.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>

namespace plfm::net {

[[nodiscard]] nlohmann::json inspectClientHello(std::span<const uint8_t> bytes,
                                                bool proxy_protocol);

}  // namespace plfm::net
