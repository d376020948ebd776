#include "plfm/net/client_hello.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "hello_builder.h"
#include "plfm/core/process.h"
#include "plfm/net/tls_wire.h"

namespace plfm::net {
namespace {

using testing::Bytes;

Bytes readCapture(const std::string& name) {
  auto text = plfm::readFile(std::string(PLFM_TEST_DIR) + "/test/corpus/clienthello/" + name);
  EXPECT_TRUE(text) << text.error().toString();
  return text ? Bytes(text->begin(), text->end()) : Bytes{};
}

ClientHelloParser parseAll(const Bytes& bytes) {
  ClientHelloParser p;
  p.feed(bytes);
  return p;
}

// Feeds `bytes` in pieces of 1..max_chunk bytes; returns the parser.
ClientHelloParser parseInPieces(const Bytes& bytes, size_t max_chunk, uint64_t seed) {
  std::mt19937_64 rng(seed);
  ClientHelloParser p;
  size_t i = 0;
  while (i < bytes.size() && p.status() == ParseStatus::kNeedMore) {
    const size_t n = std::min(bytes.size() - i, 1 + rng() % max_chunk);
    const FeedResult r = p.feed(std::span<const uint8_t>(bytes).subspan(i, n));
    EXPECT_LE(r.consumed, n);
    if (r.status == ParseStatus::kNeedMore) {
      EXPECT_EQ(r.consumed, n);
    }
    i += r.consumed;
  }
  return p;
}

struct Capture {
  std::string file;
  std::optional<std::string> sni;
  std::vector<std::string> alpn;
  std::vector<uint16_t> offered;
  uint16_t legacy_version = tls::kTls12;
  size_t records = 1;
};

const std::vector<uint16_t> k13to10 = {tls::kTls13, tls::kTls12, tls::kTls11, tls::kTls10};
const std::vector<std::string> kH2H1 = {"h2", "http/1.1"};

// What each real client was asked to send (test/corpus/clienthello/README.md).
const std::vector<Capture>& captures() {
  static const std::vector<Capture> all = {
      {"openssl_tls13_sni.bin", "a.example.com", {}, {tls::kTls13}},
      {"openssl_tls12_sni.bin", "a.example.com", {}, {tls::kTls12}},
      {"openssl_nosni.bin", std::nullopt, {}, k13to10},
      {"openssl_alpn_mixedcase.bin", "Api.Example.COM", kH2H1, k13to10},
      {"openssl_tls10_legacy.bin", "legacy.example.com", {}, {tls::kTls10}, tls::kTls10},
      {"openssl_tls13_ipv6.bin", "v6.example.com", {"h2"}, k13to10},
      {"curl_h2.bin", "a.example.com", kH2H1, k13to10},
      {"curl_http11_tls12.bin", "b.example.com", {"http/1.1"}, {tls::kTls12}},
      {"gnutls.bin", "g.example.com", {"h2"}, k13to10},
      {"python_ssl.bin", "py.example.com", kH2H1, {tls::kTls13, tls::kTls12}},
      {"node_https.bin", "node.example.com", {"http/1.1"}, {tls::kTls13, tls::kTls12}},
      {"split_curl_3_records.bin", "a.example.com", kH2H1, k13to10, tls::kTls12, 3},
      {"split_openssl_handshake_header.bin", "a.example.com", {}, {tls::kTls13}, tls::kTls12, 2},
      {"split_python_40_records.bin",
       "py.example.com",
       kH2H1,
       {tls::kTls13, tls::kTls12},
       tls::kTls12,
       40},
  };
  return all;
}

void expectSameHello(const ClientHello& a, const ClientHello& b) {
  EXPECT_EQ(a.sni, b.sni);
  EXPECT_EQ(a.alpn, b.alpn);
  EXPECT_EQ(a.supported_versions, b.supported_versions);
  EXPECT_EQ(a.legacy_version, b.legacy_version);
  EXPECT_EQ(a.records, b.records);
  EXPECT_EQ(a.bytes, b.bytes);
}

TEST(ClientHelloTest, RealCapturesParse) {
  for (const auto& c : captures()) {
    SCOPED_TRACE(c.file);
    const Bytes bytes = readCapture(c.file);
    ASSERT_FALSE(bytes.empty());
    ClientHelloParser p;
    const FeedResult r = p.feed(bytes);
    ASSERT_EQ(r.status, ParseStatus::kDone) << p.errorName() << ": " << p.errorMessage();
    EXPECT_EQ(r.consumed, bytes.size());
    EXPECT_EQ(p.consumed(), bytes.size());
    const ClientHello& h = p.hello();
    EXPECT_EQ(h.sni, c.sni);
    EXPECT_EQ(h.alpn, c.alpn);
    EXPECT_EQ(h.offeredVersions(), c.offered);
    EXPECT_EQ(h.legacy_version, c.legacy_version);
    EXPECT_EQ(h.records, c.records);
    EXPECT_EQ(h.bytes, bytes.size());
  }
}

TEST(ClientHelloTest, ByteAtATimeAndRandomPiecesGiveTheSameResult) {
  for (const auto& c : captures()) {
    SCOPED_TRACE(c.file);
    const Bytes bytes = readCapture(c.file);
    const ClientHelloParser whole = parseAll(bytes);
    for (size_t max_chunk : {size_t{1}, size_t{3}, size_t{7}, size_t{64}}) {
      const ClientHelloParser pieces = parseInPieces(bytes, max_chunk, max_chunk);
      ASSERT_EQ(pieces.status(), ParseStatus::kDone) << max_chunk;
      EXPECT_EQ(pieces.consumed(), bytes.size());
      expectSameHello(pieces.hello(), whole.hello());
    }
  }
}

TEST(ClientHelloTest, NormalizedSniIsLowerCase) {
  const ClientHelloParser p = parseAll(readCapture("openssl_alpn_mixedcase.bin"));
  EXPECT_EQ(p.hello().sni, "Api.Example.COM");
  EXPECT_EQ(p.hello().normalizedSni(), "api.example.com");
  EXPECT_EQ(ClientHello{}.normalizedSni(), std::nullopt);
}

TEST(ClientHelloTest, HostNameEdges) {
  const std::string label63(63, 'a');
  const std::vector<std::string> hosts = {
      label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b'),  // 253 bytes
      "_acme-challenge.Example-1.COM", "x", "xn--bcher-kva.example"};
  for (const auto& host : hosts) {
    SCOPED_TRACE(host);
    const ClientHelloParser p = parseAll(testing::simpleHello(host));
    ASSERT_EQ(p.status(), ParseStatus::kDone) << p.errorMessage();
    EXPECT_EQ(p.hello().sni, host);
  }
}

TEST(ClientHelloTest, NeverReadsPastTheClientHello) {
  Bytes bytes = readCapture("curl_h2.bin");
  const size_t hello_size = bytes.size();
  // What a TLS 1.3 client may send next: ChangeCipherSpec, then early data.
  testing::append(bytes, Bytes{20, 3, 3, 0, 1, 1, 23, 3, 3, 0, 2, 0xAA, 0xBB});
  ClientHelloParser p;
  const FeedResult r = p.feed(bytes);
  EXPECT_EQ(r.status, ParseStatus::kDone);
  EXPECT_EQ(r.consumed, hello_size);
  // Once done, it takes nothing more.
  const FeedResult again = p.feed(bytes);
  EXPECT_EQ(again.status, ParseStatus::kDone);
  EXPECT_EQ(again.consumed, 0U);
}

TEST(ClientHelloTest, NeedsMoreUntilTheLastRecordEnds) {
  const Bytes bytes = readCapture("split_curl_3_records.bin");
  ClientHelloParser p;
  const FeedResult r = p.feed(std::span<const uint8_t>(bytes).first(bytes.size() - 1));
  EXPECT_EQ(r.status, ParseStatus::kNeedMore);
  EXPECT_EQ(r.consumed, bytes.size() - 1);
  EXPECT_EQ(p.feed(std::span<const uint8_t>(bytes).last(1)).status, ParseStatus::kDone);
}

TEST(ClientHelloTest, HelloWithoutExtensions) {
  testing::HelloSpec spec;
  spec.legacy_version = tls::kTls10;
  spec.has_extensions = false;
  const ClientHelloParser p = parseAll(testing::records(testing::handshake(spec)));
  ASSERT_EQ(p.status(), ParseStatus::kDone) << p.errorMessage();
  EXPECT_EQ(p.hello().sni, std::nullopt);
  EXPECT_EQ(p.hello().offeredVersions(), std::vector<uint16_t>{tls::kTls10});
}

TEST(ClientHelloTest, GreaseIsLeftOutOfOfferedVersions) {
  testing::HelloSpec spec;
  spec.extensions = {testing::versionsExtension({0x7A7A, tls::kTls13, tls::kTls12}),
                     testing::extension(0x1A1A, {})};
  const ClientHelloParser p = parseAll(testing::records(testing::handshake(spec)));
  ASSERT_EQ(p.status(), ParseStatus::kDone) << p.errorMessage();
  EXPECT_EQ(p.hello().supported_versions.size(), 3U);
  EXPECT_EQ(p.hello().offeredVersions(), (std::vector<uint16_t>{tls::kTls13, tls::kTls12}));
  EXPECT_TRUE(tls::isGrease(0xFAFA));
  EXPECT_FALSE(tls::isGrease(0x7A8A));
  EXPECT_EQ(tlsVersionName(0x7A7A), "0x7a7a");
  EXPECT_EQ(tlsVersionName(tls::kTls13), "TLSv1.3");
}

TEST(ClientHelloTest, MaximumSizeAndRecordCountAreAccepted) {
  testing::HelloSpec spec;
  // Pad with an unknown extension up to exactly the limit.
  const size_t base = testing::handshake(spec).size() + 4;
  spec.extensions = {testing::extension(0xFFEE, Bytes(tls::kMaxClientHelloBytes - base, 0))};
  const Bytes hs = testing::handshake(spec);
  ASSERT_EQ(hs.size(), tls::kMaxClientHelloBytes);
  const size_t chunk = (hs.size() + tls::kMaxRecords - 1) / tls::kMaxRecords;
  const ClientHelloParser p = parseAll(testing::records(hs, chunk));
  ASSERT_EQ(p.status(), ParseStatus::kDone) << p.errorMessage();
  EXPECT_EQ(p.hello().records, tls::kMaxRecords);
}

struct Rejected {
  std::string name;
  Bytes bytes;
  HelloError error;
};

Bytes withExtensions(std::vector<Bytes> extensions) {
  testing::HelloSpec spec;
  spec.extensions = std::move(extensions);
  return testing::records(testing::handshake(spec));
}

Bytes rawSni(const Bytes& list_body, size_t extra_length = 0) {
  Bytes data;
  testing::put16(data, list_body.size() + extra_length);
  testing::append(data, list_body);
  return testing::extension(0, data);
}

std::vector<Rejected> rejectedCases() {
  using testing::append;
  using testing::records;
  std::vector<Rejected> cases;
  const Bytes good = testing::simpleHello();
  cases.push_back({"http", Bytes{'G', 'E', 'T', ' ', '/'}, HelloError::kNotTls});
  cases.push_back({"sslv2", Bytes{0x80, 0x2E, 0x01, 0x03, 0x01}, HelloError::kSslV2});
  cases.push_back({"alert first", Bytes{21, 3, 3, 0, 2, 2, 40}, HelloError::kNotTls});
  cases.push_back({"record major 2", Bytes{22, 2, 0}, HelloError::kBadRecord});
  cases.push_back({"record 3.4", Bytes{22, 3, 4}, HelloError::kBadRecord});
  cases.push_back({"zero length record", Bytes{22, 3, 1, 0, 0}, HelloError::kBadRecord});
  cases.push_back({"record over 2^14", Bytes{22, 3, 1, 0x40, 0x01}, HelloError::kBadRecord});
  testing::HelloSpec spec;
  cases.push_back(
      {"server hello", records(testing::handshake(spec, 2)), HelloError::kNotClientHello});
  cases.push_back({"oversized", Bytes{22, 3, 1, 0, 4, 1, 0, 0x40, 0x00}, HelloError::kTooLarge});
  cases.push_back({"too short", Bytes{22, 3, 1, 0, 4, 1, 0, 0, 10}, HelloError::kMalformed});
  cases.push_back(
      {"too many records", records(testing::handshake(spec), 1), HelloError::kTooManyRecords});
  Bytes trailing = testing::handshake(spec);
  trailing.push_back(0);
  cases.push_back({"trailing data", records(trailing), HelloError::kTrailingData});
  Bytes interleaved = records(Bytes(good.begin() + 5, good.begin() + 20));
  append(interleaved, Bytes{21, 3, 3, 0, 2, 1, 0});
  cases.push_back({"interleaved alert", interleaved, HelloError::kBadRecord});

  testing::HelloSpec bad = spec;
  bad.session_id_bytes = 33;
  cases.push_back({"session id 33", records(testing::handshake(bad)), HelloError::kMalformed});
  bad = spec;
  bad.cipher_suite_bytes = 3;
  cases.push_back({"odd cipher suites", records(testing::handshake(bad)), HelloError::kMalformed});
  bad = spec;
  bad.compression_bytes = 0;
  cases.push_back({"no compression", records(testing::handshake(bad)), HelloError::kMalformed});
  Bytes truncated_ext = testing::extension(0xAAAA, Bytes(4, 0));
  truncated_ext.pop_back();
  cases.push_back({"truncated extension", withExtensions({truncated_ext}), HelloError::kMalformed});

  cases.push_back({"duplicate sni",
                   withExtensions({testing::sniExtension("a.example.com"),
                                   testing::sniExtension("b.example.com")}),
                   HelloError::kDuplicateExtension});
  cases.push_back({"duplicate other",
                   withExtensions({testing::extension(10, {}), testing::extension(10, {})}),
                   HelloError::kDuplicateExtension});
  const std::string label63(63, 'a');
  const std::vector<std::string> bad_hosts = {
      "",
      "a b.example.com",
      std::string("a\0b.com", 7),
      "a..b",
      ".a",
      "a.",
      "é.com",
      "a/b",
      "*.example.com",
      std::string(64, 'x') + ".com",
      label63 + "." + label63 + "." + label63 + "." + label63};  // 255 bytes
  for (const auto& host : bad_hosts) {
    cases.push_back({"host '" + host + "'", withExtensions({testing::sniExtension(host)}),
                     HelloError::kBadServerName});
  }
  cases.push_back(
      {"sni name type 1", withExtensions({rawSni({1, 0, 1, 'a'})}), HelloError::kBadServerName});
  cases.push_back({"two host names", withExtensions({rawSni({0, 0, 1, 'a', 0, 0, 1, 'b'})}),
                   HelloError::kBadServerName});
  cases.push_back({"empty sni list", withExtensions({rawSni({})}), HelloError::kBadServerName});
  cases.push_back(
      {"sni list length", withExtensions({rawSni({0, 0, 1, 'a'}, 1)}), HelloError::kBadServerName});
  cases.push_back({"empty sni extension", withExtensions({testing::extension(0, {})}),
                   HelloError::kBadServerName});
  cases.push_back({"empty alpn name", withExtensions({testing::alpnExtension({"h2", ""})}),
                   HelloError::kMalformed});
  cases.push_back({"alpn list length",
                   withExtensions({testing::extension(16, {0, 5, 2, 'h', '2'})}),
                   HelloError::kMalformed});
  cases.push_back({"odd supported_versions", withExtensions({testing::extension(43, {3, 3, 4, 3})}),
                   HelloError::kMalformed});
  return cases;
}

TEST(ClientHelloTest, RejectsMalformedAndOversizedInput) {
  for (const auto& c : rejectedCases()) {
    SCOPED_TRACE(c.name);
    const ClientHelloParser whole = parseAll(c.bytes);
    EXPECT_EQ(whole.status(), ParseStatus::kError);
    EXPECT_EQ(whole.error(), c.error) << whole.errorName() << ": " << whole.errorMessage();
    EXPECT_FALSE(whole.errorMessage().empty());
    // Byte-at-a-time feeding fails the same way, and no later than the whole.
    const ClientHelloParser bytewise = parseInPieces(c.bytes, 1, 0);
    EXPECT_EQ(bytewise.status(), ParseStatus::kError);
    EXPECT_EQ(bytewise.error(), c.error);
    EXPECT_EQ(bytewise.consumed(), whole.consumed());
  }
}

TEST(ClientHelloTest, FailsFastOnTheFirstBadByte) {
  ClientHelloParser p;
  const Bytes http = {'G', 'E', 'T', ' ', '/', ' ', 'H'};
  const FeedResult r = p.feed(http);
  EXPECT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.consumed, 1U);
  EXPECT_EQ(p.errorName(), "not_tls");
  EXPECT_EQ(p.feed(http).consumed, 0U);

  // An oversized length fails on the handshake header, before the body.
  ClientHelloParser big;
  EXPECT_EQ(big.feed(Bytes{22, 3, 1, 0x40, 0, 1, 0, 0x40, 0x00}).status, ParseStatus::kError);
  EXPECT_EQ(big.error(), HelloError::kTooLarge);
}

TEST(ClientHelloTest, MutatedCapturesNeverCrashAndAgreeAcrossFeeding) {
  std::mt19937_64 rng(4242);
  for (const auto& c : captures()) {
    const Bytes original = readCapture(c.file);
    for (int i = 0; i < 200; ++i) {
      Bytes bytes = original;
      const size_t flips = 1 + rng() % 4;
      for (size_t f = 0; f < flips; ++f) bytes[rng() % bytes.size()] = static_cast<uint8_t>(rng());
      const ClientHelloParser whole = parseAll(bytes);
      const ClientHelloParser pieces = parseInPieces(bytes, 1 + rng() % 50, rng());
      ASSERT_EQ(whole.status(), pieces.status()) << c.file << " case " << i;
      ASSERT_EQ(whole.error(), pieces.error());
      ASSERT_EQ(whole.consumed(), pieces.consumed());
      if (whole.status() == ParseStatus::kDone) expectSameHello(whole.hello(), pieces.hello());
    }
  }
}

}  // namespace
}  // namespace plfm::net
