#include "netdev/services_feed.h"

#include <arpa/inet.h>

namespace plfm::netdev {

namespace {

constexpr std::int64_t kMaxTag = 4294967294;
constexpr std::size_t kMaxServices = 100000;

bool label(const nlohmann::json& v) {
  if (!v.is_string()) return false;
  const auto& s = v.get_ref<const std::string&>();
  if (s.empty() || s.size() > 63) return false;
  for (const char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

// One service, or why not.
std::string parseEntry(const nlohmann::json& e, dns::ServiceEntry& out) {
  if (!e.is_object()) return "not an object";
  const auto tag = e.find("org_tag");
  if (tag == e.end() || !tag->is_number_integer() || tag->get<std::int64_t>() < 1 ||
      tag->get<std::int64_t>() > kMaxTag) {
    return "bad org_tag";
  }
  out.org_tag = static_cast<std::uint32_t>(tag->get<std::int64_t>());
  for (auto [field, target] : {std::pair{"app", &out.app}, std::pair{"env", &out.env},
                               std::pair{"process", &out.process}}) {
    const auto v = e.find(field);
    if (v == e.end() || !label(*v)) return std::string("bad ") + field;
    *target = v->get_ref<const std::string&>();
  }
  const auto addrs = e.find("addresses");
  if (addrs == e.end() || !addrs->is_array() || addrs->size() > dns::kMaxAddresses) {
    return "bad addresses";
  }
  for (const auto& a : *addrs) {
    in6_addr parsed{};
    if (!a.is_string() ||
        ::inet_pton(AF_INET6, a.get_ref<const std::string&>().c_str(), &parsed) != 1) {
      return "bad address";
    }
    out.addresses.push_back(parsed);
  }
  return {};
}

}  // namespace

Result<ServicesFeed> parseServicesFeed(const nlohmann::json& j) {
  if (!j.is_object()) return Error(errc::kInvalidArgument, "the services feed is not an object");
  const auto version = j.find("version");
  if (version == j.end() || !version->is_number_integer() || version->get<std::int64_t>() < 0) {
    return Error(errc::kInvalidArgument, "the services feed has a bad version");
  }
  const auto services = j.find("services");
  if (services == j.end() || !services->is_array() || services->size() > kMaxServices) {
    return Error(errc::kInvalidArgument, "the services feed has bad services");
  }
  ServicesFeed feed;
  feed.version = version->get<std::int64_t>();
  std::size_t i = 0;
  for (const auto& entry : *services) {
    dns::ServiceEntry e;
    const std::string why = parseEntry(entry, e);
    if (why.empty()) {
      feed.services.push_back(std::move(e));
    } else {
      feed.skipped.push_back("services[" + std::to_string(i) + "]: " + why);
    }
    ++i;
  }
  return feed;
}

}  // namespace plfm::netdev
