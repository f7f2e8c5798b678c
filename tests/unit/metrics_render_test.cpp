#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include "exporters/prometheus_text.h"

using namespace kvmprof;

namespace {

std::string scrape(const Snapshot& s) {
  return prometheus::TextSerializer().Serialize(render(s, {"1.2.3", "abc"}));
}

Snapshot one_vm(std::string name) {
  Snapshot s;
  VmSample vm{std::move(name), "3cd4a570-41dc-49b4-9ff4-5bb95413e660", "default", true, {}, {{"host_user", 1.5}}, {}};
  vm.vcpus.push_back({0, {{"all", 2.5}}, 0.25, {{"all", 10}}, {{"task-clock", "all", 9, 1, 1}}});
  s.vms.push_back(vm);
  s.sources.push_back({"perf:kvm:kvm_exit", false, "never fires"});
  return s;
}

}  // namespace

TEST(MetricsRender, EscapesQuotesBackslashesAndNewlinesInVmNames) {
  std::string text = scrape(one_vm("a \"b\" \\ c\nÜ"));
  EXPECT_NE(text.find(R"(kvmprof_vm_info{domain="a \"b\" \\ c\nÜ",uuid="3cd4a570-41dc-49b4-9ff4-5bb95413e660",policy="default"} 1)"),
            std::string::npos)
      << text;
}

TEST(MetricsRender, ExportsEveryVcpuSeriesWithItsLabels) {
  std::string text = scrape(one_vm("vm1"));
  const std::string vcpu = R"(domain="vm1",uuid="3cd4a570-41dc-49b4-9ff4-5bb95413e660",vcpu="0")";
  EXPECT_NE(text.find("kvmprof_vcpu_cpu_seconds_total{" + vcpu + R"(,mode="all"} 2.5)"), std::string::npos);
  EXPECT_NE(text.find("kvmprof_vcpu_wait_seconds_total{" + vcpu + "} 0.25"), std::string::npos);
  EXPECT_NE(text.find("kvmprof_vcpu_exits_total{" + vcpu + R"(,reason="all"} 10)"), std::string::npos);
  EXPECT_NE(text.find("kvmprof_vcpu_events_total{" + vcpu + R"(,event="task-clock",mode="all"} 9)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(kvmprof_source_up{source="perf:kvm:kvm_exit"} 0)"), std::string::npos);
  EXPECT_NE(text.find(R"(kvmprof_build_info{version="1.2.3",revision="abc"} 1)"), std::string::npos);
}

TEST(MetricsRender, AStoppedVmLeavesNoSeries) {
  Snapshot empty;
  std::string text = scrape(empty);
  EXPECT_EQ(text.find("domain="), std::string::npos);
  EXPECT_NE(text.find("kvmprof_vms 0"), std::string::npos);
}
