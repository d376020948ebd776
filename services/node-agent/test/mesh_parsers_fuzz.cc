// Fuzzes what the mesh reads from outside the agent: the plan's mesh section
// (from the control plane), `wg show dump` and `ip -6 route show` output,
// and peer endpoints. The first byte picks the parser (byte % 4). Beyond not
// crashing: an accepted plan renders a wg configuration of exactly the
// expected lines (no value can add a line or a key), an accepted endpoint
// round-trips, and no dump error quotes the dump's first field (the private
// key).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "netdev/mesh.h"
#include "netdev/mesh_plan.h"
#include "netdev/wg_dump.h"

namespace {
using namespace plfm::netdev;

void checkPlan(std::string_view in) {
  auto j = nlohmann::json::parse(in, nullptr, false);
  auto parsed = parseMeshPlan(j);
  if (!parsed) return;
  const MeshPlan& plan = parsed->plan;
  const std::string conf = renderWgConfig(plan, WgKey{});
  size_t lines = 0;
  for (std::string_view rest = conf; !rest.empty();) {
    const size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) __builtin_trap();  // every line ends
    const std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    ++lines;
    if (line.starts_with("#") || line.empty() || line.front() == '[') continue;
    const size_t eq = line.find(" = ");
    if (eq == std::string_view::npos) __builtin_trap();
    const std::string_view value = line.substr(eq + 3);
    // Only a key's base64 padding may add '=': never a second assignment.
    if (value.find(" = ") != std::string_view::npos) __builtin_trap();
    if (value.find_first_of(" \t\r#") != std::string_view::npos &&
        !line.starts_with("AllowedIPs")) {
      __builtin_trap();
    }
  }
  if (lines != 4 + 7 * plan.peers.size()) __builtin_trap();
  // What plan.json holds parses back to the same plan.
  auto again = parseMeshPlan(plan.toJson());
  if (!again || again->plan.toJson() != plan.toJson()) __builtin_trap();
}

void checkDump(std::string_view in) {
  auto d = parseWgDump(in);
  if (d) return;
  const std::string_view first = in.substr(0, in.find_first_of("\t\n"));
  if (first.size() >= 8 && d.error().toString().find(first) != std::string::npos) {
    __builtin_trap();
  }
}

void checkEndpoint(std::string_view in) {
  auto e = parseWgEndpoint(in);
  if (!e) return;
  const std::string s = e->str();
  if (s.find_first_of(" \t\r\n=#,") != std::string::npos) __builtin_trap();
  auto again = parseWgEndpoint(s);
  if (!again || !(*again == *e)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      checkPlan(in);
      break;
    case 1:
      checkDump(in);
      break;
    case 2:
      (void)parseRouteList(in);
      break;
    default:
      checkEndpoint(in);
      break;
  }
  return 0;
}
