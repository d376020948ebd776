#include "agent/guest_config.h"

#include <charconv>
#include <map>

#include "netdev/tap.h"
#include "plfm/core/strings.h"

namespace plfm::agent {
namespace {

std::optional<uint32_t> parseId(std::string_view s) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

using Entry = std::vector<std::string_view>;

// The colon-separated lines of /etc/passwd or /etc/group.
std::vector<Entry> parseEntries(std::string_view file) {
  std::vector<Entry> out;
  for (auto line : splitLines(file)) {
    if (line.empty() || line.front() == '#') continue;
    Entry fields;
    size_t start = 0;
    while (true) {
      size_t colon = line.find(':', start);
      fields.push_back(
          line.substr(start, colon == std::string_view::npos ? line.npos : colon - start));
      if (colon == std::string_view::npos) break;
      start = colon + 1;
    }
    if (fields.size() >= 3) out.push_back(std::move(fields));
  }
  return out;
}

// The entry whose name (field 0) or, for a numeric key, id (field 2) matches.
const Entry* findEntry(const std::vector<Entry>& entries, std::string_view key) {
  auto id = parseId(key);
  for (const auto& e : entries) {
    if (e[0] == key || (id && parseId(e[2]) == id)) return &e;
  }
  return nullptr;
}

}  // namespace

Result<ResolvedUser> resolveUser(std::string_view user, const UserDb& db) {
  ResolvedUser r;
  if (user.empty()) return r;
  std::string_view uname = user;
  std::string_view gname;
  if (auto colon = user.find(':'); colon != std::string_view::npos) {
    uname = user.substr(0, colon);
    gname = user.substr(colon + 1);
  }
  auto passwd = parseEntries(db.passwd);
  auto groups = parseEntries(db.group);
  const Entry* pw = findEntry(passwd, uname);
  if (auto id = parseId(uname)) {
    r.uid = *id;  // a numeric uid need not be listed
  } else if (pw == nullptr || !parseId((*pw)[2])) {
    return Error(errc::kFailedPrecondition,
                 "the image's user '" + std::string(uname) + "' is not in its /etc/passwd")
        .with("field", "user");
  } else {
    r.uid = *parseId((*pw)[2]);
  }
  if (pw != nullptr && pw->size() >= 4) r.gid = parseId((*pw)[3]).value_or(0);
  if (!gname.empty()) {
    const Entry* gr = findEntry(groups, gname);
    if (auto id = parseId(gname)) {
      r.gid = *id;
    } else if (gr == nullptr || !parseId((*gr)[2])) {
      return Error(errc::kFailedPrecondition,
                   "the image's group '" + std::string(gname) + "' is not in its /etc/group")
          .with("field", "user");
    } else {
      r.gid = *parseId((*gr)[2]);
    }
  }
  // Supplementary groups: every group that lists the user's name as a member.
  std::string_view member = pw != nullptr ? (*pw)[0] : uname;
  for (const auto& g : groups) {
    if (g.size() < 4) continue;
    std::string_view members = g[3];
    size_t start = 0;
    while (start <= members.size()) {
      size_t comma = members.find(',', start);
      auto m =
          members.substr(start, comma == std::string_view::npos ? members.npos : comma - start);
      auto gid = parseId(g[2]);
      if (m == member && gid && *gid != r.gid) r.groups.push_back(*gid);
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
  }
  return r;
}

std::string volumeDriveId(size_t index) { return "vol-" + std::to_string(index); }

Result<guest_proto::Config> guestConfig(const GuestConfigInput& in) {
  const Workload& w = *in.workload;
  const image::ImageConfig& img = *in.image;
  guest_proto::Config c;
  c.instance_id = w.instance_id;
  if (!w.command.empty()) {
    c.argv = w.command;
    c.argv.insert(c.argv.end(), w.args.begin(), w.args.end());
  } else {
    c.argv = img.entrypoint;
    const auto& tail = w.args.empty() ? img.cmd : w.args;
    c.argv.insert(c.argv.end(), tail.begin(), tail.end());
  }
  if (c.argv.empty()) {
    return Error(errc::kFailedPrecondition,
                 "nothing to run: the image has no entrypoint or cmd and the manifest gives no "
                 "command")
        .with("instance_id", w.instance_id);
  }
  // Later entries win: image env, then the manifest's, then the platform's.
  std::map<std::string, std::string> env;
  std::vector<std::string> order;
  auto put = [&](const std::string& k, const std::string& v) {
    if (env.emplace(k, v).second) {
      order.push_back(k);
    } else {
      env[k] = v;
    }
  };
  for (const auto& e : img.env) {
    auto eq = e.find('=');
    put(e.substr(0, eq), eq == std::string::npos ? "" : e.substr(eq + 1));
  }
  if (env.find("PATH") == env.end()) {
    put("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  }
  for (const auto& [k, v] : w.env) put(k, v);
  put("PLFM_INSTANCE_ID", w.instance_id);
  if (!w.app_id.empty()) put("PLFM_APP_ID", w.app_id);
  if (!w.env_id.empty()) put("PLFM_ENV_ID", w.env_id);
  if (!w.release_id.empty()) put("PLFM_RELEASE_ID", w.release_id);
  if (!w.process_type.empty()) put("PLFM_PROCESS_TYPE", w.process_type);
  for (const auto& k : order) c.env.push_back(k + "=" + env[k]);

  c.workdir = img.workdir.empty() ? "/" : img.workdir;
  PLFM_ASSIGN_OR_RETURN(auto user, resolveUser(img.user, in.users));
  c.uid = user.uid;
  c.gid = user.gid;
  c.groups = user.groups;
  // RFC 1123: no underscores. "inst_01j..." becomes "inst-01j...".
  c.hostname = w.instance_id.substr(0, guest_proto::kMaxHostnameBytes);
  std::replace(c.hostname.begin(), c.hostname.end(), '_', '-');
  if (in.with_network && !w.address.empty()) {
    guest_proto::NetworkConfig net;
    auto addr = guest_proto::parseIpv6(w.address);
    if (!addr) return Error(errc::kInvalidArgument, "bad instance address " + w.address);
    net.ipv6_address = *addr;
    net.ipv6_prefix_len = 128;
    auto gw = guest_proto::parseIpv6(w.gateway);
    if (!gw) return Error(errc::kInvalidArgument, "bad gateway " + w.gateway);
    net.ipv6_gateway = *gw;
    net.mtu = static_cast<uint32_t>(w.mtu);
    if (!in.ipv4.empty()) {
      auto v4 = guest_proto::parseIpv4(in.ipv4);
      auto gw4 = guest_proto::parseIpv4(std::string(netdev::kGatewayIpv4));
      if (!v4 || !gw4) return Error(errc::kInvalidArgument, "bad guest IPv4 " + in.ipv4);
      net.ipv4 = guest_proto::Ipv4Config{*v4, 32, *gw4};
    }
    c.network = net;
    if (!in.nameserver.empty()) c.nameservers = {in.nameserver};
  }
  c.shutdown_grace_ms = in.shutdown_grace_ms;
  c.rootfs_device = in.rootfs_device;
  c.scratch_device = in.scratch_device;
  // The i-th volume is the disk with serial vol-<i> (volumeDriveId).
  for (size_t i = 0; i < w.volumes.size(); ++i) {
    c.volumes.push_back({volumeDriveId(i), w.volumes[i].mount, "ext4"});
  }
  if (auto v = guest_proto::validateConfig(c); !v) {
    return Error(errc::kInvalidArgument,
                 "the guest config would be refused: " + v.error().toString())
        .with("instance_id", w.instance_id);
  }
  return c;
}

}  // namespace plfm::agent
