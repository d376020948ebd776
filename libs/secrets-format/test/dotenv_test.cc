#include "plfm/secrets/dotenv.h"

#include <gtest/gtest.h>

#include <string>

namespace plfm::secrets {
namespace {

SecretMap parseOk(std::string_view text) {
  auto r = parseDotenv(text);
  EXPECT_TRUE(r) << r.error().toString();
  return r ? *r : SecretMap{};
}

Error parseFail(std::string_view text) {
  auto r = parseDotenv(text);
  EXPECT_FALSE(r) << "parsed: " << text;
  return r ? Error{} : r.error();
}

TEST(DotenvTest, CommonSyntax) {
  const SecretMap m = parseOk(
      "# database\n"
      "\n"
      "DATABASE_URL=postgres://u:p@db/app\n"
      "export API_TOKEN=abc123\n"
      "  SPACED = value with spaces   \n"
      "COMMENTED=abc # trailing comment\n"
      "HASH_INSIDE=abc#def\n"
      "EMPTY=\n"
      "EMPTY_COMMENT= # nothing\n"
      "EQUALS=a=b=c\n"
      "\texport\tTABBED=1\n");
  const SecretMap want = {{"DATABASE_URL", "postgres://u:p@db/app"},
                          {"API_TOKEN", "abc123"},
                          {"SPACED", "value with spaces"},
                          {"COMMENTED", "abc"},
                          {"HASH_INSIDE", "abc#def"},
                          {"EMPTY", ""},
                          {"EMPTY_COMMENT", ""},
                          {"EQUALS", "a=b=c"},
                          {"TABBED", "1"}};
  EXPECT_EQ(m, want);
}

TEST(DotenvTest, DoubleQuotes) {
  const SecretMap m = parseOk(
      "ESC=\"a\\nb\\tc\\rd\\\\e\\\"f\\$g\\`h\"\n"
      "HEX=\"\\x00\\xff\\xC3\\xA9\"\n"
      "UNKNOWN=\"C:\\path\\q\"\n"
      "NO_INTERP=\"${HOME} $USER\"\n"
      "HASH=\"# not a comment\" # a comment\n"
      "SINGLE_INSIDE=\"it's\"\n");
  EXPECT_EQ(m.at("ESC"), "a\nb\tc\rd\\e\"f$g`h");
  EXPECT_EQ(m.at("HEX"), std::string("\x00\xff\xc3\xa9", 4));
  EXPECT_EQ(m.at("UNKNOWN"), "C:\\path\\q");
  EXPECT_EQ(m.at("NO_INTERP"), "${HOME} $USER");
  EXPECT_EQ(m.at("HASH"), "# not a comment");
  EXPECT_EQ(m.at("SINGLE_INSIDE"), "it's");
}

TEST(DotenvTest, SingleQuotesAreLiteral) {
  const SecretMap m = parseOk("RAW='a\\nb $X \"q\"'\nEMPTY=''\n");
  EXPECT_EQ(m.at("RAW"), "a\\nb $X \"q\"");
  EXPECT_EQ(m.at("EMPTY"), "");
}

TEST(DotenvTest, MultilineQuotedValues) {
  const SecretMap m = parseOk(
      "PEM=\"-----BEGIN KEY-----\n"
      "MIIB\n"
      "-----END KEY-----\"\n"
      "RAW='one\r\n"
      "two'\n"
      "AFTER=x\n");
  EXPECT_EQ(m.at("PEM"), "-----BEGIN KEY-----\nMIIB\n-----END KEY-----");
  EXPECT_EQ(m.at("RAW"), "one\ntwo");  // CRLF inside quotes becomes LF
  EXPECT_EQ(m.at("AFTER"), "x");
}

TEST(DotenvTest, CrlfAndBom) {
  const SecretMap m = parseOk(
      "\xEF\xBB\xBF"
      "A=1\r\nB=\"2\"\r\n# c\r\n\r\nC='3'\r\n");
  EXPECT_EQ(m, (SecretMap{{"A", "1"}, {"B", "2"}, {"C", "3"}}));
}

TEST(DotenvTest, Utf8AndBinaryValues) {
  const SecretMap m = parseOk("NAME=héllo 🔑\nBYTES=\xff\xfe\n");
  EXPECT_EQ(m.at("NAME"), "héllo 🔑");
  EXPECT_EQ(m.at("BYTES"), "\xff\xfe");
}

TEST(DotenvTest, ErrorsNameTheLine) {
  Error e = parseFail("A=1\njust some text\n");
  EXPECT_EQ(e.code, ErrorCode::kSyntax);
  EXPECT_EQ(e.line, 2U);
  EXPECT_EQ(e.message, "expected KEY=VALUE");

  e = parseFail("A=1\n\nlower_case=2\n");
  EXPECT_EQ(e.code, ErrorCode::kInvalidKey);
  EXPECT_EQ(e.line, 3U);
  EXPECT_EQ(e.column, 1U);
  EXPECT_NE(e.message.find("upper case"), std::string::npos);

  e = parseFail("MY-KEY=2\n");
  EXPECT_EQ(e.code, ErrorCode::kInvalidKey);
  EXPECT_EQ(e.column, 3U);

  e = parseFail("1KEY=2\n");
  EXPECT_EQ(e.code, ErrorCode::kInvalidKey);
  EXPECT_EQ(e.column, 1U);

  e = parseFail("=2\n");
  EXPECT_EQ(e.code, ErrorCode::kSyntax);

  e = parseFail("A=1\nB=2\nA=3\n");
  EXPECT_EQ(e.code, ErrorCode::kDuplicateKey);
  EXPECT_EQ(e.line, 3U);
  EXPECT_EQ(e.message, "duplicate key A (first on line 1)");

  e = parseFail("A=1\nB=\"never closed\nC=3\n");
  EXPECT_EQ(e.code, ErrorCode::kSyntax);
  EXPECT_EQ(e.line, 2U);  // where the quote opened
  EXPECT_EQ(e.column, 3U);

  e = parseFail("B='never closed\n");
  EXPECT_EQ(e.line, 1U);

  e = parseFail("A=\"x\" trailing\n");
  EXPECT_EQ(e.code, ErrorCode::kSyntax);
  EXPECT_EQ(e.column, 7U);

  e = parseFail("A=\"multi\nline\" junk\n");
  EXPECT_EQ(e.line, 2U);
  EXPECT_EQ(e.column, 7U);

  e = parseFail("export\n");
  EXPECT_EQ(e.code, ErrorCode::kSyntax);
}

TEST(DotenvTest, ErrorsNeverQuoteTheFile) {
  for (const char* text : {"SECRETPART\n", "SECRET-PART=x\n", "A=\"SECRETPART\n", "A='SECRETPART\n",
                           "A=\"SECRETPART\" SECRETPART\n", "secretpart=x\n"}) {
    auto r = parseDotenv(text);
    ASSERT_FALSE(r) << text;
    const std::string s = r.error().toString();
    EXPECT_EQ(s.find("SECRET"), std::string::npos) << s;
    EXPECT_EQ(s.find("secret"), std::string::npos) << s;
  }
}

TEST(DotenvTest, Limits) {
  std::string many;
  for (size_t i = 0; i <= kMaxKeys; ++i) many += "K" + std::to_string(i) + "=v\n";
  Error e = parseFail(many);
  EXPECT_EQ(e.code, ErrorCode::kLimitExceeded);
  EXPECT_EQ(e.line, kMaxKeys + 1);

  EXPECT_TRUE(parseDotenv("BIG=" + std::string(kMaxValueBytes, 'x') + "\n"));
  for (const std::string quote : {"", "\"", "'"}) {
    std::string text = "BIG=" + quote;
    text.append(kMaxValueBytes + 1, 'x').append(quote).append("\n");
    e = parseFail(text);
    EXPECT_EQ(e.code, ErrorCode::kLimitExceeded) << quote;
    EXPECT_EQ(e.line, 1U);
  }
  e = parseFail(std::string(kMaxKeyBytes + 1, 'K') + "=1\n");
  EXPECT_EQ(e.code, ErrorCode::kLimitExceeded);
  e = parseFail(std::string(kMaxFileBytes + 1, '#'));
  EXPECT_EQ(e.code, ErrorCode::kLimitExceeded);
}

TEST(DotenvTest, EmptyInputs) {
  EXPECT_TRUE(parseOk("").empty());
  EXPECT_TRUE(parseOk("\n\n# only comments\n   \n").empty());
  EXPECT_EQ(parseOk("A=1").at("A"), "1");  // no final newline
}

}  // namespace
}  // namespace plfm::secrets
