// /debug/pprof/profile and /debug/pprof/flamegraph: parameters, errors, formats and headers,
// on a store filled here and a snapshot naming its VMs.
#include "agent/http/profile_page.h"

#include <gtest/gtest.h>
#include <time.h>

#include "tests/support/gunzip.h"

namespace kvmprof {
namespace {

const std::string kA = "00000000-0000-0000-0000-00000000000a", kB = "00000000-0000-0000-0000-00000000000b",
                  kC = "00000000-0000-0000-0000-00000000000c";

uint64_t now_mono() {
  timespec t{};
  ::clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(t.tv_nsec);
}

struct Page {
  ProfileStore store{{}, 0};  // complete since long ago: the samples below are older than the test
  SnapshotStore snapshots;
  Symbolizer symbolizer{HostRoot("/")};
  ProfilePage page{store, snapshots, symbolizer};

  Page() {
    auto snap = std::make_shared<Snapshot>();
    const std::map<std::string, uint64_t> sampled{{"ring_full", 0}};  // the snapshot of a sampled VM has its losses
    snap->vms.push_back(VmSample{"web-1", kA, "default", true, {}, {}, {}, {}, sampled, 0});
    snap->vms.push_back(VmSample{"db & <2>", kB, "default", true, {}, {}, {}, {}, sampled, 0});
    snap->vms.push_back(VmSample{"idle", kC, "counting", true, {}, {}, {}, {}, {}, {}});
    snapshots.publish(snap);
    store.set_vm(kA, {"cpu-clock", 10'101'010, ""});
    store.set_vm(kB, {"cpu-clock", 10'101'010, ""});
    const uint64_t now = now_mono();
    std::vector<NewSample> a{{now - 5'000'000'000, 1, 2, 0u, SampleMode::kHostKernel, 10'000'000, 0xffffffff81000000, {}, {}},
                             {now - 50'000'000'000, 1, 2, 0u, SampleMode::kGuestKernel, 10'000'000, 0xffffffff81000000, {}, {}}};
    std::vector<NewSample> b{{now - 1'000'000'000, 3, 4, 1u, SampleMode::kGuestUser, 10'000'000, 0x401000, {}, {}}};
    store.add(kA, a);
    store.add(kB, b);
  }

  HttpResponse get(const std::string& query, std::string_view format = "pprof") {
    return page.serve(HttpRequest{"GET", "/debug/pprof/profile", query, false}, format);
  }
};

TEST(ProfilePage, BadParametersAre400WithTheReasonAndAnUnknownVmIs404) {
  Page p;
  for (const char* q : {"seconds=-1", "seconds=0", "seconds=61", "seconds=999999999999999999999", "seconds=abc",
                        "seconds=1e3", "seconds=", "sec=5", "seconds=1&seconds=2", "mode=bogus", "mode=", "format=png",
                        "domain=%zz"}) {
    HttpResponse r = p.get(q);
    EXPECT_EQ(r.status, 400u) << q;
  }
  EXPECT_EQ(*p.get("seconds=61").body,
            "seconds must be a whole number from 1 to 60 (the agent keeps the samples of the last 60 s: profiles.window in "
            "agent.yaml)\n");
  HttpResponse missing = p.get("domain=nope");
  EXPECT_EQ(missing.status, 404u);
  EXPECT_EQ(*missing.body, "no running VM named 'nope' (see kvmprof_vm_info in /metrics)\n");
  EXPECT_EQ(p.get("domain=web-1&uuid=" + kB).status, 404u);  // both given: they must be the same VM
}

TEST(ProfilePage, PprofIsGzippedWithGosHeadersAndFiltersByVmWindowAndMode) {
  Page p;
  HttpResponse all = p.get("");
  ASSERT_EQ(all.status, 200u);
  EXPECT_EQ(all.content_type, "application/octet-stream");
  EXPECT_FALSE(all.gzipped);  // the body itself is gzip, as pprof files are; no Content-Encoding
  EXPECT_EQ(all.headers.at(0), (std::pair<std::string, std::string>{"Content-Disposition", "attachment; filename=\"profile\""}));
  const std::string proto = gunzip(*all.body);
  EXPECT_NE(proto.find("web-1"), std::string::npos);
  EXPECT_NE(proto.find("db & <2>"), std::string::npos);
  EXPECT_EQ(proto.find("Guest Kernel"), std::string::npos);  // 50 s old: outside the default 30 s
  EXPECT_NE(gunzip(*p.get("seconds=60").body).find("Guest Kernel"), std::string::npos);
  const std::string one = gunzip(*p.get("domain=db+%26+%3C2%3E").body);
  EXPECT_EQ(one.find("web-1"), std::string::npos);
  EXPECT_NE(one.find("Guest User"), std::string::npos);
  EXPECT_EQ(p.get("mode=guest_user,guest_user,host").status, 200u);
  const std::string host = gunzip(*p.get("mode=host").body);
  EXPECT_NE(host.find("Host Kernel"), std::string::npos);
  EXPECT_EQ(host.find("Guest User"), std::string::npos);
}

TEST(ProfilePage, FlameGraphAndFoldedFormats) {
  Page p;
  HttpResponse svg = p.page.serve(HttpRequest{"GET", "/debug/pprof/flamegraph", "domain=web-1&seconds=10", false}, "svg");
  ASSERT_EQ(svg.status, 200u);
  EXPECT_EQ(svg.content_type, "image/svg+xml");
  EXPECT_NE(svg.body->find("kvmprof: VM &apos;web-1&apos;, last 10 s, 1 sample"), std::string::npos)
      << svg.body->substr(0, 2000);
  HttpResponse gz = p.page.serve(HttpRequest{"GET", "/debug/pprof/flamegraph", "", true}, "svg");
  EXPECT_TRUE(gz.gzipped);
  EXPECT_NE(gunzip(*gz.body).find("<svg"), std::string::npos);
  HttpResponse folded = p.get("format=folded&domain=db+%26+%3C2%3E");
  EXPECT_EQ(folded.content_type, "text/plain; charset=utf-8");
  EXPECT_EQ(*folded.body, "db & <2>;vcpu 1;[guest_user]_[g] 1\n");
}

TEST(ProfilePage, AnEmptyProfileSaysWhyAndAStoppedVmIs404) {
  Page p;
  auto svg = [&](const std::string& query) {
    return *p.page.serve(HttpRequest{"GET", "/debug/pprof/flamegraph", query, false}, "svg").body;
  };
  EXPECT_NE(svg("domain=web-1&seconds=1").find("no samples of VM &apos;web-1&apos; in the last 1 s: its threads did not run"),
            std::string::npos);
  EXPECT_NE(svg("domain=web-1&mode=hypervisor").find("in the modes asked for"), std::string::npos);
  EXPECT_NE(svg("domain=idle").find("no policy samples it (add a sampling: block to its policy)"), std::string::npos);
  p.store.forget_vm(kA);  // it stopped; the snapshot still lists it until the next cycle
  HttpResponse stopped = p.get("domain=web-1");
  EXPECT_EQ(stopped.status, 404u);
  EXPECT_EQ(*stopped.body,
            "VM 'web-1' is no longer sampled: it stopped, or a reload took its sampling away (its samples left with it)\n");
}

}  // namespace
}  // namespace kvmprof
