// The folded stacks: what a flame graph stacks up (VM, thread, code from root to leaf) and the
// exact text flamegraph.pl reads, also when a VM's name or a symbol tries to break the format.
#include "exporters/folded.h"

#include <gtest/gtest.h>

using namespace kvmprof;

namespace {

ProfileSample sample(std::vector<size_t> leaf_first, int64_t count,
                     std::vector<std::pair<std::string, std::string>> labels = {},
                     std::vector<std::pair<std::string, int64_t>> num_labels = {}) {
  return {std::move(leaf_first), count, count * 10'000'000, std::move(labels),
          std::move(num_labels)};
}

Profile small() {
  Profile p;
  p.mappings = {{0xffffffff81000000, 0xffffffff83000000, 0, "[kernel.kallsyms]", "", true},
                {0x55d0c0000000, 0x55d0c0a00000, 0, "/usr/bin/qemu-system-x86_64", "", true},
                {0xffffffff80000000, 0xffffffffc0000000, 0, "[guest_kernel]", "", false}};
  using enum FrameKind;
  p.locations = {{0xffffffff8101a000, 1, kHostKernel, "vmx_vcpu_run", "[kernel.kallsyms]"},
                 {0xffffffff81021000, 1, kHostKernel, "kvm_vcpu_ioctl", "[kernel.kallsyms]"},
                 {0x55d0c0300000, 2, kHostUser, "", ""},
                 {0xffffffff81a00000, 3, kGuest, "", ""},
                 {0x7f0000001000, 0, kHostUser, "", ""},
                 {0x55d0c0400000, 2, kHostUser, "main_loop_wait", "/usr/bin/qemu-system-x86_64"}};
  p.samples = {sample({1, 2, 3}, 2, {{"domain", "web-1"}}, {{"vcpu", 0}}),
               sample({1, 2, 3}, 3, {{"domain", "web-1"}}, {{"vcpu", 0}}),
               sample({4}, 7, {{"domain", "web-1"}, {"thread", "ignored"}}, {{"vcpu", 1}}),
               sample({6}, 1, {{"domain", "web-1"}, {"thread", "emulator"}}),
               sample({5}, 4),
               sample({}, 1),
               sample({6}, 0, {{"domain", "web-1"}})};
  return p;
}

}  // namespace

TEST(Folded, StacksAreRootFirstWithTheVmAndTheThread) {
  auto counts = stack_counts(small());
  Stack vcpu0 = {{"web-1", std::nullopt},
                 {"vcpu 0", std::nullopt},
                 {"[qemu-system-x86_64]", FrameKind::kHostUser},
                 {"kvm_vcpu_ioctl", FrameKind::kHostKernel},
                 {"vmx_vcpu_run", FrameKind::kHostKernel}};
  EXPECT_EQ(counts.at(vcpu0), 5);  // two samples of one stack
  Stack guest = {{"web-1", std::nullopt},
                 {"vcpu 1", std::nullopt},
                 {"[guest_kernel]", FrameKind::kGuest}};  // the vcpu label wins over thread
  EXPECT_EQ(counts.at(guest), 7);
  EXPECT_EQ(counts.at({{"[unknown]", FrameKind::kHostUser}}), 4);  // no mapping, no labels
  EXPECT_EQ(counts.at({{"[unknown]", std::nullopt}}), 1);          // nothing known at all
  EXPECT_EQ(counts.size(), 5u) << "the sample of count 0 is left out";
}

TEST(Folded, ExactText) {
  EXPECT_EQ(folded(small()),
            "[unknown] 5\n"  // the two unknown stacks fold to one line
            "web-1;emulator;main_loop_wait 1\n"
            "web-1;vcpu 0;[qemu-system-x86_64];kvm_vcpu_ioctl_[k];vmx_vcpu_run_[k] 5\n"
            "web-1;vcpu 1;[guest_kernel]_[g] 7\n");
}

TEST(Folded, HostileNamesCannotAddFramesOrLines) {
  Profile p;
  p.mappings = {{0x1000, 0x2000, 0, "/tmp/evil;lib\n.so", "", false}};
  p.locations = {{0x1100, 1, FrameKind::kHostUser, "", ""},
                 {0x1200, 1, FrameKind::kGuest, "op;er\rator<<\t", ""}};
  p.samples = {sample({2, 1}, 3, {{"domain", "evil;vm\nweb-1;vcpu 0 99\n"}}, {{"vcpu", 2}})};
  EXPECT_EQ(folded(p), "evil:vm?web-1:vcpu 0 99?;vcpu 2;[evil:lib?.so];op:er?ator<<?_[g] 3\n");
}

TEST(Folded, EmptyProfileIsEmpty) { EXPECT_EQ(folded(Profile{}), ""); }
