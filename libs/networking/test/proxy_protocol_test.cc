#include "plfm/net/proxy_protocol.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "plfm/core/process.h"
#include "plfm/core/strings.h"

namespace plfm::net {
namespace {

using Bytes = std::vector<uint8_t>;

const std::string kSig = "0d0a0d0a000d0a515549540a";

Bytes unhex(std::string_view hex) {
  Bytes out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

std::string hex(std::string_view bytes) { return hexEncode(bytes); }

Bytes toBytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

Bytes readVector(const std::string& name) {
  auto text = plfm::readFile(std::string(PLFM_TEST_DIR) + "/test/corpus/proxy_v2/" + name);
  EXPECT_TRUE(text) << text.error().toString();
  return text ? toBytes(*text) : Bytes{};
}

IpEndpoint ep(std::string_view text) {
  auto e = IpEndpoint::parse(text);
  EXPECT_TRUE(e) << text;
  return e.value_or(IpEndpoint{});
}

ProxyHeaderParser decodeAll(const Bytes& bytes, ProxyHeaderParser::Options options = {}) {
  ProxyHeaderParser p(options);
  p.feed(bytes);
  return p;
}

std::string encodeHex(const ProxyHeader& h, ProxyEncodeOptions options = {}) {
  auto r = encodeProxyV2(h, options);
  EXPECT_TRUE(r) << r.error().toString();
  return r ? hex(*r) : std::string();
}

TEST(IpEndpointTest, ParseAndFormat) {
  EXPECT_EQ(ep("192.0.2.1:443").toString(), "192.0.2.1:443");
  EXPECT_EQ(ep("[2001:db8::1]:8443").toString(), "[2001:db8::1]:8443");
  EXPECT_EQ(ep("[::1]:0").ip(), "::1");
  EXPECT_EQ(ep("192.0.2.1:443").toV6().toString(), "[::ffff:192.0.2.1]:443");
  for (const char* bad : {"192.0.2.1", "192.0.2.1:65536", "[::1]", "::1:80", "host:80", "1.2.3.4:x",
                          "[::1]80", "1.2.3.4:"}) {
    EXPECT_FALSE(IpEndpoint::parse(bad)) << bad;
  }
}

TEST(ProxyV2Test, Crc32cCheckValue) {
  const std::string check = "123456789";  // the standard check input
  EXPECT_EQ(crc32c(toBytes(check)), 0xE3069283U);
}

TEST(ProxyV2Test, EncodesTcp4) {
  const auto h = ProxyHeader::tcp(ep("192.0.2.1:51234"), ep("198.51.100.7:443"));
  EXPECT_EQ(encodeHex(h), kSig + "2111000c" + "c0000201" + "c6336407" + "c822" + "01bb");
}

TEST(ProxyV2Test, EncodesTcp6) {
  const auto h = ProxyHeader::tcp(ep("[2001:db8::1]:51234"), ep("[2001:db8::2]:443"));
  EXPECT_EQ(encodeHex(h), kSig + "21210024" + "20010db8000000000000000000000001" +
                              "20010db8000000000000000000000002" + "c822" + "01bb");
}

TEST(ProxyV2Test, MixedFamiliesBecomeIpv6) {
  const auto h = ProxyHeader::tcp(ep("192.0.2.1:51234"), ep("[2001:db8::2]:443"));
  EXPECT_EQ(encodeHex(h), kSig + "21210024" + "00000000000000000000ffffc0000201" +
                              "20010db8000000000000000000000002" + "c822" + "01bb");
}

TEST(ProxyV2Test, EncodesLocal) { EXPECT_EQ(encodeHex(ProxyHeader::local()), kSig + "20000000"); }

TEST(ProxyV2Test, EncodesTlvsAndChecksum) {
  auto h = ProxyHeader::tcp(ep("192.0.2.1:1"), ep("192.0.2.2:2"));
  h.tlvs = {{proxy::kTlvAuthority, "a.example.com"}, {proxy::kTlvUniqueId, "id-1"}};
  const std::string plain = encodeHex(h);
  EXPECT_EQ(plain, kSig + "21110023" + "c0000201c00002020001" + "0002" + "02000d" +
                       hex("a.example.com") + "050004" + hex("id-1"));
  auto with_crc = encodeProxyV2(h, {.crc32c = true});
  ASSERT_TRUE(with_crc);
  const ProxyHeaderParser p = decodeAll(toBytes(*with_crc));
  ASSERT_EQ(p.status(), ParseStatus::kDone) << p.errorMessage();
  ASSERT_EQ(p.header().tlvs.size(), 3U);
  EXPECT_EQ(p.header().tlvs[2].type, proxy::kTlvCrc32c);
}

TEST(ProxyV2Test, EncodeErrors) {
  ProxyHeader h;
  h.family = ProxyFamily::kInet;
  EXPECT_FALSE(encodeProxyV2(h));  // no endpoints
  h = ProxyHeader::tcp(ep("192.0.2.1:1"), ep("192.0.2.2:2"));
  h.tlvs = {{0xE0, std::string(0x10000, 'x')}};
  EXPECT_FALSE(encodeProxyV2(h));
  h.tlvs = {{0xE0, std::string(0xFFF0, 'x')}, {0xE1, std::string(0x100, 'y')}};
  EXPECT_FALSE(encodeProxyV2(h));  // the total does not fit
}

// haproxy 2.6 (Debian bookworm) sent these headers to a capture listener
// (test/corpus/clienthello/README.md). We decode them, and re-encoding gives
// haproxy's bytes exactly, checksum included.
TEST(ProxyV2Test, DecodesAndReproducesHaproxyHeaders) {
  const Bytes v4 = readVector("haproxy_v2_ipv4.bin");
  ProxyHeaderParser p = decodeAll(v4);
  ASSERT_EQ(p.status(), ParseStatus::kDone) << p.errorMessage();
  EXPECT_EQ(p.header().version, 2);
  EXPECT_EQ(p.header().command, ProxyCommand::kProxy);
  EXPECT_EQ(p.header().family, ProxyFamily::kInet);
  EXPECT_EQ(p.header().transport, ProxyTransport::kStream);
  EXPECT_EQ(p.header().source->toString(), "127.0.0.1:34080");
  EXPECT_EQ(p.header().destination->toString(), "127.0.0.1:33743");
  EXPECT_EQ(p.header().clientAddress(), p.header().source);
  EXPECT_EQ(p.header().bytes, v4.size());
  EXPECT_EQ(hex(*encodeProxyV2(p.header())),
            hex(std::string_view(reinterpret_cast<const char*>(v4.data()), v4.size())));

  const Bytes v6 = readVector("haproxy_v2_ipv6_tlvs.bin");
  p = decodeAll(v6);
  ASSERT_EQ(p.status(), ParseStatus::kDone) << p.errorMessage();
  EXPECT_EQ(p.header().family, ProxyFamily::kInet6);
  EXPECT_EQ(p.header().source->toString(), "[::1]:47496");
  EXPECT_EQ(p.header().destination->toString(), "[::1]:48677");
  ASSERT_NE(p.header().findTlv(proxy::kTlvCrc32c), nullptr);  // verified
  ASSERT_NE(p.header().findTlv(proxy::kTlvUniqueId), nullptr);
  EXPECT_EQ(p.header().findTlv(proxy::kTlvUniqueId)->value.size(), 89U);
  EXPECT_EQ(hex(*encodeProxyV2(p.header())),
            hex(std::string_view(reinterpret_cast<const char*>(v6.data()), v6.size())));

  p = decodeAll(readVector("haproxy_v1_ipv4.bin"));
  ASSERT_EQ(p.status(), ParseStatus::kDone) << p.errorMessage();
  EXPECT_EQ(p.header().version, 1);
  EXPECT_EQ(p.header().source->toString(), "127.0.0.1:52880");
  EXPECT_EQ(p.header().destination->toString(), "127.0.0.1:52607");
}

// The other direction, checked once by hand against haproxy 2.6: headers from
// encodeProxyV2 (with a unique-id TLV, with and without CRC32C) were sent to a
// haproxy `bind ... accept-proxy` frontend whose server line had
// `send-proxy`; haproxy accepted them (and dropped a connection whose CRC32C
// was corrupted) and relayed the addresses it decoded as these v1 lines.
TEST(ProxyV2Test, HaproxyDecodedOurHeaders) {
  const struct {
    std::string ours;
    std::string relay;
    std::string source;
    std::string destination;
  } cases[] = {
      {"ours_tcp6_uniqueid_crc.bin", "haproxy_v1_relay_of_our_v6_crc.bin", "[2001:db8::1]:51234",
       "[2001:db8::2]:443"},
      {"ours_tcp4_uniqueid_crc.bin", "haproxy_v1_relay_of_our_v4_crc.bin", "192.0.2.1:51234",
       "198.51.100.7:443"},
      {"ours_mixed_uniqueid.bin", "haproxy_v1_relay_of_our_mixed.bin", "[::ffff:192.0.2.1]:51234",
       "[2001:db8::2]:443"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.ours);
    const ProxyHeaderParser ours = decodeAll(readVector(c.ours));
    const ProxyHeaderParser relay = decodeAll(readVector(c.relay));
    ASSERT_EQ(ours.status(), ParseStatus::kDone) << ours.errorMessage();
    ASSERT_EQ(relay.status(), ParseStatus::kDone) << relay.errorMessage();
    EXPECT_EQ(ours.header().findTlv(proxy::kTlvUniqueId)->value, "plfm-test-1");
    EXPECT_EQ(relay.header().version, 1);
    EXPECT_EQ(ours.header().source->toString(), c.source);
    EXPECT_EQ(ours.header().destination->toString(), c.destination);
    EXPECT_EQ(relay.header().source, ours.header().source);
    EXPECT_EQ(relay.header().destination, ours.header().destination);
    // The committed bytes are what encodeProxyV2 writes today.
    ProxyHeader again = ProxyHeader::tcp(ep(c.source), ep(c.destination));
    again.tlvs = {{proxy::kTlvUniqueId, "plfm-test-1"}};
    const bool crc = ours.header().findTlv(proxy::kTlvCrc32c) != nullptr;
    const Bytes bytes = readVector(c.ours);
    EXPECT_EQ(encodeHex(again, {.crc32c = crc}),
              hex(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size())));
  }
}

TEST(ProxyV2Test, DecodesIncrementallyAndStopsAtTheHeader) {
  Bytes bytes = readVector("haproxy_v2_ipv6_tlvs.bin");
  const size_t header_size = bytes.size();
  bytes.insert(bytes.end(), {22, 3, 1, 0, 5});  // the client's first bytes
  ProxyHeaderParser whole;
  const FeedResult r = whole.feed(bytes);
  EXPECT_EQ(r.status, ParseStatus::kDone);
  EXPECT_EQ(r.consumed, header_size);
  ProxyHeaderParser bytewise;
  size_t consumed = 0;
  for (uint8_t b : bytes) {
    const FeedResult one = bytewise.feed(std::span<const uint8_t>(&b, 1));
    consumed += one.consumed;
    if (one.status != ParseStatus::kNeedMore) break;
  }
  EXPECT_EQ(bytewise.status(), ParseStatus::kDone);
  EXPECT_EQ(consumed, header_size);
  EXPECT_EQ(bytewise.header().tlvs, whole.header().tlvs);
  EXPECT_EQ(bytewise.header().source, whole.header().source);
}

TEST(ProxyV2Test, LocalAndUnspecAndUnix) {
  ProxyHeaderParser p = decodeAll(unhex(kSig + "20000000"));
  ASSERT_EQ(p.status(), ParseStatus::kDone);
  EXPECT_EQ(p.header().command, ProxyCommand::kLocal);
  EXPECT_EQ(p.header().clientAddress(), std::nullopt);

  // LOCAL may still carry an address block (receivers must skip it, §2.2).
  p = decodeAll(unhex(kSig + "2011000c" + "c0000201c00002020001" + "0002"));
  ASSERT_EQ(p.status(), ParseStatus::kDone);
  EXPECT_EQ(p.header().clientAddress(), std::nullopt);
  EXPECT_TRUE(p.header().source);

  ProxyHeader h;
  h.family = ProxyFamily::kUnix;
  h.transport = ProxyTransport::kStream;
  h.unix_source = "/run/a.sock";
  h.unix_destination = "/run/b.sock";
  auto encoded = encodeProxyV2(h);
  ASSERT_TRUE(encoded);
  EXPECT_EQ(encoded->size(), proxy::kV2FixedBytes + proxy::kUnixAddressBytes);
  p = decodeAll(toBytes(*encoded));
  ASSERT_EQ(p.status(), ParseStatus::kDone);
  EXPECT_EQ(p.header().unix_source, "/run/a.sock");
  EXPECT_EQ(p.header().unix_destination, "/run/b.sock");
}

TEST(ProxyV2Test, RandomHeadersRoundTrip) {
  std::mt19937_64 rng(2718);
  for (int i = 0; i < 500; ++i) {
    IpEndpoint src;
    IpEndpoint dst;
    src.v6 = dst.v6 = rng() % 2 == 0;
    for (size_t k = 0; k < (src.v6 ? 16U : 4U); ++k) {
      src.address[k] = static_cast<uint8_t>(rng());
      dst.address[k] = static_cast<uint8_t>(rng());
    }
    src.port = static_cast<uint16_t>(rng());
    dst.port = static_cast<uint16_t>(rng());
    ProxyHeader h = rng() % 5 == 0 ? ProxyHeader::local() : ProxyHeader::tcp(src, dst);
    for (size_t t = rng() % 4; t > 0; --t) {
      std::string value(rng() % 40, '\0');
      for (char& c : value) c = static_cast<char>(rng());
      h.tlvs.push_back({static_cast<uint8_t>(0xE0 + rng() % 16), value});
    }
    const bool crc = rng() % 2 == 0;
    auto encoded = encodeProxyV2(h, {.crc32c = crc});
    ASSERT_TRUE(encoded);
    const ProxyHeaderParser p = decodeAll(toBytes(*encoded));
    ASSERT_EQ(p.status(), ParseStatus::kDone) << i << ": " << p.errorMessage();
    EXPECT_EQ(p.header().command, h.command);
    EXPECT_EQ(p.header().source, h.source);
    EXPECT_EQ(p.header().destination, h.destination);
    EXPECT_EQ(p.header().tlvs.size(), h.tlvs.size() + (crc ? 1 : 0));
    EXPECT_TRUE(std::equal(h.tlvs.begin(), h.tlvs.end(), p.header().tlvs.begin()));
    EXPECT_EQ(p.header().bytes, encoded->size());
    EXPECT_EQ(*encodeProxyV2(p.header()), *encoded);  // canonical
  }
}

struct Bad {
  std::string name;
  Bytes bytes;
  ProxyError error;
};

TEST(ProxyV2Test, RejectsMalformedHeaders) {
  const std::string tcp4 = "c0000201c00002020001" + std::string("0002");
  Bytes crc_bad;
  {
    auto good =
        encodeProxyV2(ProxyHeader::tcp(ep("192.0.2.1:1"), ep("192.0.2.2:2")), {.crc32c = true});
    crc_bad = toBytes(*good);
    crc_bad[18] ^= 1;  // an address byte
  }
  const std::vector<Bad> cases = {
      {"tls", {22, 3, 1}, ProxyError::kNotProxy},
      {"bad signature", unhex("0d0a0d0a000d0a5155495420"), ProxyError::kNotProxy},
      {"version 1 nibble", unhex(kSig + "11"), ProxyError::kBadVersion},
      {"version 3 nibble", unhex(kSig + "31"), ProxyError::kBadVersion},
      {"command 2", unhex(kSig + "22"), ProxyError::kBadCommand},
      {"family 4", unhex(kSig + "2141"), ProxyError::kBadFamily},
      {"transport 3", unhex(kSig + "2113"), ProxyError::kBadFamily},
      {"too large", unhex(kSig + "21110ff1"), ProxyError::kTooLarge},
      {"short ipv4 block", unhex(kSig + "2111000b" + tcp4.substr(0, 22)), ProxyError::kBadAddress},
      {"short ipv6 block", unhex(kSig + "2121000c" + tcp4), ProxyError::kBadAddress},
      {"short unix block", unhex(kSig + "2131000c" + tcp4), ProxyError::kBadAddress},
      {"truncated tlv", unhex(kSig + "2111000d" + tcp4 + "e0"), ProxyError::kBadTlv},
      {"tlv overruns", unhex(kSig + "21110010" + tcp4 + "e0000500"), ProxyError::kBadTlv},
      {"crc wrong size", unhex(kSig + "21110012" + tcp4 + "030003000000"), ProxyError::kBadTlv},
      {"crc mismatch", crc_bad, ProxyError::kBadChecksum},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    ProxyHeaderParser p;
    const FeedResult r = p.feed(c.bytes);
    EXPECT_EQ(r.status, ParseStatus::kError);
    EXPECT_EQ(p.error(), c.error) << p.errorName() << ": " << p.errorMessage();
    EXPECT_FALSE(p.errorMessage().empty());
  }
}

TEST(ProxyV1Test, ParsesStrictly) {
  auto p = decodeAll(toBytes("PROXY TCP6 2001:db8::1 2001:db8::2 51234 443\r\nGET"));
  ASSERT_EQ(p.status(), ParseStatus::kDone) << p.errorMessage();
  EXPECT_EQ(p.header().source->toString(), "[2001:db8::1]:51234");
  EXPECT_EQ(p.header().destination->toString(), "[2001:db8::2]:443");
  EXPECT_EQ(p.header().bytes, 46U);

  p = decodeAll(toBytes("PROXY UNKNOWN\r\n"));
  ASSERT_EQ(p.status(), ParseStatus::kDone);
  EXPECT_EQ(p.header().family, ProxyFamily::kUnspec);
  EXPECT_EQ(p.header().clientAddress(), std::nullopt);
  p = decodeAll(toBytes("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"));
  EXPECT_EQ(p.status(), ParseStatus::kDone);

  const std::string longest =
      "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
      "65535 65535\r\n";
  ASSERT_EQ(longest.size(), proxy::kV1MaxBytes);
  EXPECT_EQ(decodeAll(toBytes(longest)).status(), ParseStatus::kDone);

  const std::vector<std::pair<std::string, ProxyError>> bad = {
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", ProxyError::kBadV1},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", ProxyError::kBadV1},
      {"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", ProxyError::kBadV1},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", ProxyError::kBadV1},
      {"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", ProxyError::kBadV1},
      {"PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n", ProxyError::kBadAddress},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", ProxyError::kBadAddress},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", ProxyError::kBadAddress},
      {"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", ProxyError::kBadAddress},
      {"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", ProxyError::kBadAddress},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", ProxyError::kBadV1},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x01\r\n", ProxyError::kBadV1},
      {"PROXY UNKNOWN " + std::string(100, 'x') + "\r\n", ProxyError::kBadV1},
      {"PROXZ", ProxyError::kNotProxy},
  };
  for (const auto& [text, error] : bad) {
    SCOPED_TRACE(text);
    const ProxyHeaderParser q = decodeAll(toBytes(text));
    EXPECT_EQ(q.status(), ParseStatus::kError);
    EXPECT_EQ(q.error(), error) << q.errorName() << ": " << q.errorMessage();
  }
  const ProxyHeaderParser off =
      decodeAll(toBytes("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), {.accept_v1 = false});
  EXPECT_EQ(off.error(), ProxyError::kV1Disabled);
}

}  // namespace
}  // namespace plfm::net
