#include "plfm/guest_proto/messages.h"

#include <gtest/gtest.h>

#include <string>

#include "one_frame.h"

namespace plfm::guest_proto {
namespace {

using testing::oneFrame;

Config fullConfig() {
  Config c;
  c.instance_id = "inst_01HZY";
  c.argv = {"/bin/app", "--serve", ""};
  c.env = {"PATH=/usr/bin:/bin", "EMPTY=", "A=b=c"};
  c.workdir = "/srv";
  c.uid = 1000;
  c.gid = 1001;
  c.groups = {1001, 27};
  c.hostname = "web-1.example";
  NetworkConfig n;
  n.ipv6_address = *parseIpv6("2001:db8:1:2::5");
  n.mtu = 1420;
  n.ipv4 = Ipv4Config{*parseIpv4("10.0.0.5"), 24, *parseIpv4("10.0.0.1")};
  c.network = n;
  c.secrets_file = std::string("# plfm-secrets v1\nTOKEN=\"x\"\n");
  c.secrets_as_env = true;
  c.shutdown_grace_ms = 2500;
  c.host_time_ns = 1'800'000'000'000'000'000;
  c.nameservers = {"2001:4860:4860::8888", "9.9.9.9"};
  return c;
}

NetworkConfig netFor(std::string_view address, uint32_t mtu = kDefaultMtu) {
  NetworkConfig n;
  n.ipv6_address = *parseIpv6(address);
  n.mtu = mtu;
  return n;
}

Result<Config> roundTrip(const Config& c) {
  auto bytes = encode(c);
  if (!bytes) return tl::unexpected(bytes.error());
  const Frame frame = oneFrame(*bytes);
  return decodeConfig(frame.payload);
}

TEST(MessagesTest, ConfigRoundTrips) {
  const Config c = fullConfig();
  auto back = roundTrip(c);
  ASSERT_TRUE(back.has_value()) << back.error().toString();
  EXPECT_EQ(*back, c);
}

TEST(MessagesTest, MinimalConfigGetsDefaults) {
  Config c;
  c.argv = {"/init-me"};
  auto back = roundTrip(c);
  ASSERT_TRUE(back.has_value()) << back.error().toString();
  EXPECT_EQ(back->workdir, "/");
  EXPECT_EQ(back->rootfs_device, "/dev/vda");
  EXPECT_EQ(back->scratch_device, "/dev/vdb");
  EXPECT_EQ(back->shutdown_grace_ms, kDefaultShutdownGraceMs);
  EXPECT_FALSE(back->network.has_value());
  EXPECT_FALSE(back->secrets_file.has_value());
}

TEST(MessagesTest, NetworkDefaultsToLinkLocalGateway) {
  Config c;
  c.argv = {"/a"};
  c.network = netFor("2001:db8::1");
  auto back = roundTrip(c);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(formatIpv6(back->network->ipv6_gateway), "fe80::1");
  EXPECT_EQ(back->network->ipv6_prefix_len, 128);
  EXPECT_EQ(back->network->mtu, 1500u);
}

TEST(MessagesTest, ConfigValidation) {
  auto expectInvalid = [](const Config& c, ErrorCode code) {
    auto r = encode(c);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, code) << r.error().toString();
  };
  Config base;
  base.argv = {"/a"};
  Config c = base;
  c.argv.clear();
  expectInvalid(c, ErrorCode::kMissingField);
  c = base;
  c.argv = {""};
  expectInvalid(c, ErrorCode::kInvalidValue);
  c = base;
  c.argv = {std::string("/a\0b", 4)};
  expectInvalid(c, ErrorCode::kInvalidValue);
  c = base;
  c.env = {"NOEQUALS"};
  expectInvalid(c, ErrorCode::kInvalidValue);
  c = base;
  c.env = {"=x"};
  expectInvalid(c, ErrorCode::kInvalidValue);
  c = base;
  c.workdir = "srv";
  expectInvalid(c, ErrorCode::kInvalidValue);
  c = base;
  c.hostname = "-bad";
  expectInvalid(c, ErrorCode::kInvalidValue);
  c = base;
  c.hostname = std::string(65, 'a');
  expectInvalid(c, ErrorCode::kInvalidValue);
  c = base;
  c.hostname = "a..b";
  expectInvalid(c, ErrorCode::kInvalidValue);
  c = base;
  c.network = NetworkConfig{};
  expectInvalid(c, ErrorCode::kInvalidValue);  // :: is not unicast
  c = base;
  c.network = netFor("2001:db8::1", 576);
  expectInvalid(c, ErrorCode::kInvalidValue);
  c = base;
  c.network = netFor("ff02::1");
  expectInvalid(c, ErrorCode::kInvalidValue);
  c = base;
  c.rootfs_device = "/etc/passwd";
  expectInvalid(c, ErrorCode::kInvalidValue);
  c = base;
  c.scratch_device = "/dev/../etc";
  expectInvalid(c, ErrorCode::kInvalidValue);
  c = base;
  c.groups.assign(kMaxGroups + 1, 5);
  expectInvalid(c, ErrorCode::kOversized);
  c = base;
  c.nameservers = {"dns.example"};
  expectInvalid(c, ErrorCode::kInvalidValue);
  c = base;
  c.nameservers.assign(kMaxNameservers + 1, "::1");
  expectInvalid(c, ErrorCode::kOversized);
}

using testing::tlv;

TEST(MessagesTest, ConfigDecoderRejectsStructuralErrors) {
  const std::string argv = tlv(2, "/a");
  struct Case {
    std::string payload;
    ErrorCode code;
  };
  const Case cases[] = {
      {"", ErrorCode::kMissingField},
      {argv + std::string("\x00\x02\x00", 3), ErrorCode::kMalformed},                // cut header
      {argv + std::string("\x00\x04\x00\x00\x00\x09/x", 8), ErrorCode::kMalformed},  // past end
      {argv + tlv(4, "/") + tlv(4, "/"), ErrorCode::kDuplicateField},
      {argv + tlv(99, "x"), ErrorCode::kUnknownField},
      {argv + tlv(5, "abc"), ErrorCode::kMalformed},                             // uid size
      {argv + tlv(9, std::string(15, '\1')), ErrorCode::kMalformed},             // ipv6 size
      {argv + tlv(12, std::string("\0\0\5\xdc", 4)), ErrorCode::kMissingField},  // mtu, no ipv6
      {argv + tlv(13, std::string("\x0a\0\0\1", 4)), ErrorCode::kMissingField},  // ipv4 only
      {argv + tlv(17, "\x02"), ErrorCode::kInvalidValue},
  };
  for (const Case& c : cases) {
    auto r = decodeConfig(c.payload);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, c.code) << r.error().toString();
  }
}

TEST(MessagesTest, VolumesRoundTripInOrder) {
  Config c;
  c.argv = {"/a"};
  // The second serial as Firecracker makes one (st_dev st_rdev st_ino).
  c.volumes = {{"vol-0", "/data", "ext4"},
               {"vol-15", "/var/lib/app db", "ext4"},
               {"20490012345678", "/srv", "ext4"}};
  auto back = roundTrip(c);
  ASSERT_TRUE(back.has_value()) << back.error().toString();
  EXPECT_EQ(back->volumes, c.volumes);
}

TEST(MessagesTest, VolumeRulesHoldAtEncodeAndDecode) {
  auto problem = [](const VolumeMount& v) {
    Config c;
    c.argv = {"/a"};
    c.volumes = {v};
    auto r = encode(c);
    EXPECT_FALSE(r.has_value()) << v.serial << " " << v.mount;
    // The decoder applies the same rules to what a host sends.
    const std::string payload =
        tlv(2, "/a") + tlv(23, tlv(1, v.serial) + tlv(2, v.mount) + tlv(3, v.fs));
    auto d = decodeConfig(payload);
    EXPECT_FALSE(d.has_value()) << v.serial << " " << v.mount;
    return d ? ErrorCode::kMalformed : d.error().code;
  };
  for (const char* serial : {"vol-16", "vol-07", "vol-", "vol-a", "vda", "vol-100", "",
                             "123456789012345678901", "12a"}) {
    EXPECT_EQ(problem({serial, "/data", "ext4"}), ErrorCode::kInvalidValue);
  }
  for (const char* mount : {"", "data", "/", "/proc", "/proc/x", "/sys", "/dev/shm", "/run",
                            "/run/secrets", "/data/", "/a//b", "/a/./b", "/a/../b", "/a\x01"}) {
    EXPECT_EQ(problem({"vol-0", mount, "ext4"}), ErrorCode::kInvalidValue) << mount;
  }
  EXPECT_EQ(problem({"vol-0", std::string("/a\0b", 4), "ext4"}), ErrorCode::kInvalidValue);
  EXPECT_EQ(problem({"vol-0", "/data", "xfs"}), ErrorCode::kInvalidValue);
  // Lookalikes of the reserved trees are fine.
  EXPECT_EQ(volumeMountProblem("/procedures"), "");
  EXPECT_EQ(volumeMountProblem("/srv/run"), "");

  Config c;
  c.argv = {"/a"};
  c.volumes = {{"vol-0", "/data", "ext4"}, {"vol-0", "/other", "ext4"}};
  EXPECT_FALSE(encode(c).has_value());  // a serial twice
  c.volumes = {{"vol-0", "/data", "ext4"}, {"vol-1", "/data", "ext4"}};
  EXPECT_FALSE(encode(c).has_value());  // a mount twice
  c.volumes.clear();
  for (size_t i = 0; i <= kMaxVolumes; ++i) {
    c.volumes.push_back({"vol-" + std::to_string(i % 16), "/v" + std::to_string(i), "ext4"});
  }
  auto r = encode(c);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kOversized);
}

TEST(MessagesTest, VolumeFieldIsStrict) {
  const std::string argv = tlv(2, "/a");
  const std::string serial = tlv(1, "vol-0");
  const std::string mount = tlv(2, "/data");
  const std::string fs = tlv(3, "ext4");
  struct Case {
    std::string volume;
    ErrorCode code;
  };
  const Case cases[] = {
      {serial + mount, ErrorCode::kMissingField},
      {serial + mount + fs + fs, ErrorCode::kDuplicateField},
      {serial + mount + fs + tlv(4, "x"), ErrorCode::kUnknownField},
      {serial + std::string("\x00\x02\x00", 3), ErrorCode::kMalformed},
  };
  for (const Case& c : cases) {
    auto r = decodeConfig(argv + tlv(23, c.volume));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, c.code) << r.error().toString();
  }
  auto ok = decodeConfig(argv + tlv(23, fs + mount + serial));  // any order
  ASSERT_TRUE(ok.has_value()) << ok.error().toString();
  EXPECT_EQ(ok->volumes.at(0).mount, "/data");
}

TEST(MessagesTest, ErrorsNeverQuoteSecrets) {
  Config c = fullConfig();
  c.secrets_file = std::string("SUPERSECRET");
  auto bytes = encode(c);
  ASSERT_TRUE(bytes.has_value());
  const Frame frame = oneFrame(*bytes);
  std::string corrupted = frame.payload + tlv(16, "SUPERSECRET");
  auto r = decodeConfig(corrupted);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message.find("SUPERSECRET"), std::string::npos);
}

TEST(MessagesTest, HelloRoundTripsAndSkipsUnknownTags) {
  Hello h{kProtocolVersion, "vt-init 0.1.0", "6.1.0-28-cloud-amd64", 1'234'567'890};
  const Frame frame = oneFrame(*encode(h));
  EXPECT_EQ(*decodeHello(frame.payload), h);
  auto extended = decodeHello(frame.payload + tlv(77, "future"));
  ASSERT_TRUE(extended.has_value());
  EXPECT_EQ(*extended, h);
  EXPECT_EQ(decodeHello(tlv(2, "x")).error().code, ErrorCode::kMissingField);
}

TEST(MessagesTest, FixedFramesRoundTrip) {
  EXPECT_EQ(*decodeReady(oneFrame(encode(Ready{77, 99, std::nullopt})).payload),
            (Ready{77, 99, std::nullopt}));
  EXPECT_EQ(*decodeExit(oneFrame(encode(Exit{ExitKind::kSignaled, 9})).payload),
            (Exit{ExitKind::kSignaled, 9}));
  EXPECT_EQ(decodeExit(oneFrame(encode(Exit{ExitKind::kExited, -1})).payload)->code, -1);
  EXPECT_EQ(decodeShutdown(oneFrame(encode(Shutdown{5000})).payload)->grace_ms, 5000u);
  EXPECT_EQ(decodePing(oneFrame(encodePong(Ping{0xdeadbeef12345678})).payload)->nonce,
            0xdeadbeef12345678u);
  EXPECT_EQ(decodeBootError(oneFrame(*encode(BootError{"mount failed"})).payload)->message,
            "mount failed");
}

TEST(MessagesTest, ReadyCarriesBootStagesInOrder) {
  const Ready ready{77, 900, BootStages{100, 200, 300, 400}};
  const Frame frame = oneFrame(encode(ready));
  EXPECT_EQ(frame.payload.size(), kReadyStagesBytes);
  EXPECT_EQ(*decodeReady(frame.payload), ready);
  // Equal instants are fine (no modules to load takes no time).
  const Ready same{1, 5, BootStages{5, 5, 5, 5}};
  EXPECT_EQ(*decodeReady(oneFrame(encode(same)).payload), same);
  // A stage after the next one, or after the workload started, is malformed.
  for (const BootStages& bad : {BootStages{201, 200, 300, 400}, BootStages{100, 301, 300, 400},
                                BootStages{100, 200, 401, 400}, BootStages{100, 200, 300, 901}}) {
    auto decoded = decodeReady(oneFrame(encode(Ready{77, 900, bad})).payload);
    ASSERT_FALSE(decoded.has_value());
    EXPECT_EQ(decoded.error().code, ErrorCode::kMalformed);
  }
  // Only the two sizes: 16 bytes, or 48 with the stages.
  std::string payload = frame.payload;
  EXPECT_FALSE(decodeReady(payload.substr(0, 24)).has_value());
  EXPECT_FALSE(decodeReady(payload + std::string(8, '\0')).has_value());
}

TEST(MessagesTest, FixedFramesRejectBadPayloads) {
  EXPECT_FALSE(decodeReady("short").has_value());
  EXPECT_FALSE(decodeExit(std::string("\x03\0\0\0\0\0\0\0", 8)).has_value());    // kind 3
  EXPECT_FALSE(decodeExit(std::string("\x01\x01\0\0\0\0\0\0", 8)).has_value());  // reserved
  EXPECT_FALSE(decodeShutdown("12345").has_value());
  EXPECT_FALSE(decodePing("1234567").has_value());
}

TEST(MessagesTest, LogLimitsAndSources) {
  Log big{LogSource::kStdout, 1, std::string(kMaxLogDataBytes, 'x')};
  auto ok = encode(big);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(decodeLog(oneFrame(*ok).payload)->data.size(), kMaxLogDataBytes);
  big.data.push_back('y');
  EXPECT_EQ(encode(big).error().code, ErrorCode::kOversized);
  std::string bad_source = oneFrame(*encode(Log{LogSource::kStderr, 1, "x"})).payload;
  bad_source[0] = 3;
  EXPECT_EQ(decodeLog(bad_source).error().code, ErrorCode::kInvalidValue);
  EXPECT_FALSE(decodeLog("short").has_value());
  std::string binary("\0\xff\n", 3);
  EXPECT_EQ(decodeLog(oneFrame(*encode(Log{LogSource::kStdout, 5, binary})).payload)->data, binary);
}

TEST(MessagesTest, BootErrorIsTruncatedNotRefused) {
  auto frame = encode(BootError{std::string(kMaxErrorBytes + 100, 'e')});
  ASSERT_TRUE(frame.has_value());
  EXPECT_EQ(oneFrame(*frame).payload.size(), kMaxErrorBytes);
}

TEST(MessagesTest, AddressHelpers) {
  EXPECT_FALSE(parseIpv6("10.0.0.1").has_value());
  EXPECT_FALSE(parseIpv4("::1").has_value());
  EXPECT_EQ(formatIpv4(*parseIpv4("192.0.2.7")), "192.0.2.7");
  EXPECT_EQ(formatIpv6(kDefaultIpv6Gateway), "fe80::1");
}

}  // namespace
}  // namespace plfm::guest_proto
