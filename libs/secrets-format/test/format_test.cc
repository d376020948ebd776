#include "plfm/secrets/format.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "plfm/core/process.h"
#include "plfm/core/strings.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::secrets {
namespace {

namespace fs = std::filesystem;

const fs::path kVectors = fs::path(PLFM_TEST_DIR) / "test" / "vectors";

std::string readVector(const fs::path& path) {
  auto text = plfm::readFile(path.string());
  EXPECT_TRUE(text) << text.error().toString();
  return text ? *text : std::string();
}

std::vector<fs::path> vectorFiles(const std::string& dir, const std::string& ext) {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(kVectors / dir)) {
    if (entry.path().extension() == ext) out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string unhex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// A .expect file lists "KEY hex-of-value" lines, so the vectors stay usable
// from any language.
SecretMap readExpect(const fs::path& path) {
  SecretMap out;
  const std::string text = readVector(path);
  for (std::string_view line : splitLines(text)) {
    if (line.empty()) continue;
    const auto space = line.find(' ');
    out[std::string(line.substr(0, space))] = unhex(line.substr(space + 1));
  }
  return out;
}

std::string positionAndCode(const Error& e) {
  return std::to_string(e.line) + ":" + std::to_string(e.column) + " " +
         std::string(codeName(e.code));
}

TEST(SecretsFormatTest, ValidVectorsEncodeAndDecode) {
  const auto files = vectorFiles("valid", ".env");
  ASSERT_GE(files.size(), 7U);
  for (const auto& env : files) {
    SCOPED_TRACE(env.filename().string());
    auto expect = env;
    const SecretMap expected = readExpect(expect.replace_extension(".expect"));
    auto encoded = encode(expected);
    ASSERT_TRUE(encoded) << encoded.error().toString();
    PLFM_EXPECT_GOLDEN("vectors/valid/" + env.filename().string(), *encoded);
    auto decoded = decode(readVector(env));
    ASSERT_TRUE(decoded) << decoded.error().toString();
    EXPECT_EQ(*decoded, expected);
  }
}

TEST(SecretsFormatTest, InvalidVectorsFailAtTheirPosition) {
  const auto files = vectorFiles("invalid", ".env");
  ASSERT_GE(files.size(), 30U);
  for (const auto& env : files) {
    SCOPED_TRACE(env.filename().string());
    auto err_path = env;
    std::string want = readVector(err_path.replace_extension(".err"));
    while (!want.empty() && want.back() == '\n') want.pop_back();
    auto decoded = decode(readVector(env));
    ASSERT_FALSE(decoded);
    EXPECT_EQ(positionAndCode(decoded.error()), want) << decoded.error().toString();
  }
}

TEST(SecretsFormatTest, ValidKey) {
  EXPECT_TRUE(validKey("A"));
  EXPECT_TRUE(validKey("_"));
  EXPECT_TRUE(validKey("DATABASE_URL"));
  EXPECT_TRUE(validKey("_X9"));
  EXPECT_TRUE(validKey(std::string(kMaxKeyBytes, 'K')));
  EXPECT_FALSE(validKey(""));
  EXPECT_FALSE(validKey("9A"));
  EXPECT_FALSE(validKey("lower"));
  EXPECT_FALSE(validKey("A-B"));
  EXPECT_FALSE(validKey("A B"));
  EXPECT_FALSE(validKey("É"));
  EXPECT_FALSE(validKey(std::string(kMaxKeyBytes + 1, 'K')));
}

TEST(SecretsFormatTest, EncodeRejectsInvalidKeysWithoutEchoingThem) {
  auto r = encode({{"OK", "1"}, {"secret-looking key", "2"}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidKey);
  EXPECT_EQ(r.error().line, 0U);
  EXPECT_EQ(r.error().message.find("secret-looking"), std::string::npos);
  EXPECT_NE(r.error().message.find("key #2"), std::string::npos);
}

TEST(SecretsFormatTest, EncodeEnforcesLimits) {
  SecretMap many;
  for (size_t i = 0; i <= kMaxKeys; ++i) many["K" + std::to_string(i)] = "v";
  auto r = encode(many);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kLimitExceeded);
  many.erase(many.begin());
  EXPECT_TRUE(encode(many));

  EXPECT_TRUE(encode({{"BIG", std::string(kMaxValueBytes, 'x')}}));
  r = encode({{"BIG", std::string(kMaxValueBytes + 1, 'x')}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kLimitExceeded);
  EXPECT_NE(r.error().message.find("BIG"), std::string::npos);

  // Every value fits, but the escaped file does not (NUL bytes take 4).
  SecretMap fat;
  for (int i = 0; i < 5; ++i) fat["K" + std::to_string(i)] = std::string(kMaxValueBytes, '\0');
  r = encode(fat);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kLimitExceeded);
}

TEST(SecretsFormatTest, DecodeEnforcesLimits) {
  std::string file = std::string(kHeader) + "\n";
  for (size_t i = 0; i <= kMaxKeys; ++i) {
    char key[8];
    std::snprintf(key, sizeof key, "K%04zu", i);
    file += std::string(key) + "=\"v\"\n";
  }
  auto r = decode(file);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kLimitExceeded);
  EXPECT_EQ(r.error().line, kMaxKeys + 2);
  EXPECT_EQ(r.error().column, 1U);

  const std::string head = std::string(kHeader) + "\nBIG=\"";
  r = decode(head + std::string(kMaxValueBytes, 'x') + "\"\n");
  EXPECT_TRUE(r) << r.error().toString();
  r = decode(head + std::string(kMaxValueBytes + 1, 'x') + "\"\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kLimitExceeded);
  EXPECT_EQ(r.error().column, head.size() - kHeader.size() - 1 + kMaxValueBytes + 1);

  r = decode(std::string(kHeader) + "\n" + std::string(kMaxFileBytes, 'A'));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kLimitExceeded);
}

TEST(SecretsFormatTest, ErrorsNeverQuoteValueBytes) {
  // Each of these fails inside the value "SECRETPART..."; no message may
  // contain any of it.
  const std::string head = std::string(kHeader) + "\nK=\"SECRETPART";
  for (const char* tail : {"\\q\"\n", "\\x41\"\n", "\xff\"\n", "$\"\n", "\x01\"\n", "\"junk\n",
                           "\n", "\\xc3\\xa9\"\n"}) {
    auto r = decode(head + tail);
    ASSERT_FALSE(r) << tail;
    EXPECT_EQ(r.error().toString().find("SECRETPART"), std::string::npos) << r.error().toString();
  }
}

TEST(SecretsFormatTest, ErrorToStringHasPosition) {
  auto r = decode(std::string(kHeader) + "\nA=\"\\q\"\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().toString(),
            "line 2, column 4: unknown escape; the escapes are \\n \\r \\t \\\\ \\\" \\$ \\` and "
            "\\xNN");
  EXPECT_EQ(codeName(ErrorCode::kBadEscape), "secrets.bad_escape");
}

TEST(SecretsFormatTest, WipeZeroesTheWholeBuffer) {
  std::string s(100, 'S');
  const char* data = s.data();
  s.resize(10);  // the stale tail still holds secret bytes
  wipe(s);
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.data(), data);  // wiped in place, not reallocated
  for (size_t i = 0; i < 100; ++i) EXPECT_EQ(data[i], '\0') << i;

  std::string small = "short";  // small-string buffer
  wipe(small);
  EXPECT_TRUE(small.empty());
  for (size_t i = 0; i < small.capacity(); ++i) EXPECT_EQ(small.data()[i], '\0');

  SecretMap m = {{"A", "1"}, {"B", std::string(50, 'x')}};
  wipe(m);
  EXPECT_TRUE(m.empty());
}

TEST(SecretsFormatTest, GuestPathAndHeader) {
  EXPECT_EQ(kGuestPath, "/run/secrets/platform.env");
  EXPECT_EQ(kGuestFileMode, 0400U);
  auto r = encode({});
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "# plfm-secrets v1\n");
}

}  // namespace
}  // namespace plfm::secrets
