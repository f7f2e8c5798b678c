#include <gtest/gtest.h>

#include "exporters/prometheus_text.h"
#include "tests/support/series.h"

using namespace kvmprof;
using namespace kvmprof::testing;

namespace {

const std::string kUuid = "3cd4a570-41dc-49b4-9ff4-5bb95413e660";

std::string scrape(const Snapshot& s) { return prometheus_text(s, {"1.2.3", "abc"}); }

Snapshot one_vm(std::string name) {
  Snapshot s;
  VmSample vm{std::move(name), kUuid, "default", true, {}, {{"host_user", 1.5}}, {}, {}, {}, {}};
  vm.vcpus.push_back({0, {{"all", 2.5}}, 0.25, {{"all", 10}}, {{"task-clock", "all", 9, 1, 1}}, {}});
  s.vms.push_back(vm);
  s.sources.push_back({"perf:kvm:kvm_exit", false, "never fires"});
  return s;
}

// Every kind of series at once: split events (host and guest of one event), a per-VM
// aggregated VM, errors, limits and the collection histogram.
Snapshot everything() {
  Snapshot s = one_vm("vm1");
  VcpuSample& v = s.vms[0].vcpus[0];
  v.events.push_back({"cycles", "host", 100, 2, 1});
  v.events.push_back({"cycles", "guest", 300, 2, 1});
  s.vms[0].vcpus.push_back({1, {{"guest", 1}, {"host_kernel", 2}, {"host_user", 3}}, 0.5, {{"all", 4}, {"halt", 2}},
                            {{"cycles", "host", 10, 2, 2}, {"cycles", "guest", 30, 2, 2}}, {}});
  VmSample aggregated{"vm2", "00000000-0000-0000-0000-000000000002", "batch", true, {{0, {{"all", 1}}, 0, {}, {}, {}}},
                      {}, {}, {}, {}, {}};
  aggregated.events = {{"cycles", "host", 1, 1, 1}, {"cycles", "guest", 2, 1, 1}};
  s.vms.push_back(aggregated);
  s.event_info.push_back({"count", "cycles", "default", "split", 0, "ok", "split", "counts host and guest apart", "type=0"});
  s.event_info.push_back({"count", "cycles", "batch", "auto", 0, "degraded", "host", "hybrid", "type=0"});
  s.event_info.push_back({"sample", "cycles", "batch", "auto", 0, "ok", "all", "samples", "type=0 sample_type=IP"});
  s.vms[0].vcpus[0].samples = {{"cpu-clock", "host_kernel", 7}, {"cpu-clock", "guest_kernel", 2}};
  s.vms[0].emulator_samples = {{"cpu-clock", "host_user", 3}};
  s.vms[0].samples_lost = {{"ring_full", 4}, {"kernel_dropped", 0}, {"corrupt", 1}};
  s.vms[0].sample_throttles = 5;
  s.limit_actions.push_back({"batch", "per_vm", ""});
  s.limit_actions.push_back({"batch", "dropped", "instructions"});
  s.perf_open_errors[{"cycles", "EACCES"}] = 3;
  s.read_errors[{"procfs", "ESRCH"}] = 1;
  s.discovery_errors["qemu_process_not_found"] = 1;
  s.collection_duration = {{0.01, 0.1}, {3, 5}, 6, 0.4};
  return s;
}

}  // namespace

TEST(MetricsRender, EscapesQuotesBackslashesAndNewlinesInVmNames) {
  std::string text = scrape(one_vm("a \"b\" \\ c\nÜ"));
  EXPECT_NE(text.find(R"(kvmprof_vm_info{domain="a \"b\" \\ c\nÜ",uuid="3cd4a570-41dc-49b4-9ff4-5bb95413e660",policy="default"} 1)"),
            std::string::npos)
      << text;
  EXPECT_EQ(parse_scrape(text).values.count({"kvmprof_vm_info", {{"domain", "a \"b\" \\ c\nÜ"}, {"uuid", kUuid}, {"policy", "default"}}}), 1u);
}

TEST(MetricsRender, ExportsEveryVcpuSeriesWithItsLabels) {
  std::string text = scrape(one_vm("vm1"));
  const std::string vcpu = R"(domain="vm1",uuid="3cd4a570-41dc-49b4-9ff4-5bb95413e660",vcpu="0")";
  EXPECT_NE(text.find("kvmprof_vcpu_cpu_seconds_total{" + vcpu + R"(,mode="all"} 2.5)"), std::string::npos);
  EXPECT_NE(text.find("kvmprof_vcpu_wait_seconds_total{" + vcpu + "} 0.25"), std::string::npos);
  EXPECT_NE(text.find("kvmprof_vcpu_exits_total{" + vcpu + R"(,reason="all"} 10)"), std::string::npos);
  EXPECT_NE(text.find("kvmprof_vcpu_events_total{" + vcpu + R"(,event="task-clock",mode="all"} 9)"), std::string::npos);
  EXPECT_NE(text.find("kvmprof_vcpu_event_running_seconds_total{" + vcpu + R"(,event="task-clock",mode="all"} 1)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(kvmprof_source_up{source="perf:kvm:kvm_exit"} 0)"), std::string::npos);
  EXPECT_NE(text.find(R"(kvmprof_build_info{version="1.2.3",revision="abc"} 1)"), std::string::npos);
}

TEST(MetricsRender, EverySeriesIsUniqueWithSplitEventsPerVmSumsAndHistograms) {
  Scrape s = parse_scrape(scrape(everything()));
  EXPECT_TRUE(s.duplicates.empty()) << s.duplicates.front();
  Labels host{{"domain", "vm1"}, {"uuid", kUuid}, {"vcpu", "0"}, {"event", "cycles"}, {"mode", "host"}};
  Labels guest = host;
  guest["mode"] = "guest";
  EXPECT_EQ(s.values.at({"kvmprof_vcpu_event_enabled_seconds_total", host}), 2);
  EXPECT_EQ(s.values.at({"kvmprof_vcpu_event_running_seconds_total", guest}), 1);
  EXPECT_EQ(s.values.at({"kvmprof_vm_events_total", {{"domain", "vm2"}, {"uuid", "00000000-0000-0000-0000-000000000002"},
                                                     {"event", "cycles"}, {"mode", "guest"}}}), 2);
  EXPECT_EQ(s.values.at({"kvmprof_collection_duration_seconds_bucket", {{"le", "+Inf"}}}), 6);
  EXPECT_EQ(s.values.at({"kvmprof_event_info", {{"use", "count"}, {"event", "cycles"}, {"policy", "batch"}, {"guest", "auto"},
                                                {"precise", "0"}, {"status", "degraded"}, {"counts", "host"},
                                                {"reason", "hybrid"}, {"attrs", "type=0"}}}), 1);
  Labels vm1{{"domain", "vm1"}, {"uuid", kUuid}};
  Labels guest_samples = vm1;
  guest_samples.insert({{"vcpu", "0"}, {"event", "cpu-clock"}, {"mode", "guest_kernel"}});
  EXPECT_EQ(s.values.at({"kvmprof_vcpu_samples_total", guest_samples}), 2);
  Labels emulator = vm1;
  emulator.insert({{"event", "cpu-clock"}, {"mode", "host_user"}});
  EXPECT_EQ(s.values.at({"kvmprof_vm_emulator_samples_total", emulator}), 3);
  Labels ring_full = vm1;
  ring_full["reason"] = "ring_full";
  EXPECT_EQ(s.values.at({"kvmprof_samples_lost_total", ring_full}), 4);
  EXPECT_EQ(s.values.at({"kvmprof_sample_throttles_total", vm1}), 5);
}

TEST(MetricsRender, TheDuplicateCheckCatchesARepeatedSeries) {
  Snapshot s = one_vm("vm1");
  s.vms[0].vcpus[0].events.push_back(s.vms[0].vcpus[0].events[0]);
  EXPECT_EQ(parse_scrape(scrape(s)).duplicates.size(), 3u);  // value, enabled and running
}
