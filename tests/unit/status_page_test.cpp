// The status page at `/`: what the agent is and sees, every outside string escaped and shown as
// it is.
#include "exporters/status_page.h"

#include <gtest/gtest.h>

namespace kvmprof {
namespace {

Snapshot snapshot() {
  Snapshot s;
  s.libvirt_up = true;
  s.timestamp_seconds = 1'700'000'000;
  s.config_reload_success_timestamp = 1'700'000'000;
  VmSample vm;
  vm.name = "web <b>\"1\"</b> & co\nkvmprof-agent error: forged";
  vm.uuid = "00000000-0000-0000-0000-00000000000a";
  vm.policy = "default";
  vm.mapped = true;
  s.vms.push_back(vm);
  s.sources.push_back({"perf:kvm:kvm_exit", false, "open, but no vCPU thread has hit it yet"});
  s.event_info.push_back({"sample", "cpu-clock", "default", "auto", 0, "ok", "all", "software event", "freq=1"});
  return s;
}

TEST(StatusPage, ShowsVmsSourcesAndDecisionsWithEveryOutsideStringEscaped) {
  const std::string page = status_page(snapshot(), {{"0.9", "abc123"}, "/etc/kvmprof/agent.yaml", "/metrics"});
  EXPECT_NE(page.find("<td>web &lt;b&gt;&quot;1&quot;&lt;/b&gt; &amp; co\\nkvmprof-agent error: forged</td>"),
            std::string::npos)
      << page;
  EXPECT_EQ(page.find("<b>"), std::string::npos);  // nothing of the name became markup
  EXPECT_NE(page.find("domain=web%20%3Cb%3E%221%22%3C%2Fb%3E%20%26%20co%0Akvmprof-agent%20error%3A%20forged"),
            std::string::npos);
  EXPECT_NE(page.find("<td class=\"down\">down</td><td>open, but no vCPU thread has hit it yet</td>"), std::string::npos);
  EXPECT_NE(page.find("<td>cpu-clock</td>"), std::string::npos);
  EXPECT_NE(page.find("Version 0.9 (abc123); config <code>/etc/kvmprof/agent.yaml</code>; last good (re)load "
                      "2023-11-14 22:13:20 UTC"),
            std::string::npos);
  EXPECT_NE(page.find("<a href=\"/metrics\">/metrics</a>"), std::string::npos);
  EXPECT_EQ(page.find("<script"), std::string::npos);
}

TEST(StatusPage, SaysWhenTheLastReloadFailedAndWhenItRunsOnDefaults) {
  Snapshot s = snapshot();
  s.config_reload_ok = false;
  s.libvirt_up = false;
  const std::string page = status_page(s, {{"0.9", "abc123"}, "", "/metrics"});
  EXPECT_NE(page.find("config built-in defaults"), std::string::npos);
  EXPECT_NE(page.find("the last reload failed"), std::string::npos);
  EXPECT_NE(page.find("libvirt <span class=\"down\">down</span>"), std::string::npos);
}

}  // namespace
}  // namespace kvmprof
