#include "db_conninfo.h"

#include <libpq-fe.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <memory>

#include "leadership.h"

namespace plfm::cp {
namespace {

// The bounds of every session over TCP, and the lock session's statement timeout.
constexpr std::string_view kStatementTimeoutMs = "5000";
constexpr std::array<std::pair<std::string_view, std::string_view>, 5> kClientTcp = {{
    {"keepalives", "1"},
    {"keepalives_idle", "2"},
    {"keepalives_interval", "1"},
    {"keepalives_count", "3"},
    {"tcp_user_timeout", "5000"},
}};
constexpr std::string_view kServerTcp =
    " -c tcp_keepalives_idle=2 -c tcp_keepalives_interval=1 -c tcp_keepalives_count=3"
    " -c tcp_user_timeout=5000";

void appendParam(std::string& out, std::string_view key, std::string_view value) {
  if (!out.empty()) out += ' ';
  out += key;
  out += "='";
  for (char c : value) {
    if (c == '\\' || c == '\'') out += '\\';
    out += c;
  }
  out += '\'';
}

// True when any host in `host` (comma-separated) is a TCP host; an empty
// host means the default Unix socket.
bool reachesOverTcp(std::string_view host, std::string_view hostaddr) {
  if (!hostaddr.empty()) return true;
  while (!host.empty()) {
    const size_t comma = host.find(',');
    const std::string_view one = host.substr(0, comma);
    if (!one.empty() && one.front() != '/' && one.front() != '@') return true;
    if (comma == std::string_view::npos) break;
    host.remove_prefix(comma + 1);
  }
  return false;
}

// `conninfo` with the TCP bounds when it goes over TCP, and the lock
// session's statement_timeout when `lock_session`. Applying it twice adds
// nothing twice.
Result<std::string> bounded(const std::string& conninfo, bool lock_session) {
  char* err = nullptr;
  std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> opts(
      PQconninfoParse(conninfo.c_str(), &err), &PQconninfoFree);
  if (!opts) {
    std::string msg = err != nullptr ? err : "out of memory";
    PQfreemem(err);
    return Error(plfm::errc::kInvalidArgument, "the database connection string is invalid: " + msg)
        .with("field", "database");
  }
  std::string host;
  std::string hostaddr;
  std::string options;
  std::string out;
  bool named = false;
  for (PQconninfoOption* o = opts.get(); o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    const std::string_view key = o->keyword;
    if (key == "host") host = o->val;
    if (key == "hostaddr") hostaddr = o->val;
    if (key == "application_name") named = true;
    if (key == "options") {
      options = o->val;
      continue;
    }
    const bool ours = std::any_of(kClientTcp.begin(), kClientTcp.end(),
                                  [&](const auto& kv) { return kv.first == key; });
    if (!ours) appendParam(out, key, o->val);
  }
  // No host in the string: libpq takes PGHOST / PGHOSTADDR from the
  // environment, which may well name a TCP host.
  if (host.empty() && hostaddr.empty()) {
    const char* env_host = std::getenv("PGHOST");          // NOLINT(concurrency-mt-unsafe)
    const char* env_hostaddr = std::getenv("PGHOSTADDR");  // NOLINT(concurrency-mt-unsafe)
    if (env_host != nullptr) host = env_host;
    if (env_hostaddr != nullptr) hostaddr = env_hostaddr;
  }
  if (lock_session) {
    options += " -c statement_timeout=";
    options += kStatementTimeoutMs;
  }
  if (reachesOverTcp(host, hostaddr)) {
    for (const auto& [key, value] : kClientTcp) appendParam(out, key, value);
    if (options.find(kServerTcp) == std::string::npos) options += kServerTcp;
  }
  if (!options.empty()) appendParam(out, "options", options);
  if (lock_session && !named) appendParam(out, "application_name", "plfm-leadership");
  return out;
}

}  // namespace

Result<std::string> tcpBoundedConninfo(const std::string& conninfo) {
  return bounded(conninfo, false);
}

Result<std::string> lockSessionConninfo(const std::string& conninfo) {
  return bounded(conninfo, true);
}

}  // namespace plfm::cp
