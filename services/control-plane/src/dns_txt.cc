// DNS TXT lookups over libresolv against one configured server (dns_txt.h).
#include "dns_txt.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>

#include <cerrno>
#include <charconv>

#include "plfm/core/error.h"

namespace plfm::cp::dns {
namespace {

// A TCP answer (libresolv retries over TCP when the UDP one is truncated)
// is at most 65535 bytes.
constexpr size_t kMaxMessage = 65535;

Error badResolver(std::string_view server, std::string_view why) {
  return Error(plfm::errc::kInvalidArgument,
               "dns_resolver '" + std::string(server) + "' " + std::string(why) +
                   " (an IPv4 address with an optional port, like "
                   "127.0.0.1:5353; IPv6 resolvers are not supported yet)")
      .with("field", "dns_resolver");
}

Result<sockaddr_in> parseResolver(std::string_view server) {
  std::string_view host = server;
  uint16_t port = NAMESERVER_PORT;
  if (const size_t colon = server.rfind(':'); colon != std::string_view::npos) {
    host = server.substr(0, colon);
    const std::string_view digits = server.substr(colon + 1);
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || value < 1 ||
        value > 65535) {
      return badResolver(server, "has a port that is not 1..65535");
    }
    port = static_cast<uint16_t>(value);
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (host.empty() || host.size() > 15 ||
      inet_pton(AF_INET, std::string(host).c_str(), &addr.sin_addr) != 1) {
    return badResolver(server, "is not an IPv4 address");
  }
  return addr;
}

bool sameName(std::string_view a, std::string_view b) {
  if (!a.empty() && a.back() == '.') a.remove_suffix(1);
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != b[i]) return false;
  }
  return true;
}

Error malformed(std::string_view why) {
  return Error(plfm::errc::kUnavailable,
               "the DNS resolver's answer is malformed: " + std::string(why));
}

}  // namespace

Result<void> checkResolverAddress(std::string_view server) {
  PLFM_TRY(parseResolver(server));
  return ok();
}

Result<std::vector<std::string>> parseTxtAnswer(std::span<const uint8_t> msg,
                                                std::string_view qname) {
  if (msg.size() > kMaxMessage) return malformed("longer than 65535 bytes");
  ns_msg handle{};
  if (ns_initparse(msg.data(), static_cast<int>(msg.size()), &handle) < 0) {
    return malformed("its sections do not fit the message");
  }
  if (ns_msg_getflag(handle, ns_f_qr) != 1) return malformed("it is not a response");
  std::vector<std::string> out;
  const int count = ns_msg_count(handle, ns_s_an);
  for (int i = 0; i < count; ++i) {
    ns_rr rr{};
    if (ns_parserr(&handle, ns_s_an, i, &rr) < 0) return malformed("an answer record is cut");
    if (ns_rr_type(rr) != ns_t_txt || ns_rr_class(rr) != ns_c_in) continue;
    if (!sameName(ns_rr_name(rr), qname)) continue;
    // RFC 1035 3.3.14: one or more <character-string>s, each a length byte
    // and that many bytes, filling the rdata exactly.
    const std::span<const uint8_t> rdata(ns_rr_rdata(rr), ns_rr_rdlen(rr));
    std::string text;
    size_t pos = 0;
    while (pos < rdata.size()) {
      const size_t len = rdata[pos];
      if (len > rdata.size() - pos - 1) return malformed("a TXT string overruns its record");
      text.append(reinterpret_cast<const char*>(rdata.data() + pos + 1), len);
      pos += 1 + len;
    }
    out.push_back(std::move(text));
  }
  return out;
}

Result<std::vector<std::string>> lookupTxt(std::string_view server, std::string_view qname,
                                           std::chrono::seconds timeout) {
  PLFM_ASSIGN_OR_RETURN(sockaddr_in addr, parseResolver(server));
  struct __res_state st {};
  if (res_ninit(&st) != 0) {
    return Error(plfm::errc::kUnavailable, "cannot initialize the DNS resolver library");
  }
  // Only the configured server, one try, no search list, no EDNS.
  st.nscount = 1;
  st.nsaddr_list[0] = addr;
  st.retrans = static_cast<int>(std::max<int64_t>(1, timeout.count()));
  st.retry = 1;
  st.options &= ~(RES_ROTATE | RES_DNSRCH | RES_DEFNAMES | RES_USE_EDNS0 | RES_USE_DNSSEC);
  std::vector<uint8_t> answer(kMaxMessage);
  const std::string name(qname);
  errno = 0;
  const int n = res_nquery(&st, name.c_str(), ns_c_in, ns_t_txt, answer.data(),
                           static_cast<int>(answer.size()));
  const int herr = st.res_h_errno;
  const int err = errno;
  res_nclose(&st);
  const std::string where = "resolver " + std::string(server) + " for TXT " + name;
  if (n < 0) {
    if (herr == HOST_NOT_FOUND || herr == NO_DATA) return std::vector<std::string>{};
    if (err == ETIMEDOUT) {
      return Error(plfm::errc::kDeadlineExceeded, "the DNS " + where + " did not answer within " +
                                                      std::to_string(st.retrans) + "s")
          .with("resolver", std::string(server));
    }
    return Error(plfm::errc::kUnavailable, "the DNS " + where + " failed (" +
                                               (herr == TRY_AGAIN ? "server failure or "
                                                                    "refused"
                                                                  : "no usable answer") +
                                               ")")
        .with("resolver", std::string(server));
  }
  return parseTxtAnswer(std::span<const uint8_t>(answer.data(), static_cast<size_t>(n)), name);
}

}  // namespace plfm::cp::dns
