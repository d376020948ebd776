// prescan() must accept every form valid TOML takes (with non-ASCII text in
// strings wherever strings may appear), and reject what toml++ cannot handle
// safely: deep nesting and non-ASCII outside strings.
#include <gtest/gtest.h>

#include <string>

#include "toml_reader.h"

namespace plfm::manifest {
namespace {

TEST(Prescan, AcceptsEveryTomlForm) {
  // "\xd1\xa5" is U+0465, a code point toml++ 3.3 must never see outside a string.
  const std::string text =
      "\xef\xbb\xbf# comment \xd1\xa5\n"
      "a = \"\xd1\xa5\" # after a value \xd1\xa5\n"
      "b = '\xd1\xa5'\n"
      "c = \"\"\"\n\xd1\xa5 \\\" \"\"\"\"\n"
      "d = '''\xd1\xa5''''\n"
      "e = \"\"\"line \\\n   ok\"\"\"\n"
      "\"quoted key\" . 'lit' . bare = \"\xd1\xa5\"\n"
      "f = [ \"\xd1\xa5\", 1, 2.5e3, -inf, nan, true, 0x1F, [\"\xd1\xa5\"], [], [ ], ]\n"
      "g = [\n  # \xd1\xa5\n  \"\xd1\xa5\", # \xd1\xa5\n  { x = \"\xd1\xa5\" },\n\n]\n"
      "h = { a.b = \"\xd1\xa5\", c = { d = [\"\xd1\xa5\"] }, e = {} }\n"
      "i = 1979-05-27 07:32:00Z\n"
      "j = 1979-05-27T07:32:00.999-07:00\n"
      "k = 07:32:00\n"
      "l = 1979-05-27\n"
      "m = +1_000\r\n"
      "[ table . \"sub\" ] # \xd1\xa5\n"
      "n = \"\xd1\xa5\"\n"
      "[[array.of]]\n"
      "o = \"\xd1\xa5\"\n"
      "\t[[ array.of ]]\n"
      "p = \"\"\n";
  const PrescanResult r = prescan(text);
  EXPECT_TRUE(r.ok) << r.where.line << ":" << r.where.column << ": " << r.what;
  EXPECT_EQ(tomlSyntaxError(text), std::nullopt) << "the sample is valid TOML";
}

TEST(Prescan, RejectsWhatTomlPlusPlusCannotHandle) {
  const std::string deepKey = "a" + std::string(40, '.') + " = 1\n";
  struct Case {
    std::string text;
    int line;
    int column;
  };
  const Case cases[] = {
      {"k\xd1\xa5 = 1\n", 1, 2},
      {"a = 01a\"x\xd1\xa5\"\n", 1, 10},  // quotes inside a bare value are not strings
      {"a = 0{{\"\xd1\xa5\"\n", 1, 9},    // nor are braces
      {"a = true\xd1\xa5\n", 1, 9},
      {"a = 1 \xd1\xa5\n", 1, 7},
      {"[t\xd1\xa5]\n", 1, 3},
      {"a = \"\"\"x\\ \n  \xd1\xa5\"\"\"\n", 2, 3},
      {"a = \"\"\"x\\\xd1\xa5\"\"\"\n", 1, 10},
      {"a = [\n" + std::string(40, '[') + "\n", 2, 32},
      {"a = " + std::string(40, '{'), 1, 37},
      {"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.a.b.c.d.e.f.g.h = 1\n", 1, 66},
      // Lost (the text left the grammar): every non-ASCII byte and dot counts.
      {"= \"\xd1\xa5\"\n", 1, 4},
      {"a = 1 = \"\xd1\xa5\"\n", 1, 10},
  };
  for (const auto& c : cases) {
    const PrescanResult r = prescan(c.text);
    EXPECT_FALSE(r.ok) << c.text;
    EXPECT_EQ(r.where.line, c.line) << c.text << "\n" << r.what;
    EXPECT_EQ(r.where.column, c.column) << c.text << "\n" << r.what;
  }
  EXPECT_FALSE(prescan(deepKey).ok);
}

}  // namespace
}  // namespace plfm::manifest
