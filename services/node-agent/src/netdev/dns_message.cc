#include "netdev/dns_message.h"

#include <algorithm>
#include <cstring>

namespace plfm::netdev::dns {

namespace {

constexpr std::uint8_t kFlagQr = 0x80;  // byte 2
constexpr std::uint8_t kFlagAa = 0x04;  // byte 2
constexpr std::uint8_t kFlagTc = 0x02;  // byte 2
constexpr std::uint8_t kFlagRd = 0x01;  // byte 2
constexpr std::uint8_t kFlagRa = 0x80;  // byte 3
constexpr std::uint8_t kFlagCd = 0x10;  // byte 3
constexpr std::size_t kMaxName = 255;
constexpr std::size_t kMaxLabel = 63;
constexpr std::string_view kInternal = "internal";

std::uint16_t get16(std::span<const std::uint8_t> w, std::size_t at) {
  return static_cast<std::uint16_t>((w[at] << 8) | w[at + 1]);
}

void put16(std::vector<std::uint8_t>& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}

void put32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  put16(out, static_cast<std::uint16_t>(v >> 16));
  put16(out, static_cast<std::uint16_t>(v));
}

Error formErr(std::string_view why) { return Error(errc::kInvalidArgument, std::string(why)); }

char lower(std::uint8_t c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c); }

// Reads the question's name at `at` (no compression: a query's only name
// comes first, so a pointer can only point back into the header).
Result<std::vector<std::string>> readName(std::span<const std::uint8_t> w, std::size_t& at) {
  std::vector<std::string> labels;
  std::size_t total = 1;
  for (;;) {
    if (at >= w.size()) return formErr("the name runs past the message");
    const std::uint8_t len = w[at++];
    if (len == 0) return labels;
    if ((len & 0xc0) != 0) return formErr("compressed or extended label in the question");
    if (len > kMaxLabel) return formErr("label too long");
    total += 1 + len;
    if (total > kMaxName) return formErr("name too long");
    if (w.size() - at < len) return formErr("the label runs past the message");
    std::string label;
    label.reserve(len);
    for (std::size_t i = 0; i < len; ++i) label.push_back(lower(w[at + i]));
    at += len;
    labels.push_back(std::move(label));
  }
}

// Reads the OPT record of the additional section: root name, type 41.
Result<std::uint16_t> readOpt(std::span<const std::uint8_t> w, std::size_t& at) {
  if (w.size() - at < 11) return formErr("truncated additional record");
  if (w[at] != 0 || get16(w, at + 1) != kTypeOpt) {
    return formErr("the only additional record a query may carry is OPT");
  }
  const std::uint16_t payload = get16(w, at + 3);
  const std::uint16_t rdlen = get16(w, at + 9);
  at += 11;
  if (w.size() - at < rdlen) return formErr("the OPT record runs past the message");
  at += rdlen;
  return payload;
}

void putHeader(std::vector<std::uint8_t>& out, const Query& q, std::uint8_t rcode, bool aa, bool tc,
               std::uint16_t answers) {
  put16(out, q.id);
  out.push_back(static_cast<std::uint8_t>(kFlagQr | (aa ? kFlagAa : 0) | (tc ? kFlagTc : 0) |
                                          (q.recursion_desired ? kFlagRd : 0)));
  out.push_back(static_cast<std::uint8_t>(kFlagRa | (q.checking_disabled ? kFlagCd : 0) | rcode));
  put16(out, 1);
  put16(out, answers);
  put16(out, 0);
  put16(out, q.edns_payload ? 1 : 0);
}

void putOpt(std::vector<std::uint8_t>& out, std::uint16_t payload) {
  out.push_back(0);
  put16(out, kTypeOpt);
  put16(out, payload);
  put32(out, 0);  // extended rcode, version 0, no flags
  put16(out, 0);
}

std::vector<std::uint8_t> reply(const Query& q, std::uint8_t rcode, bool aa,
                                const std::vector<in6_addr>& addrs, std::size_t limit) {
  constexpr std::size_t kRecord = 2 + 2 + 2 + 4 + 2 + 16;  // pointer name, AAAA
  constexpr std::size_t kOpt = 11;
  const std::size_t fixed = kHeaderSize + q.question.size() + (q.edns_payload ? kOpt : 0);
  std::size_t fit = addrs.size();
  if (fixed + fit * kRecord > limit) fit = limit > fixed ? (limit - fixed) / kRecord : 0;
  std::vector<std::uint8_t> out;
  out.reserve(fixed + fit * kRecord);
  putHeader(out, q, rcode, aa, fit < addrs.size(), static_cast<std::uint16_t>(fit));
  out.insert(out.end(), q.question.begin(), q.question.end());
  for (std::size_t i = 0; i < fit; ++i) {
    put16(out, 0xc000 | kHeaderSize);  // the question's name
    put16(out, kTypeAaaa);
    put16(out, kClassIn);
    put32(out, kInternalTtl);
    put16(out, 16);
    out.insert(out.end(), addrs[i].s6_addr, addrs[i].s6_addr + 16);
  }
  if (q.edns_payload) putOpt(out, static_cast<std::uint16_t>(kMaxUdpPayload));
  return out;
}

}  // namespace

std::size_t Query::udpLimit() const {
  if (!edns_payload) return kMinUdpPayload;
  return std::clamp<std::size_t>(*edns_payload, kMinUdpPayload, kMaxUdpPayload);
}

bool Query::internal() const { return !labels.empty() && labels.back() == kInternal; }

Result<Query> parseQuery(std::span<const std::uint8_t> w) {
  if (w.size() < kHeaderSize) return formErr("shorter than a header");
  if (w.size() > kMaxTcpMessage) return formErr("longer than a message");
  Query q;
  q.id = get16(w, 0);
  if ((w[2] & kFlagQr) != 0) return formErr("a response, not a query");
  if (((w[2] >> 3) & 0x0f) != 0)
    return formErr("opcode other than QUERY");  // errorReply says NOTIMP
  q.recursion_desired = (w[2] & kFlagRd) != 0;
  q.checking_disabled = (w[3] & kFlagCd) != 0;
  if (get16(w, 4) != 1) return formErr("not exactly one question");
  if (get16(w, 6) != 0 || get16(w, 8) != 0) return formErr("answer or authority records");
  const std::uint16_t additional = get16(w, 10);
  if (additional > 1) return formErr("more than one additional record");
  std::size_t at = kHeaderSize;
  PLFM_ASSIGN_OR_RETURN(q.labels, readName(w, at));
  if (w.size() - at < 4) return formErr("truncated question");
  q.qtype = get16(w, at);
  q.qclass = get16(w, at + 2);
  at += 4;
  q.question.assign(w.begin() + kHeaderSize, w.begin() + static_cast<std::ptrdiff_t>(at));
  if (additional == 1) {
    PLFM_ASSIGN_OR_RETURN(const std::uint16_t payload, readOpt(w, at));
    q.edns_payload = payload;
  }
  if (at != w.size()) return formErr("trailing bytes");
  return q;
}

std::vector<std::uint8_t> errorReply(std::span<const std::uint8_t> w) {
  if (w.size() < kHeaderSize || (w[2] & kFlagQr) != 0) return {};
  const bool other_opcode = ((w[2] >> 3) & 0x0f) != 0;
  std::vector<std::uint8_t> out{w[0], w[1]};
  out.push_back(static_cast<std::uint8_t>(kFlagQr | (w[2] & 0x78)));  // keep the opcode
  out.push_back(other_opcode ? kRcodeNotImp : kRcodeFormErr);
  out.resize(kHeaderSize, 0);
  return out;
}

ServiceTable::ServiceTable(const std::vector<ServiceEntry>& entries) {
  auto low = [](std::string s) {
    for (char& c : s) c = lower(static_cast<std::uint8_t>(c));
    return s;
  };
  for (const ServiceEntry& e : entries) {
    const std::string app = low(e.app);
    const std::string env = low(e.env);
    auto& addrs = by_name_[Key{e.org_tag, app, env, low(e.process)}];
    for (const in6_addr& a : e.addresses) {
      if (addrs.size() < kMaxAddresses) addrs.push_back(a);
    }
    auto& envs = envs_[{e.org_tag, app}];
    if (std::find(envs.begin(), envs.end(), env) == envs.end()) envs.push_back(env);
  }
}

std::optional<std::vector<in6_addr>> ServiceTable::lookup(
    std::uint32_t org_tag, const std::vector<std::string>& labels) const {
  if (org_tag == 0) return std::nullopt;  // the host, or a guest of the old layout
  std::string env;
  if (labels.size() == 4) {
    env = labels[2];
  } else if (labels.size() == 3) {
    const auto it = envs_.find({org_tag, labels[1]});
    if (it == envs_.end()) return std::nullopt;
    const auto& envs = it->second;
    if (std::find(envs.begin(), envs.end(), "prod") != envs.end()) {
      env = "prod";
    } else if (envs.size() == 1) {
      env = envs.front();
    } else {
      return std::nullopt;
    }
  } else {
    return std::nullopt;
  }
  const auto it = by_name_.find(Key{org_tag, labels[1], env, labels[0]});
  if (it == by_name_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::uint8_t> answerInternal(const Query& q, std::uint32_t org_tag,
                                         const ServiceTable& table, std::size_t limit) {
  const auto addrs = q.qclass == kClassIn ? table.lookup(org_tag, q.labels) : std::nullopt;
  if (!addrs) return reply(q, kRcodeNxDomain, true, {}, limit);
  if (q.qtype != kTypeAaaa) return reply(q, kRcodeNoError, true, {}, limit);  // NODATA
  return reply(q, kRcodeNoError, true, *addrs, limit);
}

std::vector<std::uint8_t> emptyReply(const Query& q, std::uint8_t rcode) {
  return reply(q, rcode, false, {}, kMaxTcpMessage);
}

std::vector<std::uint8_t> forwardQuery(const Query& q, std::uint16_t id) {
  std::vector<std::uint8_t> out;
  put16(out, id);
  out.push_back(q.recursion_desired ? kFlagRd : 0);
  out.push_back(q.checking_disabled ? kFlagCd : 0);
  put16(out, 1);
  put16(out, 0);
  put16(out, 0);
  put16(out, q.edns_payload ? 1 : 0);
  out.insert(out.end(), q.question.begin(), q.question.end());
  if (q.edns_payload) putOpt(out, static_cast<std::uint16_t>(q.udpLimit()));
  return out;
}

bool answersForward(std::span<const std::uint8_t> a, const Query& q, std::uint16_t id) {
  if (a.size() < kHeaderSize + q.question.size()) return false;
  if (get16(a, 0) != id || (a[2] & kFlagQr) == 0 || ((a[2] >> 3) & 0x0f) != 0) return false;
  if (get16(a, 4) != 1) return false;
  // The question as sent; resolvers may echo another case (0x20 encoding).
  const std::size_t name = q.question.size() - 4;
  for (std::size_t i = 0; i < q.question.size(); ++i) {
    const std::uint8_t c = a[kHeaderSize + i];
    if (i < name ? lower(c) != lower(q.question[i]) : c != q.question[i]) return false;
  }
  return true;
}

std::vector<std::uint8_t> relayAnswer(std::span<const std::uint8_t> a, const Query& q) {
  std::vector<std::uint8_t> out(a.begin(), a.end());
  if (out.size() >= 2) {
    out[0] = static_cast<std::uint8_t>(q.id >> 8);
    out[1] = static_cast<std::uint8_t>(q.id);
  }
  return out;
}

}  // namespace plfm::netdev::dns
