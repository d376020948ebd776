// Unit tests of the agent's pure parts: the instance state machine, the
// WorkloadSpec -> CONFIG mapping, user resolution, records and the log.
#include <gtest/gtest.h>

#include <fstream>

#include "agent/agent.h"
#include "agent/guest_config.h"
#include "agent/instance_fsm.h"
#include "agent/instance_log.h"
#include "agent/instance_record.h"
#include "agent/workload_check.h"
#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::agent {
namespace {

using nlohmann::json;

TEST(InstanceFsm, TheHappyPathAndItsExits) {
  Phase p = Phase::kAllocated;
  for (Phase next :
       {Phase::kPreparing, Phase::kBooting, Phase::kRunning, Phase::kStopping, Phase::kStopped}) {
    ASSERT_TRUE(transition(p, next)) << phaseName(next);
  }
  EXPECT_EQ(p, Phase::kStopped);
}

TEST(InstanceFsm, EveryTransitionIsExplicit) {
  // from -> the phases it may go to; everything else is refused.
  const std::map<Phase, std::set<Phase>> allowed = {
      {Phase::kAllocated, {Phase::kPreparing, Phase::kStopping, Phase::kStopped, Phase::kFailed}},
      {Phase::kPreparing, {Phase::kBooting, Phase::kStopping, Phase::kFailed}},
      {Phase::kBooting, {Phase::kRunning, Phase::kStopping, Phase::kStopped, Phase::kFailed}},
      {Phase::kRunning, {Phase::kStopping, Phase::kStopped, Phase::kFailed}},
      {Phase::kStopping, {Phase::kStopped, Phase::kFailed}},
      {Phase::kStopped, {}},
      {Phase::kFailed, {}},
  };
  for (const auto& [from, tos] : allowed) {
    for (int t = 0; t <= static_cast<int>(Phase::kFailed); ++t) {
      auto to = static_cast<Phase>(t);
      EXPECT_EQ(transitionAllowed(from, to), tos.count(to) == 1)
          << phaseName(from) << " -> " << phaseName(to);
    }
  }
  Phase p = Phase::kStopped;
  auto r = transition(p, Phase::kBooting);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), "agent.bad_transition");
  EXPECT_EQ(p, Phase::kStopped);
}

TEST(InstanceFsm, NamesRoundTrip) {
  for (int t = 0; t <= static_cast<int>(Phase::kFailed); ++t) {
    auto p = static_cast<Phase>(t);
    EXPECT_EQ(*parsePhase(phaseName(p)), p);
  }
  EXPECT_FALSE(parsePhase("exploded"));
}

json spec() {
  return json::parse(R"({
    "instance_id": "inst_01jd0000000000000000000000", "generation": 2, "desired": "run",
    "org_id": "org_01jd0000000000000000000001", "app_id": "app_01jd0000000000000000000001",
    "env_id": "env_01jd0000000000000000000001", "process_type": "web",
    "release_id": "rel_01jd0000000000000000000001", "deploy_id": null,
    "image": {"ref": "127.0.0.1:5000/hello:v1", "digest": "sha256:)" +
                     std::string(64, 'a') + R"("},
    "command": [], "args": ["--port", "8443"], "env": {"MODE": "prod", "PATH": "/app/bin"},
    "resources": {"vcpus": 1, "memory_mb": 256},
    "network": {"address": "fd7a:5c00:0:1::2", "prefix_len": 128, "gateway": "fe80::1", "mtu": 1420},
    "checks": [], "volumes": [], "secrets": {"version": null},
    "restart": {"count": 1, "not_before": "2026-12-03T06:30:00.250000Z"}})");
}

TEST(Workload, ParsesTheSpec) {
  auto w = Workload::fromJson(spec());
  ASSERT_TRUE(w) << w.error().toString();
  EXPECT_EQ(w->generation, 2);
  EXPECT_EQ(w->address, "fd7a:5c00:0:1::2");
  EXPECT_EQ(w->mtu, 1420);
  EXPECT_EQ(w->restart_not_before_ms, 1796279400250);
  EXPECT_FALSE(w->secrets_version);
  auto bad = spec();
  bad["desired"] = "explode";
  EXPECT_FALSE(Workload::fromJson(bad));
  bad = spec();
  bad.erase("image");
  auto r = Workload::fromJson(bad);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("image"), std::string::npos);
}

// Hostile values for a plan field: each must be refused with a reason that
// names the field and shows the value escaped.
const std::vector<std::string>& hostileIds() {
  static const std::vector<std::string> ids = {
      "../x",
      "a,b",
      "a\nb",
      std::string(300, 'a'),
      "",
      "inst_01jd00000000000000000\xc3\xa9",  // unicode
      "inst_01jd0000000000000000000000/..",
      "inst_01jd0000000000000000,file=/etc/shadow",
      std::string("inst_01jd000000000000000000000") + '\0',
      "inst_01JD0000000000000000000000",  // uppercase
  };
  return ids;
}

void expectRefused(const json& s, std::string_view field) {
  auto w = Workload::fromJson(s);
  ASSERT_FALSE(w) << field << " accepted: " << s.dump();
  EXPECT_NE(w.error().message().find(field), std::string::npos) << w.error().message();
  for (char c : w.error().message()) {
    EXPECT_TRUE(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f)
        << "raw control byte in: " << w.error().message();
  }
}

TEST(WorkloadEdge, HostileInstanceIdsAreRefused) {
  for (const auto& id : hostileIds()) {
    auto bad = spec();
    bad["instance_id"] = id;
    SCOPED_TRACE(id);
    // Strings that are not valid UTF-8 cannot even be JSON text; as a json
    // value they still reach fromJson.
    expectRefused(bad, "instance_id");
    EXPECT_FALSE(refusedInstance(bad)) << "a report would be sent for a bad id";
  }
  auto bad = spec();
  bad["instance_id"] = 42;
  EXPECT_FALSE(Workload::fromJson(bad));
}

TEST(WorkloadEdge, HostileIdsInEveryIdFieldAreRefused) {
  for (const char* field : {"org_id", "app_id", "env_id", "release_id", "deploy_id"}) {
    for (const auto& id : hostileIds()) {
      if (id.empty() && std::string_view(field) != "deploy_id") continue;  // optional
      auto bad = spec();
      bad[field] = id;
      SCOPED_TRACE(std::string(field) + "=" + id);
      expectRefused(bad, field);
      // The instance itself is fine: it is reported failed, alone.
      auto who = refusedInstance(bad);
      ASSERT_TRUE(who);
      EXPECT_EQ(who->instance_id, "inst_01jd0000000000000000000000");
      EXPECT_EQ(who->generation, 2);
    }
  }
  auto bad = spec();
  bad["secrets"]["version"] = "sv_../../etc";
  expectRefused(bad, "secrets.version");
}

TEST(WorkloadEdge, OtherFieldsThatReachPathsOrOptionsAreRefused) {
  struct Case {
    std::string field;
    json::json_pointer where;
    json value;
  };
  const std::vector<Case> cases = {
      {"process_type", json::json_pointer("/process_type"), "web,id=x"},
      {"process_type", json::json_pointer("/process_type"), "../web"},
      {"process_type", json::json_pointer("/process_type"), std::string(31, 'a')},
      {"image.digest", json::json_pointer("/image/digest"), "sha256:../../etc/passwd"},
      {"image.digest", json::json_pointer("/image/digest"), "sha256:" + std::string(64, 'A')},
      {"image.ref", json::json_pointer("/image/ref"), "registry.example/app:v1\nx"},
      {"image.ref", json::json_pointer("/image/ref"), "registry.example/a,b:v1"},
      {"image.ref", json::json_pointer("/image/ref"), ""},
      {"network.address", json::json_pointer("/network/address"),
       std::string("fd00::1") + '\0' + "junk"},
      {"network.address", json::json_pointer("/network/address"), "fd00::1,ifname=eth0"},
      {"network.gateway", json::json_pointer("/network/gateway"), "not-an-address"},
      {"network.mtu", json::json_pointer("/network/mtu"), 100},
      {"resources.vcpus", json::json_pointer("/resources/vcpus"), 0},
      {"resources.vcpus", json::json_pointer("/resources/vcpus"), 100000},
      {"resources.memory_mb", json::json_pointer("/resources/memory_mb"), -1},
      {"generation", json::json_pointer("/generation"), 0},
      {"env key", json::json_pointer("/env/A=B"), "x"},
      {"env.NUL", json::json_pointer("/env/NUL"), std::string("a") + '\0' + "b"},
      {"args[0]", json::json_pointer("/args/0"), std::string("a") + '\0' + "b"},
      {"checks[].path", json::json_pointer("/checks"),
       json::array({{{"type", "http"}, {"port", 80}, {"path", "/ HTTP/1.1\r\nHost: x"}}})},
      {"checks[].port", json::json_pointer("/checks"),
       json::array({{{"type", "tcp"}, {"port", 70000}}})},
      {"checks[].type", json::json_pointer("/checks"), json::array({{{"type", "icmp"}}})},
      {"checks[].failure_threshold", json::json_pointer("/checks"),
       json::array({{{"type", "tcp"}, {"port", 80}, {"failure_threshold", 0}}})},
      {"checks[].failure_threshold", json::json_pointer("/checks"),
       json::array({{{"type", "tcp"}, {"port", 80}, {"failure_threshold", "3"}}})},
  };
  for (const auto& c : cases) {
    auto bad = spec();
    bad[c.where] = c.value;
    SCOPED_TRACE(c.field + " = " + c.value.dump());
    expectRefused(bad, c.field);
  }
}

TEST(WorkloadEdge, ShownValuesAreEscapedAndCut) {
  EXPECT_EQ(shownValue("a,b"), "a,b");
  EXPECT_EQ(shownValue("a\nb"), "a\\x0ab");
  EXPECT_EQ(shownValue("it's"), "it\\x27s");
  EXPECT_EQ(shownValue(std::string(300, 'a')), std::string(64, 'a') + "... (300 bytes)");
}

TEST(GuestConfig, ArgvFollowsOciOverrideRules) {
  auto w = *Workload::fromJson(spec());
  image::ImageConfig img;
  img.entrypoint = {"/app/hello"};
  img.cmd = {"--port", "443"};
  img.env = {"PATH=/usr/bin", "LANG=C.UTF-8"};
  img.workdir = "/app";
  GuestConfigInput in;
  in.workload = &w;
  in.image = &img;
  auto c = guestConfig(in);
  ASSERT_TRUE(c) << c.error().toString();
  // args replace the image's cmd, the entrypoint stays.
  EXPECT_EQ(c->argv, (std::vector<std::string>{"/app/hello", "--port", "8443"}));
  EXPECT_EQ(c->workdir, "/app");
  // Image env, then the manifest's (PATH overridden in place), then PLFM_*.
  ASSERT_GE(c->env.size(), 4U);
  EXPECT_EQ(c->env[0], "PATH=/app/bin");
  EXPECT_EQ(c->env[1], "LANG=C.UTF-8");
  EXPECT_EQ(c->env[2], "MODE=prod");
  EXPECT_NE(
      std::find(c->env.begin(), c->env.end(), "PLFM_INSTANCE_ID=inst_01jd0000000000000000000000"),
      c->env.end());
  ASSERT_TRUE(c->network);
  EXPECT_EQ(guest_proto::formatIpv6(c->network->ipv6_address), "fd7a:5c00:0:1::2");
  EXPECT_EQ(c->network->ipv6_prefix_len, 128);
  EXPECT_EQ(c->network->mtu, 1420U);
  EXPECT_EQ(c->hostname, "inst-01jd0000000000000000000000");
  EXPECT_FALSE(c->network->ipv4);  // no guest IPv4 given

  // A guest IPv4: a /32 behind the on-link gateway 169.254.0.1.
  in.ipv4 = "10.42.1.2";
  auto v4 = guestConfig(in);
  ASSERT_TRUE(v4 && v4->network && v4->network->ipv4);
  EXPECT_EQ(guest_proto::formatIpv4(v4->network->ipv4->address), "10.42.1.2");
  EXPECT_EQ(v4->network->ipv4->prefix_len, 32);
  EXPECT_EQ(guest_proto::formatIpv4(*v4->network->ipv4->gateway), "169.254.0.1");
  in.ipv4.clear();
  EXPECT_TRUE(c->nameservers.empty());  // no responder: none
  in.nameserver = "fd7a:5c00:0:1::1";
  EXPECT_EQ(guestConfig(in)->nameservers, (std::vector<std::string>{"fd7a:5c00:0:1::1"}));
  in.nameserver.clear();

  // A command replaces the entrypoint and drops the image's cmd.
  w.command = {"/bin/sh", "-c"};
  w.args = {};
  auto c2 = guestConfig(in);
  ASSERT_TRUE(c2);
  EXPECT_EQ(c2->argv, (std::vector<std::string>{"/bin/sh", "-c"}));

  // Nothing to run at all.
  w.command = {};
  img.entrypoint = {};
  img.cmd = {};
  auto c3 = guestConfig(in);
  ASSERT_FALSE(c3);
  EXPECT_NE(c3.error().message().find("nothing to run"), std::string::npos);
}

TEST(GuestConfig, UsersResolveFromTheImagesFiles) {
  UserDb db;
  db.passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
  db.group = "root:x:0:\napp:x:1000:\nstaff:x:50:app,other\nvideo:x:44:app\n";
  auto r = resolveUser("app", db);
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ(r->uid, 1000U);
  EXPECT_EQ(r->gid, 1000U);
  EXPECT_EQ(r->groups, (std::vector<uint32_t>{50, 44}));
  EXPECT_EQ(resolveUser("1000", db)->gid, 1000U);
  EXPECT_EQ(resolveUser("4242", db)->uid, 4242U);  // numeric need not be listed
  EXPECT_EQ(resolveUser("4242", db)->gid, 0U);
  EXPECT_EQ(resolveUser("app:staff", db)->gid, 50U);
  EXPECT_EQ(resolveUser("app:7", db)->gid, 7U);
  EXPECT_EQ(resolveUser("", db)->uid, 0U);
  auto missing = resolveUser("nobody", db);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("'nobody'"), std::string::npos);
  EXPECT_FALSE(resolveUser("app:nogroup", db));
}

TEST(InstanceRecord, RoundTripsAndCorruptRecordsAreMovedAside) {
  plfm::testing::TempDir dir("rec");
  StateStore store(dir.path());
  InstanceRecord rec;
  rec.workload = *Workload::fromJson(spec());
  rec.phase = Phase::kRunning;
  runtime::VmHandle vm;
  vm.driver = "qemu";
  vm.instance_id = rec.workload.instance_id;
  vm.pid = 1234;
  vm.pid_start = 99;
  vm.control_socket = "/x/qmp.sock";
  vm.channel_socket = "/x/ch.sock";
  rec.vm = vm;
  rec.tap = "vt-abc";
  rec.report_seq = 7;
  rec.exit_code = 3;
  rec.timings.boot_ms = 1500;
  rec.exec_revision = 1;   // an adopted VM's guest still serves exec
  rec.ipv4 = "10.42.1.2";  // an adopted guest keeps its IPv4
  ASSERT_TRUE(store.save(rec));
  std::ofstream(dir.file("inst_broken.json")) << "{not json";
  auto all = store.loadAll();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 1U);
  const auto& back = (*all)[0];
  EXPECT_EQ(back.phase, Phase::kRunning);
  EXPECT_EQ(back.vm->pid, 1234);
  EXPECT_EQ(back.vm->pid_start, 99U);
  EXPECT_EQ(back.tap, "vt-abc");
  EXPECT_EQ(back.report_seq, 7);
  EXPECT_EQ(back.exit_code, 3);
  EXPECT_EQ(back.timings.boot_ms, 1500);
  EXPECT_EQ(back.exec_revision, 1U);
  EXPECT_EQ(back.ipv4, "10.42.1.2");
  EXPECT_TRUE(std::filesystem::exists(dir.file("inst_broken.json.corrupt")));
}

TEST(InstanceLog, SplitsLinesMasksSecretsAndRotates) {
  plfm::testing::TempDir dir("log");
  std::string path = dir.file("i.log");
  InstanceLog log(path, "inst_1", 600);
  log.mask({"s3cr3t-value", "ab"});  // too-short values are not masked
  log.append("stdout", 1'000'000'000, "hello ");
  log.append("stdout", 2'000'000'000, "world\nthe key is s3cr3t-value ok\npartial");
  log.append("stderr", 3'000'000'000, "oops\r\n");
  log.flush();
  std::string text = readFile(path).value_or("");
  EXPECT_NE(
      text.find(
          R"("ts":"1970-01-01T00:00:01.000000Z","instance_id":"inst_1","stream":"stdout","line":"hello world")"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find(R"("line":"the key is [redacted] ok")"), std::string::npos);
  EXPECT_EQ(text.find("s3cr3t"), std::string::npos);
  EXPECT_NE(text.find(R"("stream":"stderr","line":"oops")"), std::string::npos);
  EXPECT_NE(text.find(R"("line":"partial")"), std::string::npos);
  for (int i = 0; i < 20; ++i)
    log.append("stdout", 4'000'000'000, "line number " + std::to_string(i) + "\n");
  EXPECT_TRUE(std::filesystem::exists(path + ".1"));
  EXPECT_LE(std::filesystem::file_size(path), 600U);
}

// The agent's /v1/instances (instance ids, failure reasons) answers only
// loopback clients; the underlay gets 403 (docs/security.md).
TEST(AgentListener, TheInstanceListIsForLoopbackOnly) {
  for (const char* local :
       {"[::1]:53211", "127.0.0.1:80", "127.0.0.53:1", "[::ffff:127.0.0.1]:9", "unix"}) {
    EXPECT_TRUE(fromLoopback(local)) << local;
  }
  for (const char* remote : {"[2001:db8::1]:5", "10.0.0.1:80", "[::11]:5", "[fe80::1]:1",
                             "[::ffff:10.0.0.1]:2", "", "[::]:1"}) {
    EXPECT_FALSE(fromLoopback(remote)) << remote;
  }
}

}  // namespace
}  // namespace plfm::agent
