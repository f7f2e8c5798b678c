// The flame graph SVG: well-formed XML whatever the names hold (checked by Python's XML parser),
// frames as wide as their samples with the root at the bottom, hover text with each frame's
// share, and a bounded size for huge profiles.
#include "exporters/flamegraph.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace kvmprof;
namespace fs = std::filesystem;

namespace {

const FlameGraphOptions kOptions{"kvmprof: VM 'web-1', last 30 s, 10 samples", "", 1200};

// A profile with one sample per entry of `stacks`, each stack leaf first, named frames only.
Profile profile(const std::vector<std::pair<std::vector<std::string>, int64_t>>& stacks,
                FrameKind kind = FrameKind::kHostUser) {
  Profile p;
  for (const auto& [names, count] : stacks) {
    ProfileSample s{{}, count, count * 10'000'000, {{"domain", "web-1"}}, {{"vcpu", 0}}};
    for (const auto& name : names) {
      p.locations.push_back({0x1000, 0, kind, name, ""});
      s.locations.push_back(p.locations.size());
    }
    p.samples.push_back(std::move(s));
  }
  return p;
}

// Whether Python's XML parser (expat, strict about UTF-8 and entities) accepts the document.
bool well_formed(const std::string& svg) {
  const fs::path file = fs::temp_directory_path() / ("kvmprof-fg-" + std::to_string(::getpid()));
  std::ofstream(file, std::ios::binary) << svg;
  const std::string cmd =
      "python3 -c 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])' " + file.string();
  const bool ok = std::system(cmd.c_str()) == 0;
  fs::remove(file);
  return ok;
}

struct Drawn {
  double x = NAN, y = NAN, width = NAN;
  std::string label;  // the <text>, or "" when none
};

double attribute(const std::string& svg, size_t from, const std::string& name) {
  const size_t at = svg.find(" " + name + "=\"", from);
  return at == std::string::npos ? NAN : std::stod(svg.substr(at + name.size() + 3));
}

// The frame whose hover text starts with `hover`.
Drawn drawn(const std::string& svg, const std::string& hover) {
  const size_t at = svg.find("<title>" + hover);
  if (at == std::string::npos) return {};
  const size_t end = svg.find("</g>", at);
  const size_t text = svg.find("\">", svg.find("<text", at));
  return {attribute(svg, at, "x"), attribute(svg, at, "y"), attribute(svg, at, "width"),
          text < end ? svg.substr(text + 2, svg.find("</text>", text) - text - 2) : ""};
}

}  // namespace

TEST(FlameGraph, TitleNamesAndHoverShares) {
  const std::string svg = flamegraph_svg(
      profile({{{"vmx_vcpu_run", "kvm_vcpu_ioctl"}, 5}, {{"kvm_cpu_exec"}, 1234}}), kOptions);
  EXPECT_TRUE(well_formed(svg));
  EXPECT_NE(svg.find(">kvmprof: VM &apos;web-1&apos;, last 30 s, 10 samples</text>"),
            std::string::npos);
  EXPECT_NE(svg.find("<title>all (1,239 samples, 100.00%)</title>"), std::string::npos);
  EXPECT_NE(svg.find("<title>web-1 (1,239 samples, 100.00%)</title>"), std::string::npos);
  EXPECT_NE(svg.find("<title>vcpu 0 (1,239 samples, 100.00%)</title>"), std::string::npos);
  EXPECT_NE(svg.find("<title>kvm_cpu_exec (1,234 samples, 99.60%)</title>"), std::string::npos);
  EXPECT_NE(svg.find("<title>vmx_vcpu_run (5 samples, 0.40%)</title>"), std::string::npos);
  for (const char* legend : {">guest</text>", ">host kernel</text>", ">host user</text>"}) {
    EXPECT_NE(svg.find(legend), std::string::npos) << legend;
  }
  EXPECT_EQ(svg.find("<script"), std::string::npos);
}

TEST(FlameGraph, WidthsAreProportionalAndTheRootIsAtTheBottom) {
  const std::string svg = flamegraph_svg(
      profile({{{"half"}, 50}, {{"parent"}, 25}, {{"leaf", "parent"}, 25}}), kOptions);
  const Drawn all = drawn(svg, "all ("), half = drawn(svg, "half ("),
              parent = drawn(svg, "parent ("), leaf = drawn(svg, "leaf (");
  EXPECT_NEAR(all.width, 1180, 0.01);  // 1200 less the 10 px margins
  EXPECT_NEAR(half.width, all.width / 2, 1);
  EXPECT_NEAR(parent.width, all.width / 2, 1);
  EXPECT_NEAR(leaf.width, all.width / 4, 1);
  EXPECT_NEAR(half.x, all.x, 1);  // children sorted by name: half, then parent
  EXPECT_NEAR(parent.x, all.x + all.width / 2, 1);
  EXPECT_EQ(half.y, parent.y);
  EXPECT_GT(all.y, half.y) << "the root is drawn below its children";
  EXPECT_EQ(half.y - leaf.y, 16);
}

TEST(FlameGraph, LabelsAreClippedToTheFrame) {
  const std::string name = "a_function_name_far_too_long_for_its_frame";
  // 1180 px for 100 samples: 10 samples are 118 px, 16 characters of 7.08 px (3 px padding).
  const std::string svg =
      flamegraph_svg(profile({{{name}, 10}, {{"tiny_but_named"}, 1}, {{"wide"}, 89}}), kOptions);
  EXPECT_EQ(drawn(svg, name + " (").label, "a_function_nam..");
  EXPECT_EQ(drawn(svg, "tiny_but_named (").label, "") << "11.8 px: too narrow for 3 characters";
  EXPECT_EQ(drawn(svg, "wide (").label, "wide");
}

TEST(FlameGraph, HostileNamesAreEscaped) {
  Profile p = profile({{{"<script>alert(1)</script>", "a&b\"c'd"}, 2},
                       {{std::string("bad\xff\xc0\xaf\xed\xa0\x80utf8\x01\x1b[31m\x7f\xef\xbf\xbf"
                                     "end")},
                        1}});
  p.samples[0].labels = {{"domain", "]]><!-- \"web\" & 'co' -->"}};
  const std::string svg = flamegraph_svg(p, {"<b>title</b> & \x01", "sub\xfe", 1200});
  EXPECT_TRUE(well_formed(svg)) << svg;
  EXPECT_EQ(svg.find("<script"), std::string::npos);
  EXPECT_NE(svg.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(svg.find("a&amp;b&quot;c&apos;d"), std::string::npos);
  EXPECT_NE(svg.find("]]&gt;&lt;!-- &quot;web&quot; &amp; &apos;co&apos; --&gt;"),
            std::string::npos);
  // Each malformed byte, and each control character, is one U+FFFD.
  EXPECT_NE(svg.find("bad\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD\uFFFDutf8\uFFFD\uFFFD[31m\uFFFD\uFFFDend"),
            std::string::npos);
  EXPECT_NE(svg.find("&lt;b&gt;title&lt;/b&gt; &amp; \uFFFD"), std::string::npos);
}

TEST(FlameGraph, EmptyProfileSaysNoSamples) {
  const std::string svg = flamegraph_svg(Profile{}, {"kvmprof: no VM", "30 s", 1200});
  EXPECT_TRUE(well_formed(svg));
  EXPECT_NE(svg.find(">no samples</text>"), std::string::npos);
  EXPECT_NE(svg.find(">30 s</text>"), std::string::npos);
  EXPECT_EQ(svg.find("<title>"), std::string::npos);
}

TEST(FlameGraph, HugeProfilesStaySmall) {
  std::vector<std::pair<std::vector<std::string>, int64_t>> stacks;
  for (int i = 0; i < 100'000; ++i) stacks.push_back({{"leaf", "f" + std::to_string(i)}, 1});
  const std::string svg = flamegraph_svg(profile(stacks), kOptions);
  // Every f<i> is 0.0118 px wide: left out, so only all, web-1 and vcpu 0 are drawn.
  EXPECT_LT(svg.size(), 10'000u);
  EXPECT_NE(svg.find("<title>vcpu 0 (100,000 samples, 100.00%)</title>"), std::string::npos);
  EXPECT_EQ(svg.find("<title>f"), std::string::npos);
  EXPECT_TRUE(well_formed(svg));
}

TEST(FlameGraph, GuestAndHostFramesOfOneNameStayApartAndOutputIsDeterministic) {
  Profile p = profile({{{"native_write_msr"}, 3}}, FrameKind::kGuest);
  Profile host = profile({{{"native_write_msr"}, 1}}, FrameKind::kHostKernel);
  p.locations.push_back(host.locations[0]);
  p.samples.push_back({{2}, 1, 0, {{"domain", "web-1"}}, {{"vcpu", 0}}});
  const std::string svg = flamegraph_svg(p, kOptions);
  EXPECT_NE(svg.find("<title>native_write_msr (3 samples, 75.00%)"), std::string::npos);
  EXPECT_NE(svg.find("<title>native_write_msr (1 samples, 25.00%)"), std::string::npos);
  std::swap(p.samples[0], p.samples[1]);
  EXPECT_EQ(flamegraph_svg(p, kOptions), svg);
}
