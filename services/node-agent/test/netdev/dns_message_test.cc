// The internal-name responder's messages (docs/specs/networking/mesh.md,
// "Internal names"): query parsing, answers per org tag, forwarding checks.
#include "netdev/dns_message.h"

#include "support/dns_query.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace plfm::netdev::dns {
namespace {

using Bytes = std::vector<std::uint8_t>;

in6_addr addr(const char* text) {
  in6_addr a{};
  EXPECT_EQ(inet_pton(AF_INET6, text, &a), 1) << text;
  return a;
}

Bytes query(const std::string& name, std::uint16_t type, std::uint16_t edns = 0,
            std::uint16_t id = 0x1234) {
  return testing::dnsQuery(name, type, edns, id);
}

Query parsed(const Bytes& b) {
  auto q = parseQuery(b);
  EXPECT_TRUE(q.has_value()) << q.error().toString();
  return q.value_or(Query{});
}

bool same(const in6_addr& a, const char* b) {
  const in6_addr x = addr(b);
  return std::memcmp(a.s6_addr, x.s6_addr, 16) == 0;
}

std::uint8_t rcode(const Bytes& r) { return r.size() > 3 ? r[3] & 0x0f : 0xff; }
std::uint16_t count(const Bytes& r, std::size_t at) {
  return static_cast<std::uint16_t>((r[at] << 8) | r[at + 1]);
}

// Org 7 has hello (prod and staging) and api (only dev); org 9 has hello.
ServiceTable table() {
  return ServiceTable({
      {7, "hello", "prod", "web", {addr("fd7a::1:0:7:0:2"), addr("fd7a::2:0:7:0:2")}},
      {7, "hello", "staging", "web", {addr("fd7a::1:0:7:0:3")}},
      {7, "hello", "prod", "worker", {}},
      {7, "api", "dev", "web", {addr("fd7a::1:0:7:0:4")}},
      {9, "hello", "prod", "web", {addr("fd7a::1:0:9:0:2")}},
  });
}

std::vector<in6_addr> answers(const Bytes& r, std::size_t question_size) {
  std::vector<in6_addr> out;
  std::size_t at = kHeaderSize + question_size;
  for (std::uint16_t i = 0; i < count(r, 6); ++i) {
    EXPECT_EQ(count(r, at), 0xc00c);
    EXPECT_EQ(count(r, at + 2), kTypeAaaa);
    EXPECT_EQ(count(r, at + 8), 5);  // TTL low half
    in6_addr a{};
    std::copy(r.begin() + static_cast<std::ptrdiff_t>(at + 12),
              r.begin() + static_cast<std::ptrdiff_t>(at + 28), a.s6_addr);
    out.push_back(a);
    at += 28;
  }
  return out;
}

TEST(DnsMessage, ParsesAQueryLowercasedWithItsQuestionAsSent) {
  const Query q = parsed(query("Web.HELLO.internal", kTypeAaaa, 1232));
  EXPECT_EQ(q.id, 0x1234);
  EXPECT_TRUE(q.recursion_desired);
  EXPECT_EQ(q.labels, (std::vector<std::string>{"web", "hello", "internal"}));
  EXPECT_TRUE(q.internal());
  EXPECT_EQ(q.qtype, kTypeAaaa);
  EXPECT_EQ(q.edns_payload, 1232);
  EXPECT_EQ(q.udpLimit(), 1232U);
  EXPECT_EQ(q.question[1], 'W');  // echoed as sent
  EXPECT_FALSE(parsed(query("example.com", kTypeA)).internal());
  EXPECT_EQ(parsed(query("example.com", kTypeA)).udpLimit(), 512U);
}

TEST(DnsMessage, RefusesMalformedQueries) {
  Bytes b = query("web.hello.internal", kTypeAaaa);
  EXPECT_FALSE(parseQuery(Bytes(b.begin(), b.begin() + 11)).has_value());  // short header
  EXPECT_FALSE(parseQuery(Bytes(b.begin(), b.end() - 1)).has_value());     // truncated
  Bytes trailing = b;
  trailing.push_back(0);
  EXPECT_FALSE(parseQuery(trailing).has_value());
  Bytes two = b;
  two[5] = 2;
  EXPECT_FALSE(parseQuery(two).has_value());
  Bytes response = b;
  response[2] |= 0x80;
  EXPECT_FALSE(parseQuery(response).has_value());
  EXPECT_TRUE(errorReply(response).empty());  // never answer a response
  // A compression pointer in the question (to the header).
  Bytes pointer{0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x00, 0, 28, 0, 1};
  EXPECT_FALSE(parseQuery(pointer).has_value());
  EXPECT_FALSE(parseQuery(query(std::string(64, 'a') + ".internal", kTypeAaaa)).has_value());
  std::string long_name;
  for (int i = 0; i < 5; ++i) long_name += std::string(60, 'a') + ".";
  EXPECT_FALSE(parseQuery(query(long_name + "x", kTypeAaaa)).has_value());
  Bytes answer_record = b;
  answer_record[7] = 1;
  EXPECT_FALSE(parseQuery(answer_record).has_value());
}

TEST(DnsMessage, ErrorReplyIsFormErrWithTheIdOrNotImp) {
  Bytes b = query("x.internal", kTypeAaaa);
  b[5] = 0;  // no question
  const Bytes r = errorReply(b);
  ASSERT_EQ(r.size(), kHeaderSize);
  EXPECT_EQ(count(r, 0), 0x1234);
  EXPECT_EQ(r[2] & 0x80, 0x80);
  EXPECT_EQ(rcode(r), kRcodeFormErr);
  Bytes notify = query("x.internal", kTypeAaaa);
  notify[2] = 0x20;  // opcode 4
  EXPECT_FALSE(parseQuery(notify).has_value());
  EXPECT_EQ(rcode(errorReply(notify)), kRcodeNotImp);
  EXPECT_TRUE(errorReply(Bytes{1, 2, 3}).empty());
}

TEST(DnsMessage, AnswersTheCallersOrgOnly) {
  const ServiceTable t = table();
  const Bytes b = query("WEB.hello.internal", kTypeAaaa);
  const Query q = parsed(b);
  const Bytes mine = answerInternal(q, 7, t, q.udpLimit());
  EXPECT_EQ(rcode(mine), kRcodeNoError);
  EXPECT_EQ(mine[2] & 0x04, 0x04);  // authoritative
  const auto got = answers(mine, q.question.size());
  ASSERT_EQ(got.size(), 2U);  // prod, not staging
  EXPECT_TRUE(same(got[1], "fd7a::2:0:7:0:2"));
  const auto other = answers(answerInternal(q, 9, t, 512), q.question.size());
  ASSERT_EQ(other.size(), 1U);
  EXPECT_TRUE(same(other[0], "fd7a::1:0:9:0:2"));

  // Another org's name is exactly a missing name.
  const Query api = parsed(query("web.api.internal", kTypeAaaa));
  const Query missing = parsed(query("web.apj.internal", kTypeAaaa));
  const Bytes foreign = answerInternal(api, 9, t, 512);
  EXPECT_EQ(rcode(foreign), kRcodeNxDomain);
  Bytes expected = answerInternal(missing, 9, t, 512);
  std::copy(api.question.begin(), api.question.end(), expected.begin() + kHeaderSize);
  EXPECT_EQ(foreign, expected);
  EXPECT_EQ(rcode(answerInternal(q, 0, t, 512)), kRcodeNxDomain);  // tag 0: nobody's
}

TEST(DnsMessage, NamesEnvsAndNoData) {
  const ServiceTable t = table();
  auto answer = [&](const std::string& name, std::uint16_t type) {
    const Query q = parsed(query(name, type));
    return answerInternal(q, 7, t, 512);
  };
  EXPECT_EQ(count(answer("web.hello.staging.internal", kTypeAaaa), 6), 1);
  EXPECT_EQ(count(answer("web.api.internal", kTypeAaaa), 6), 1);  // the only env
  EXPECT_EQ(rcode(answer("web.hello.dev.internal", kTypeAaaa)), kRcodeNxDomain);
  EXPECT_EQ(rcode(answer("hello.internal", kTypeAaaa)), kRcodeNxDomain);
  EXPECT_EQ(rcode(answer("a.web.hello.prod.internal", kTypeAaaa)), kRcodeNxDomain);
  const Bytes a = answer("web.hello.internal", kTypeA);
  EXPECT_EQ(rcode(a), kRcodeNoError);
  EXPECT_EQ(count(a, 6), 0);  // NODATA
  const Bytes none = answer("worker.hello.internal", kTypeAaaa);
  EXPECT_EQ(rcode(none), kRcodeNoError);
  EXPECT_EQ(count(none, 6), 0);
}

TEST(DnsMessage, TruncatesToTheLimitAndSetsTc) {
  std::vector<in6_addr> many(64, addr("fd7a::1:0:7:0:2"));
  const ServiceTable t({{7, "big", "prod", "web", many}});
  const Query q = parsed(query("web.big.internal", kTypeAaaa));
  const Bytes udp = answerInternal(q, 7, t, q.udpLimit());
  EXPECT_LE(udp.size(), 512U);
  EXPECT_EQ(udp[2] & 0x02, 0x02);
  const Bytes tcp = answerInternal(q, 7, t, kMaxTcpMessage);
  EXPECT_EQ(count(tcp, 6), 64);
  EXPECT_EQ(tcp[2] & 0x02, 0);
  const Query e = parsed(query("web.big.internal", kTypeAaaa, 4096));
  const Bytes edns = answerInternal(e, 7, t, e.udpLimit());
  EXPECT_LE(edns.size(), kMaxUdpPayload);
  EXPECT_GT(count(edns, 6), 16);
  EXPECT_EQ(count(edns, 10), 1);  // the OPT record
}

TEST(DnsMessage, ForwardsWithAFreshIdAndChecksTheAnswer) {
  const Query q = parsed(query("Example.com", kTypeA, 0, 0x1111));
  const Bytes f = forwardQuery(q, 0xbeef);
  ASSERT_TRUE(parseQuery(f).has_value());
  EXPECT_EQ(count(f, 0), 0xbeef);
  Bytes answer = f;
  answer[2] |= 0x80;
  EXPECT_TRUE(answersForward(answer, q, 0xbeef));
  EXPECT_FALSE(answersForward(answer, q, 0xbeee));
  EXPECT_FALSE(answersForward(f, q, 0xbeef));  // not a response
  Bytes other_case = answer;
  other_case[kHeaderSize + 1] = 'e';
  EXPECT_TRUE(answersForward(other_case, q, 0xbeef));
  Bytes other_name = answer;
  other_name[kHeaderSize + 2] = 'y';
  EXPECT_FALSE(answersForward(other_name, q, 0xbeef));
  Bytes other_type = answer;
  other_type[kHeaderSize + q.question.size() - 3] = 28;
  EXPECT_FALSE(answersForward(other_type, q, 0xbeef));
  EXPECT_FALSE(answersForward(Bytes(answer.begin(), answer.begin() + 14), q, 0xbeef));
  EXPECT_EQ(count(relayAnswer(answer, q), 0), 0x1111);
}

}  // namespace
}  // namespace plfm::netdev::dns
