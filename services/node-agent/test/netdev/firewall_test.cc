// The guest network filter's generator (golden text; hostile inputs refused
// before anything is generated) and, as root, the real nft accepting the
// script inside a private network namespace (a forked child, so the host's
// ruleset is never touched).
#include "netdev/firewall.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>

#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"
#include "support/netns_child.h"

namespace plfm::netdev {
namespace {

GuestFilter guest(std::string_view tap, std::string_view address, std::string_view org,
                  std::string_view ipv4 = {}) {
  auto g = parseGuestFilter(tap, address, org, ipv4);
  EXPECT_TRUE(g) << g.error().toString();
  return *g;
}

TEST(Firewall, RulesetForTwoOrgsMatchesGolden) {
  // Given out of order: the output is sorted by tap, orgs numbered by key.
  std::vector<GuestFilter> guests = {
      guest("vt-c0ffee00002", "fd7a:5c00:0:1::3", "org:org_b"),
      guest("vt-c0ffee00001", "FD7A:5C00:0000:0001:0000:0000:0000:0002", "org:org_a"),
      guest("vt-c0ffee00003", "2001:db8::7", "org:org_a", "192.0.2.7"),
  };
  FirewallPolicy policy;
  policy.inbound_allowed = {*parseIpv6Prefix("2001:db8:100::/48")};
  policy.egress_denied = {*parseIpv6Prefix("fc00::/7"), *parseIpv6Prefix("2001:db8:200::/56"),
                          *parseIpv6Prefix("fc00::/7")};  // duplicates collapse
  auto text = renderRuleset(guests, policy);
  ASSERT_TRUE(text) << text.error().toString();
  PLFM_EXPECT_GOLDEN("netdev/golden/two_orgs.nft", *text);
}

// Two orgs across hosts: org a has tag 5 (two new-layout guests) and an
// old-layout guest (tag 0); org b has tag 7; one guest is outside the cluster.
std::vector<GuestFilter> meshGuests() {
  return {
      guest("vt-c0ffee00001", "fd7a:5c00:0:1:0:5:0:2", "org:org_a"),
      guest("vt-c0ffee00002", "fd7a:5c00:0:1:0:7:0:2", "org:org_b"),
      guest("vt-c0ffee00003", "fd7a:5c00:0:1::3", "org:org_a"),
      guest("vt-c0ffee00004", "fd7a:5c00:0:1:0:5:0:3", "org:org_a"),
      guest("vt-c0ffee00005", "2001:db8::7", "org:org_b"),
  };
}

FirewallPolicy meshPolicy() {
  FirewallPolicy policy;
  policy.inbound_allowed = {*parseIpv6Prefix("2001:db8:100::/48")};
  policy.egress_denied = {*parseIpv6Prefix("fc00::/7")};
  auto mesh = parseMeshFilter("fd7a:5c00::/48", "plfm-wg0");
  EXPECT_TRUE(mesh) << mesh.error().toString();
  policy.mesh = *mesh;
  return policy;
}

TEST(Firewall, RulesetWithAMeshMatchesGolden) {
  auto text = renderRuleset(meshGuests(), meshPolicy());
  ASSERT_TRUE(text) << text.error().toString();
  PLFM_EXPECT_GOLDEN("netdev/golden/mesh_two_orgs.nft", *text);
}

// Guest IPv4 (mesh.md "Egress"): the denied ranges and the subnet rules
// appear only with a guest subnet; the rest is the mesh ruleset unchanged.
TEST(Firewall, RulesetWithGuestIpv4MatchesGolden) {
  FirewallPolicy policy = meshPolicy();
  policy.guest_subnet4 = *parseIpv4Prefix("10.42.1.0/24");
  policy.egress_denied4 = {*parseIpv4Prefix("10.0.0.0/8"), *parseIpv4Prefix("169.254.0.0/16"),
                           *parseIpv4Prefix("10.0.0.0/8")};
  std::vector<GuestFilter> guests = meshGuests();
  guests[0] = guest("vt-c0ffee00001", "fd7a:5c00:0:1:0:5:0:2", "org:org_a", "10.42.1.2");
  auto text = renderRuleset(guests, policy);
  ASSERT_TRUE(text) << text.error().toString();
  PLFM_EXPECT_GOLDEN("netdev/golden/mesh_ipv4.nft", *text);
  policy.guest_subnet4.reset();
  auto without = renderRuleset(guests, policy);
  ASSERT_TRUE(without);
  EXPECT_EQ(without->find("egress_denied4"), std::string::npos);
  EXPECT_EQ(without->find("10.42.1.0/24"), std::string::npos);
}

TEST(Firewall, Ipv4PrefixesAreParsedStrictly) {
  EXPECT_EQ(parseIpv4Prefix("10.42.1.0/24")->str(), "10.42.1.0/24");
  EXPECT_EQ(parseIpv4Prefix("0.0.0.0/0")->str(), "0.0.0.0/0");
  in_addr a{};
  ASSERT_EQ(inet_pton(AF_INET, "10.42.1.7", &a), 1);
  EXPECT_TRUE(parseIpv4Prefix("10.42.1.0/24")->contains(a));
  EXPECT_FALSE(parseIpv4Prefix("10.42.2.0/24")->contains(a));
  for (const char* bad :
       {"10.42.1.1/24", "10.42.1.0/33", "10.42.1.0", "10.42.1.0/", "10.42.1.0/24 ",
        "010.42.1.0/24x", "::/0", "10.42.1/24", "10.42.1.0/-1"}) {
    EXPECT_FALSE(parseIpv4Prefix(bad)) << "accepted " << bad;
  }
}

TEST(Firewall, WithoutAMeshTheRulesetIsTheSingleHostOne) {
  FirewallPolicy policy = meshPolicy();
  policy.mesh.reset();
  auto text = renderRuleset(meshGuests(), policy);
  ASSERT_TRUE(text);
  EXPECT_EQ(text->find("tag_"), std::string::npos);
  EXPECT_EQ(text->find("plfm-wg0"), std::string::npos);
  EXPECT_EQ(text->find("mesh_"), std::string::npos);
}

TEST(Firewall, TheOrgTagIsReadFromAddressesInsideTheClusterPrefix) {
  auto mesh = parseMeshFilter("fd7a:5c00::/48", "wg-a");
  ASSERT_TRUE(mesh);
  const auto tag = [&](const char* a) {
    in6_addr x{};
    EXPECT_EQ(inet_pton(AF_INET6, a, &x), 1) << a;
    return mesh->tagOf(x);
  };
  EXPECT_EQ(tag("fd7a:5c00:0:1:0:5:0:2"), 5U);
  EXPECT_EQ(tag("fd7a:5c00:0:9:ffff:fffe:0:2"), 4294967294U);
  EXPECT_EQ(tag("fd7a:5c00:0:1:1:0:0:2"), 65536U);
  EXPECT_EQ(tag("fd7a:5c00:0:1::3"), 0U);       // the old layout
  EXPECT_EQ(tag("fd7a:5c00:0:1::1"), 0U);       // a node's host address
  EXPECT_EQ(tag("fd7a:5c01:0:1:0:5:0:2"), 0U);  // outside the cluster
  EXPECT_EQ(tag("2001:db8::5:0:2"), 0U);
}

TEST(Firewall, MeshSettingsAreParsedStrictly) {
  EXPECT_TRUE(parseMeshFilter("fd7a:5c00::/48", "plfm-wg0"));
  EXPECT_TRUE(parseMeshFilter("fd00::/8", "a"));
  EXPECT_TRUE(parseMeshFilter("fd7a:5c00::/63", "wg-0123456789ab"));  // 15 bytes
  for (std::string_view name : std::initializer_list<std::string_view>{
           "", "wg-0123456789abc", "Plfm-wg0", "wg0 ", "wg\"0", "wg0\n", "wg*", "vt-a1", "vt-*",
           "wg0;flush", "wg.0", "wg_0", std::string_view("wg\0a", 4)}) {
    EXPECT_FALSE(parseMeshFilter("fd7a:5c00::/48", name)) << "accepted '" << name << "'";
  }
  for (const char* prefix : {"fd7a:5c00::/64", "fd7a:5c00::/0", "::/0", "fd7a:5c00::1/48",
                             "fd7a:5c00::", "fd7a:5c00::/48 ", "fd7a:5c00::/48;"}) {
    EXPECT_FALSE(parseMeshFilter(prefix, "plfm-wg0")) << "accepted " << prefix;
  }
}

// A key rotation's two interfaces (mesh.md, "Agent"): rule 3 holds on
// either; the ruleset is otherwise the one-interface one.
TEST(Firewall, BothMeshSlotsAreNamed) {
  FirewallPolicy policy = meshPolicy();
  auto one = renderRuleset(meshGuests(), policy);
  policy.mesh = *parseMeshFilter("fd7a:5c00::/48", "plfm-wg0", "plfm-wg1");
  auto two = renderRuleset(meshGuests(), policy);
  ASSERT_TRUE(one && two);
  const std::string both = R"({ "plfm-wg0", "plfm-wg1" })";
  EXPECT_NE(two->find("iifname " + both + " jump mesh_to_host"), std::string::npos) << *two;
  EXPECT_NE(two->find("iifname " + both + " jump mesh_source"), std::string::npos);
  EXPECT_NE(two->find("iifname != " + both + " counter drop"), std::string::npos);
  std::string back = *two;
  for (size_t at = back.find(both); at != std::string::npos; at = back.find(both)) {
    back.replace(at, both.size(), "\"plfm-wg0\"");
  }
  EXPECT_EQ(back, *one);
  // The same name twice is one interface; a bad second name is refused.
  EXPECT_EQ(parseMeshFilter("fd7a:5c00::/48", "plfm-wg0", "plfm-wg0")->interface2(), "");
  for (const char* bad : {"vt-a1", "wg 1", "Wg1", "wg-0123456789abc"}) {
    EXPECT_FALSE(parseMeshFilter("fd7a:5c00::/48", "plfm-wg0", bad)) << bad;
  }
}

TEST(Firewall, TwoOrgsWithOneTagAreRefused) {
  const FirewallPolicy policy = meshPolicy();
  auto r = renderRuleset({guest("vt-a1", "fd7a:5c00:0:1:0:5:0:2", "org:a"),
                          guest("vt-a2", "fd7a:5c00:0:1:0:5:0:3", "org:b")},
                         policy);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().toString().find("two orgs with one org tag"), std::string::npos);
  EXPECT_EQ(r.error().toString().find("org:"), std::string::npos);  // org ids are not rendered
  // The same tag on two nodes' prefixes, one org: fine. Tag 0 (old layout)
  // is shared by every org.
  EXPECT_TRUE(renderRuleset(
      {guest("vt-a1", "fd7a:5c00:0:1:0:5:0:2", "org:a"),
       guest("vt-a2", "fd7a:5c00:0:2:0:5:0:3", "org:a"),
       guest("vt-a3", "fd7a:5c00:0:1::2", "org:b"), guest("vt-a4", "fd7a:5c00:0:1::3", "org:c")},
      policy));
  // Without a mesh, tags mean nothing.
  EXPECT_TRUE(renderRuleset({guest("vt-a1", "fd7a:5c00:0:1:0:5:0:2", "org:a"),
                             guest("vt-a2", "fd7a:5c00:0:1:0:5:0:3", "org:b")}));
}

// The DNS responder's rule: one line in guest_to_host, after anti-spoofing,
// to exactly the host address; nothing else changes.
TEST(Firewall, TheDnsResponderAddsOneRuleToGuestToHost) {
  FirewallPolicy policy = meshPolicy();
  auto without = renderRuleset(meshGuests(), policy);
  policy.dns_responder = *parseIpv6Prefix("fd7a:5c00:0:1::1/128");
  auto with = renderRuleset(meshGuests(), policy);
  ASSERT_TRUE(without && with);
  const std::string rule =
      "\t\tjump guest_source\n\t\tip6 daddr fd7a:5c00:0:1::1 meta l4proto { udp, tcp } th dport "
      "53 accept\n";
  const std::size_t at = with->find(rule);
  ASSERT_NE(at, std::string::npos) << *with;
  EXPECT_GT(at, with->find("chain guest_to_host"));
  EXPECT_LT(at, with->find("\n\t}", with->find("chain guest_to_host")));
  std::string back = *with;
  back.erase(at + 20, rule.size() - 20);
  EXPECT_EQ(back, *without);
  plfm::testing::TempDir dir("fw");
  NftFirewall fw(dir.path(), dir.file("no-such-nft"));
  EXPECT_FALSE(fw.setDnsResponder(std::nullopt));
  EXPECT_TRUE(fw.setDnsResponder(policy.dns_responder));
  EXPECT_FALSE(fw.setDnsResponder(policy.dns_responder));
}

TEST(Firewall, SetMeshReportsAChange) {
  plfm::testing::TempDir dir("fw");
  NftFirewall fw(dir.path(), dir.file("no-such-nft"));
  EXPECT_FALSE(fw.setMesh(std::nullopt));
  EXPECT_TRUE(fw.setMesh(*parseMeshFilter("fd7a:5c00::/48", "plfm-wg0")));
  EXPECT_FALSE(fw.setMesh(*parseMeshFilter("fd7a:5c00:0::/48", "plfm-wg0")));
  EXPECT_TRUE(fw.setMesh(*parseMeshFilter("fd7a:5c00::/48", "wg-b")));
  EXPECT_TRUE(fw.setMesh(std::nullopt));
}

TEST(Firewall, PolicyPrefixesAreParsedStrictlyAndRenderedCanonically) {
  EXPECT_EQ(parseIpv6Prefix("FC00::/7")->str(), "fc00::/7");
  EXPECT_EQ(parseIpv6Prefix("2001:db8:0:0::/64")->str(), "2001:db8::/64");
  EXPECT_EQ(parseIpv6Prefix("::/0")->str(), "::/0");
  EXPECT_EQ(parseIpv6Prefix("2001:db8::1/128")->str(), "2001:db8::1/128");
  for (const char* bad : {"", "fc00::", "fc00::/", "fc00::/129", "fc00::/-1", "fc00::/7 ",
                          "fc00::1/64", "10.0.0.0/8", "fc00::/7;flush ruleset", "fc00::/7\n",
                          "\"fc00::\"/7", "fc00::/0007", "fc00::/7/8", "::ffff:1.2.3.4/200"}) {
    EXPECT_FALSE(parseIpv6Prefix(bad)) << bad;
  }
}

TEST(Firewall, RulesetWithoutGuestsMatchesGolden) {
  auto text = renderRuleset({});
  ASSERT_TRUE(text) << text.error().toString();
  PLFM_EXPECT_GOLDEN("netdev/golden/no_guests.nft", *text);
}

TEST(Firewall, OrgKeysNeverReachTheScript) {
  const std::string hostile = "org:\" } ; flush ruleset ; table inet x { #\n";
  auto text = renderRuleset({guest("vt-a1", "fd00::1", hostile), guest("vt-a2", "fd00::2", "o2")});
  ASSERT_TRUE(text);
  EXPECT_EQ(text->find("flush"), std::string::npos) << *text;
  EXPECT_EQ(text->find("o2"), std::string::npos) << *text;
  EXPECT_NE(text->find("chain org_1 {"), std::string::npos);
  EXPECT_NE(text->find("chain org_2 {"), std::string::npos);
}

TEST(Firewall, HostileTapNamesAreRefused) {
  for (std::string_view tap : std::initializer_list<std::string_view>{
           "", "vt-", "eth0", "lo", "vt-*", "vt-a b", "vt-a\"", "vt-a\n", "vt-A1", "vt-a;",
           "vt-0123456789abc", "xvt-a", "vt-a}", "vt-a\\", std::string_view("vt-a\0b", 6)}) {
    auto g = parseGuestFilter(tap, "fd00::1", "org:a");
    EXPECT_FALSE(g) << "accepted tap '" << tap << "'";
    if (!g) {
      EXPECT_EQ(g.error().code(), errc::kInvalidArgument);
    }
  }
  EXPECT_TRUE(parseGuestFilter("vt-0123456789ab", "fd00::1", "org:a"));  // 15 bytes
  EXPECT_TRUE(parseGuestFilter("vt-test0", "fd00::1", "org:a"));
}

TEST(Firewall, HostileAddressesAreRefused) {
  const std::string huge(5000, 'f');
  for (std::string_view address :
       std::initializer_list<std::string_view>{"",
                                               "fe80::1",
                                               "fe80::1%eth0",
                                               "::",
                                               "::1",
                                               "ff02::1",
                                               "ff0e::1",
                                               "::ffff:192.0.2.1",
                                               "192.0.2.1",
                                               "fd00::1 ",
                                               " fd00::1",
                                               "fd00::1\n",
                                               "fd00::1 }",
                                               "fd00::1, ::/0",
                                               "fd00::/64",
                                               "::/0",
                                               "fd00::1;flush ruleset",
                                               "fd00::g",
                                               std::string_view(huge),
                                               std::string_view("fd00::1\0x", 9)}) {
    auto g = parseGuestFilter("vt-a1", address, "org:a");
    EXPECT_FALSE(g) << "accepted address '" << address << "'";
  }
  for (std::string_view v4 : {"0.0.0.0", "127.0.0.1", "224.0.0.1", "255.255.255.255", "1.2.3",
                              "10.0.0.1 ", "10.0.0.1/8", "::1", "10.0.0.1\n"}) {
    EXPECT_FALSE(parseGuestFilter("vt-a1", "fd00::1", "org:a", v4)) << "accepted IPv4 " << v4;
  }
  EXPECT_FALSE(parseGuestFilter("vt-a1", "fd00::1", ""));  // no org
  EXPECT_TRUE(parseGuestFilter("vt-a1", "2a01:4f8::1", "org:a", "198.51.100.9"));
}

TEST(Firewall, TwoGuestsCannotShareATapOrAnAddress) {
  EXPECT_FALSE(renderRuleset({guest("vt-a1", "fd00::1", "o"), guest("vt-a1", "fd00::2", "o")}));
  // The same address spelled two ways is still the same address.
  EXPECT_FALSE(renderRuleset({guest("vt-a1", "fd00::1", "o"), guest("vt-a2", "fd00:0::0:1", "p")}));
}

TEST(Firewall, AMissingNftFailsWithAClearError) {
  plfm::testing::TempDir dir("fw");
  NftFirewall fw(dir.path(), dir.file("no-such-nft"));
  auto r = fw.apply({guest("vt-a1", "fd00::1", "o")});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), "netdev.nft_missing");
  EXPECT_NE(r.error().message().find("install nftables"), std::string::npos);
  NftFirewall by_name(dir.path(), "plfm-no-such-nft");
  EXPECT_FALSE(by_name.remove());
}

using testing::inNetns;

std::string listTable(const std::string& dir) {
  SpawnOptions so;
  so.stdout_path = dir + "/list.out";
  (void)std::remove(so.stdout_path.c_str());
  (void)runChecked({"nft", "list", "table", "inet", "plfm_agent"}, so);
  return readFile(so.stdout_path).value_or("");
}

TEST(Firewall, NftAppliesRewritesAndRemovesTheTable) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace and nft";
  if (::access("/usr/sbin/nft", X_OK) != 0) GTEST_SKIP() << "nft is not installed";
  plfm::testing::TempDir dir("fw");
  int failures = inNetns([&] {
    int bad = 0;
    auto check = [&](bool good, const char* what) {
      if (!good) {
        std::fprintf(stderr, "failed: %s\n", what);
        ++bad;
      }
    };
    FirewallPolicy policy;
    policy.inbound_allowed = {*parseIpv6Prefix("2001:db8:100::/48")};
    policy.egress_denied = {*parseIpv6Prefix("fc00::/7"), *parseIpv6Prefix("fd00::/8")};
    NftFirewall fw(dir.path(), "nft", policy);
    check(fw.remove().has_value(), "removing a missing table");
    check(fw.apply({}).has_value(), "applying no guests");
    check(listTable(dir.path()).find("chain forward") != std::string::npos, "chain forward");
    check(listTable(dir.path()).find("2001:db8:100::/48") != std::string::npos, "inbound set");
    // A rewrite replaces the elements (no leftovers from the previous one).
    check(fw.apply({guest("vt-a1", "fd00::1", "o1"), guest("vt-a2", "fd00::2", "o2")}).has_value(),
          "applying two guests");
    check(fw.apply({guest("vt-a2", "fd00::2", "o2")}).has_value(), "applying one guest");
    std::string listed = listTable(dir.path());
    check(listed.find("\"vt-a2\" . fd00::2") != std::string::npos, "vt-a2 listed");
    check(listed.find("vt-a1") == std::string::npos, "vt-a1 gone");
    check(listed.find("chain org_2") == std::string::npos, "one org left");
    check(fw.remove().has_value(), "removing the table");
    check(listTable(dir.path()).find("chain forward") == std::string::npos, "table gone");
    return bad;
  });
  EXPECT_EQ(failures, 0) << tailFile(dir.file("nft.log"), 20);
}

TEST(Firewall, NftAcceptsTheMeshRuleset) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace and nft";
  if (::access("/usr/sbin/nft", X_OK) != 0) GTEST_SKIP() << "nft is not installed";
  plfm::testing::TempDir dir("fw");
  int failures = inNetns([&] {
    int bad = 0;
    NftFirewall fw(dir.path(), "nft", meshPolicy());
    if (!fw.apply(meshGuests())) ++bad;
    const std::string listed = listTable(dir.path());
    for (const char* want : {"chain tag_5_send", "chain tag_7_recv", "chain mesh_source",
                             "iifname \"plfm-wg0\" jump mesh_to_host", "::5:0:0"}) {
      if (listed.find(want) == std::string::npos) {
        std::fprintf(stderr, "not listed: %s\n", want);
        ++bad;
      }
    }
    if (!fw.setMesh(std::nullopt) || !fw.apply(meshGuests())) ++bad;
    if (listTable(dir.path()).find("tag_5") != std::string::npos) ++bad;
    return bad;
  });
  EXPECT_EQ(failures, 0) << tailFile(dir.file("nft.log"), 20) << listTable(dir.path());
}

}  // namespace
}  // namespace plfm::netdev
