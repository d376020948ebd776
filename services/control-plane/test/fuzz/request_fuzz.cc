// libFuzzer target for the control plane's request parsing, with no
// database: the JSON limits of parseBody and POST /v1/apps/{app}/releases
// (manifest checked by libs/manifest and rewritten canonically). Beyond "no
// crash, no leak, no UB, no stack overflow" it checks the promises the
// handlers rely on:
//   - a refusal is a 4xx with a message, and invalid_field names its field;
//   - an accepted manifest is canonical: fromJson(m).toJson() == m.
// The first byte picks the mode: 'm' wraps the rest as the manifest of a
// well-formed request (to reach the manifest rules quickly); 'x' is the body
// of POST /v1/instances/{id}/exec (exec_request.h: an accepted command
// reads back from its stored form and encodes as an EXEC_OPEN); 'v' is the
// body of POST /v1/envs/{env_id}/volumes (an accepted volume's full name is
// a name of at most 63 characters, its size within the manifest's range);
// 's' and 'o' are the bodies of a node's snapshot and op reports
// (volume_reports.h: what is accepted holds only checked hex, times and
// reasons); 'r' is the body of POST /v1/envs/{env_id}/routes (api_routes.h:
// an accepted route's hostname is normalized, its ports and names in
// range); anything else is the whole body.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "api.h"
#include "api_releases.h"
#include "api_routes.h"
#include "exec_request.h"
#include "plfm/core/hex.h"
#include "plfm/manifest/manifest.h"
#include "plfm/manifest/volume_rules.h"
#include "plfm/net/hostname.h"
#include "volume_reports.h"

namespace {

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "request_fuzz: broken promise: %s\n", what);
    std::abort();
  }
}

// A refused request is a 4xx, and an invalid_field names its field.
void checkRefusal(const plfm::Error& e) {
  const int status = plfm::cp::statusFor(e.code());
  require(status >= 400 && status < 500, "a refusal is a 4xx");
  require(e.code() != plfm::cp::apierr::kInvalidField || !e.detail("field").empty(),
          "invalid_field names the field");
}

void checkOne(const std::string& body) {
  plfm::http::Request req;
  req.method = "POST";
  req.path = "/v1/apps/app_01jdq3v7k2m9x4c8r6t0w5y1zb/releases";
  static const std::string app = plfm::AppId::generate().str();
  req.params["app_id"] = app;
  req.body = body;
  auto r = plfm::cp::releases::parseCreateRelease(req);
  if (!r) {
    const int status = plfm::cp::statusFor(r.error().code());
    require(status >= 400 && status < 500, "a refusal is a 4xx");
    require(!r.error().message().empty(), "a refusal has a message");
    if (r.error().code() == plfm::cp::apierr::kInvalidField) {
      require(!r.error().detail("field").empty(), "invalid_field names the field");
    }
    return;
  }
  auto again = plfm::manifest::fromJson(r->manifest);
  require(again.has_value(), "the stored manifest reads back");
  require(again->toJson() == r->manifest, "the stored manifest is canonical");
  require(!plfm::json::dump(r->manifest).empty(), "the stored manifest dumps");
}

void checkExec(const std::string& body) {
  auto j = plfm::json::parse(body, plfm::json::kRequestLimits);
  if (!j) return;
  auto r = plfm::cp::parseExecCommand(*j);
  if (!r) {
    require(
        r.error().code() != plfm::cp::apierr::kInvalidField || !r.error().detail("field").empty(),
        "invalid_field names the field");
    return;
  }
  auto again = plfm::cp::parseExecCommand(plfm::cp::execCommandJson(*r));
  require(again.has_value() && *again == *r, "the stored command reads back");
  require(plfm::guest_proto::encode(plfm::cp::toExecOpen(*r), 0x0100).has_value(),
          "an accepted command encodes as an EXEC_OPEN");
}

void checkVolume(const std::string& body) {
  plfm::http::Request req;
  req.method = "POST";
  req.path = "/v1/envs/env_01jdq3v7k2m9x4c8r6t0w5y1zb/volumes";
  req.body = body;
  auto r = plfm::cp::parseCreateVolume(req);
  if (!r) {
    checkRefusal(r.error());
    return;
  }
  require(r->full_name == r->name + "-" + std::to_string(r->slot), "full_name is <name>-<slot>");
  require(r->full_name.size() <= 63 && !plfm::manifest::checkVolumeName(r->name),
          "an accepted volume's names are valid");
  for (char c : r->full_name) {
    require((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-', "full_name is [a-z0-9-]");
  }
  require(!plfm::manifest::checkVolumeSize(r->size_bytes), "the size is within range");
}

void checkRoute(const std::string& body) {
  plfm::http::Request req;
  req.method = "POST";
  req.params["env_id"] = "env_01jdq3v7k2m9x4c8r6t0w5y1zb";
  req.body = body;
  auto r = plfm::cp::routes::parseCreate(req);
  if (!r) {
    checkRefusal(r.error());
    return;
  }
  if (r->protocol == "tcp") {
    require(r->hostname.empty() && r->listener_port != 443, "a tcp route owns a port not 443");
  } else {
    require(r->protocol == "tls-passthrough", "the protocol is tcp or tls-passthrough");
    auto again = plfm::net::normalizeHostname(r->hostname);
    require(again.has_value() && *again == r->hostname, "an accepted hostname is normalized");
  }
  require(r->listener_port >= 1 && r->listener_port <= 65535 && r->target.backend_port >= 1 &&
              r->target.backend_port <= 65535,
          "the ports are 1..65535");
  require(plfm::cp::validProcessName(r->target.process_type), "the process type is a name");
  require(r->target.proxy_protocol == "none" || r->target.proxy_protocol == "v2",
          "proxy_protocol is none or v2");
}

// A refused report names its field; an accepted one holds only checked values.
template <class T>
bool refusedWell(const plfm::Result<T>& r) {
  if (r) return false;
  require(r.error().code() == plfm::cp::apierr::kInvalidField && !r.error().detail("field").empty(),
          "a refused report names its field");
  return true;
}

void checkVolumeReports(const std::string& body, bool snapshot) {
  auto j = plfm::json::parse(body, plfm::json::kRequestLimits);
  if (!j || !j->is_object()) return;
  using plfm::isLowerHex64;
  if (snapshot) {
    auto r = plfm::cp::parseSnapshotReport(*j);
    if (refusedWell(r)) return;
    require(plfm::cp::isVolumeReason(r->reason), "the reason is short and printable");
    if (r->state == "taken") {
      require(isLowerHex64(r->sha256) && plfm::cp::isRfc3339Utc(r->taken_at),
              "a taken snapshot has a hex sha256 and an RFC 3339 time");
    }
    if (r->state == "backed_up") require(isLowerHex64(r->backup_id), "a backup id is hex");
    return;
  }
  auto r = plfm::cp::parseOpReport(*j);
  if (refusedWell(r)) return;
  require(plfm::cp::isVolumeReason(r->reason), "the reason is short and printable");
  require(r->sha256.empty() || isLowerHex64(r->sha256), "a sha256 is hex");
  require(plfm::VolumeId::parse(r->volume_id).has_value() &&
              plfm::SnapshotId::parse(r->snapshot_id).has_value(),
          "the ids are ids");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (!text.empty() && text.front() == 'x') {
    checkExec(text.substr(1));
  } else if (!text.empty() && text.front() == 'v') {
    checkVolume(text.substr(1));
  } else if (!text.empty() && (text.front() == 's' || text.front() == 'o')) {
    checkVolumeReports(text.substr(1), text.front() == 's');
  } else if (!text.empty() && text.front() == 'r') {
    checkRoute(text.substr(1));
  } else if (!text.empty() && text.front() == 'm') {
    checkOne(R"({"image_ref":"r/a:1","image_digest":"sha256:)" + std::string(64, 'a') +
             R"(","manifest":)" + text.substr(1) + "}");
  } else {
    checkOne(text);
  }
  return 0;
}
