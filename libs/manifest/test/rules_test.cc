// The value grammars and unit parsers behind the manifest rules.
#include "rules.h"

#include <gtest/gtest.h>

#include "plfm/manifest/volume_rules.h"

#include <string>
#include <vector>

namespace plfm::manifest::rules {
namespace {

TEST(Rules, Durations) {
  EXPECT_EQ(parseDuration("10s"), 10000);
  EXPECT_EQ(parseDuration("500ms"), 500);
  EXPECT_EQ(parseDuration("1m"), 60000);
  EXPECT_EQ(parseDuration("1m30s"), 90000);
  EXPECT_EQ(parseDuration("2h"), 7200000);
  EXPECT_EQ(parseDuration("0s"), 0);
  EXPECT_EQ(parseDuration("24h"), 86400000);
  for (const char* bad :
       {"", "10", "s", "1.5s", "-1s", "10 s", "1d", "25h", "1m1", "99999999999999s", "10S", "ms"}) {
    EXPECT_EQ(parseDuration(bad), std::nullopt) << bad;
  }
  for (std::int64_t ms : {0LL, 1LL, 500LL, 1000LL, 90000LL, 60000LL, 7200000LL, 1500LL}) {
    EXPECT_EQ(parseDuration(formatDuration(ms)), ms) << formatDuration(ms);
  }
  EXPECT_EQ(formatDuration(90000), "90s");
  EXPECT_EQ(formatDuration(3600000), "1h");
}

TEST(Rules, Sizes) {
  EXPECT_EQ(parseSize("1GiB"), 1ULL << 30);
  EXPECT_EQ(parseSize("512MiB"), 512ULL << 20);
  EXPECT_EQ(parseSize("4096KiB"), 4ULL << 20);
  EXPECT_EQ(parseSize("16TiB"), 16ULL << 40);
  EXPECT_EQ(parseSize("100B"), 100U);
  for (const char* bad : {"", "1", "1GB", "1G", "1gib", "1.5GiB", " 1GiB", "1GiB ", "GiB",
                          "999999999999TiB", "-1GiB"}) {
    EXPECT_EQ(parseSize(bad), std::nullopt) << bad;
  }
  EXPECT_EQ(formatSize(1ULL << 30), "1GiB");
  EXPECT_EQ(formatSize(1536ULL << 20), "1536MiB");
  EXPECT_EQ(formatSize(100), "100B");
  EXPECT_EQ(formatSize(0), "0B");
}

TEST(Rules, Names) {
  for (const std::string& good :
       std::vector<std::string>{"a", "web", "web-2", "a1", std::string(63, 'a')}) {
    EXPECT_EQ(checkName(good), std::nullopt) << good;
  }
  for (const std::string& bad : std::vector<std::string>{"", "Web", "1web", "web-", "web_2", "-web",
                                                         "w b", "wéb", std::string(64, 'a')}) {
    EXPECT_NE(checkName(bad), std::nullopt) << bad;
  }
}

TEST(Rules, Images) {
  for (const char* good : {"a", "a/b", "a/b/c:t", "a__b", "a.b-c_d", "a--b", "reg.io/x",
                           "reg.io:5000/x:tag", "localhost/x", "x:T_a.g-1"}) {
    EXPECT_EQ(checkImage(good), std::nullopt) << good;
  }
  for (const char* bad :
       {"", "A", "a/B", "a:", "a@", "a@sha256:abc", "a:-tag", "a/", "/a", "a//b", "a b", "a.-b",
        "a___b", "reg.io:port/x", "-reg.io/x", "a:b:c", "a@md5:0123"}) {
    EXPECT_NE(checkImage(bad), std::nullopt) << bad;
  }
}

TEST(Rules, Hostnames) {
  for (const char* good :
       {"example.com", "a.b.c.example.com", "*.example.com", "xn--caf-dma.example", "a-b.c0"}) {
    EXPECT_EQ(checkHostname(good), std::nullopt) << good;
  }
  for (const char* bad :
       {"", "com", "*.com", "*", "a.*.com", "*a.com", "a..com", ".a.com", "a.com.", "-a.com",
        "a-.com", "A.com", "a_b.com", "1.2.3.4", "caf\xc3\xa9.com"}) {
    EXPECT_NE(checkHostname(bad), std::nullopt) << bad;
  }
  EXPECT_EQ(checkHostname(std::string(63, 'a') + ".com"), std::nullopt);
  EXPECT_NE(checkHostname(std::string(64, 'a') + ".com"), std::nullopt);
}

TEST(Rules, Mounts) {
  for (const char* good : {"/data", "/var/lib/pg", "/a.b/c_d/e-f", "/runner", "/devices"}) {
    EXPECT_EQ(checkMount(good), std::nullopt) << good;
  }
  for (const char* bad : {"", "/", "data", "/data/", "//data", "/a/../b", "/a/./b", "/proc",
                          "/proc/x", "/sys", "/dev/shm", "/run", "/run/secrets", "/a b", "/a:b"}) {
    EXPECT_NE(checkMount(bad), std::nullopt) << bad;
  }
}

TEST(Rules, EnvAndSecretNames) {
  EXPECT_EQ(checkEnvKey("PATH"), std::nullopt);
  EXPECT_EQ(checkEnvKey("_lower_ok9"), std::nullopt);
  EXPECT_NE(checkEnvKey("9X"), std::nullopt);
  EXPECT_NE(checkEnvKey("A-B"), std::nullopt);
  EXPECT_NE(checkEnvKey(""), std::nullopt);
  EXPECT_NE(checkEnvKey("PLFM_X"), std::nullopt);
  EXPECT_EQ(checkEnvValue(""), std::nullopt);
  EXPECT_NE(checkEnvValue(std::string("a\0b", 3)), std::nullopt);
  EXPECT_EQ(checkSecretName("DATABASE_URL"), std::nullopt);
  EXPECT_EQ(checkSecretName("_X1"), std::nullopt);
  EXPECT_NE(checkSecretName("database_url"), std::nullopt);
  EXPECT_NE(checkSecretName("1X"), std::nullopt);
}

TEST(Rules, QuoteCutsLongValuesOnCharacterBoundaries) {
  EXPECT_EQ(quote("a\"b"), "\"a\\\"b\"");
  EXPECT_EQ(quote(std::string(50, 'x')), "\"" + std::string(40, 'x') + "...\"");
  const std::string accents = std::string(39, 'x') + "\xc3\xa9" + "yyyy";
  EXPECT_EQ(quote(accents), "\"" + std::string(39, 'x') + "...\"");
  EXPECT_EQ(quote("a\xff\xc3\xa9"), "\"a???\"") << "invalid UTF-8 never reaches a message";
}

TEST(Rules, StringsMustBeUtf8) {
  EXPECT_EQ(checkArg("caf\xc3\xa9 \xf0\x9f\x98\x80"), std::nullopt);
  EXPECT_EQ(checkEnvValue("\xe2\x82\xac"), std::nullopt);
  for (const char* bad :
       {"\xff", "\xc3", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "\x80"}) {
    EXPECT_NE(checkArg(bad), std::nullopt) << bad;
    EXPECT_NE(checkEnvValue(bad), std::nullopt) << bad;
  }
}

// The public volume rules (the control plane's volume API and `vt volumes`)
// are the manifest's.
TEST(Rules, VolumeRulesAreTheManifests) {
  EXPECT_EQ(checkVolumeName("uploads"), std::nullopt);
  EXPECT_EQ(checkVolumeName(std::string(59, 'a')), std::nullopt);
  EXPECT_NE(checkVolumeName(std::string(60, 'a')), std::nullopt) << "<name>-999 is 63 at most";
  for (const char* bad : {"", "Uploads", "up_loads", "uploads-", "9lives", "../x", "a b"}) {
    EXPECT_NE(checkVolumeName(bad), std::nullopt) << bad;
  }
  EXPECT_EQ(parseVolumeSize("10GiB"), parseSize("10GiB"));
  EXPECT_EQ(parseVolumeSize("10GB"), std::nullopt);
  EXPECT_EQ(formatVolumeSize(uint64_t{20} << 30), "20GiB");
  EXPECT_EQ(checkVolumeSize(kMinVolumeBytes), std::nullopt);
  EXPECT_EQ(checkVolumeSize(kMaxVolumeBytes), std::nullopt);
  EXPECT_EQ(checkVolumeSize(kMinVolumeBytes - 1), "a size from 16MiB to 16TiB (got 16777215B)");
  EXPECT_NE(checkVolumeSize(kMaxVolumeBytes + 1), std::nullopt);
  EXPECT_NE(checkVolumeSize(0), std::nullopt);
}

}  // namespace
}  // namespace plfm::manifest::rules
