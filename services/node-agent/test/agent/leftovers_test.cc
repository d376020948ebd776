// agent/leftovers.h against a host of our own: what `plfm-node-agent
// leftovers` lists and releases for `vt dev down`.
#include "agent/leftovers.h"

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>

namespace plfm::agent {
namespace {

struct LeftoversHost {
  std::set<std::string> links;
  std::set<pid_t> running;
  std::map<std::string, std::vector<std::string>> groups;
  std::vector<std::string> removed;

  LeftoverProbe probe() {
    LeftoverProbe p;
    p.link_exists = [this](const std::string& l) { return links.count(l) != 0; };
    p.vmm_alive = [this](const runtime::VmHandle& vm) { return running.count(vm.pid) != 0; };
    p.groups_of = [this](const std::string& id) {
      auto it = groups.find(id);
      return it == groups.end() ? std::vector<std::string>{} : it->second;
    };
    p.remove_tap = [this](const std::string& l) {
      links.erase(l);
      removed.push_back("tap " + l);
    };
    p.remove_groups = [this](const std::string& id) {
      groups.erase(id);
      removed.push_back("groups " + id);
    };
    return p;
  }
};

InstanceRecord record(const std::string& id, pid_t pid, const std::string& tap) {
  InstanceRecord r;
  r.workload.instance_id = id;
  if (pid > 0) {
    runtime::VmHandle vm;
    vm.pid = pid;
    vm.instance_id = id;
    r.vm = vm;
  }
  r.tap = tap;
  return r;
}

TEST(Leftovers, ListsOnlyRecordsThatStillHoldSomethingInIdOrder) {
  LeftoversHost host;
  host.links = {"vt-b", "vt-c"};
  host.running = {20};
  host.groups["inst_b"] = {"/sys/fs/cgroup/cpu/plfm-vms/inst_b"};
  const std::vector<InstanceRecord> records = {
      record("inst_c", 0, "vt-c"),      // a tap, no VMM
      record("inst_a", 10, "vt-gone"),  // VMM dead, tap gone, no groups: nothing
      record("inst_b", 20, "vt-b"),     // VMM running
  };
  const auto left = findLeftovers(records, host.probe());
  ASSERT_EQ(left.size(), 2U);
  EXPECT_EQ(left[0].instance_id, "inst_b");
  EXPECT_TRUE(left[0].vmm_running);
  EXPECT_EQ(left[0].vmm_pid, 20);
  EXPECT_EQ(left[0].tap, "vt-b");
  EXPECT_EQ(left[0].cgroups, std::vector<std::string>{"/sys/fs/cgroup/cpu/plfm-vms/inst_b"});
  EXPECT_EQ(left[1].instance_id, "inst_c");
  EXPECT_FALSE(left[1].vmm_running);
  EXPECT_EQ(left[1].tap, "vt-c");
  EXPECT_EQ(leftoversText(left),
            "vmm 20 (inst_b)\n"
            "tap vt-b (inst_b)\n"
            "cgroup /sys/fs/cgroup/cpu/plfm-vms/inst_b (inst_b)\n"
            "tap vt-c (inst_c)\n");
}

TEST(Leftovers, RemoveReleasesWhatNoRunningVmmHoldsAndReportsTheRest) {
  LeftoversHost host;
  host.links = {"vt-b", "vt-c"};
  host.running = {20};
  host.groups["inst_b"] = {"/g/inst_b"};
  host.groups["inst_c"] = {"/g/inst_c"};
  const std::vector<InstanceRecord> records = {record("inst_b", 20, "vt-b"),
                                               record("inst_c", 30, "vt-c")};
  const auto left = removeLeftovers(records, host.probe());
  EXPECT_EQ(host.removed, (std::vector<std::string>{"tap vt-c", "groups inst_c"}));
  ASSERT_EQ(left.size(), 1U);
  EXPECT_EQ(left[0].instance_id, "inst_b");  // a running VMM's tap and group are its own
  // A second run finds the same and removes nothing more.
  host.removed.clear();
  EXPECT_EQ(removeLeftovers(records, host.probe()), left);
  EXPECT_TRUE(host.removed.empty());
}

TEST(Leftovers, JsonNamesEveryFieldWithNullForNoTap) {
  Leftover l;
  l.instance_id = "inst_a";
  l.cgroups = {"/g/inst_a"};
  const auto j = leftoversJson({l});
  EXPECT_EQ(j.dump(), R"({"instances":[{"cgroups":["/g/inst_a"],"instance_id":"inst_a","tap":null,)"
                      R"("vmm_pid":0,"vmm_running":false}]})");
  EXPECT_EQ(leftoversJson({}).dump(), R"({"instances":[]})");
}

}  // namespace
}  // namespace plfm::agent
