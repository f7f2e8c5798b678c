#include "agent/symbols/kallsyms.h"

#include <gtest/gtest.h>

#include <random>

#include "agent/system/host_root.h"

using namespace kvmprof;

namespace {

// vmlinux, one data symbol in its text (ignored), the end marker, and two modules; out of
// address order, as bpf and ftrace entries are in a real file.
constexpr std::string_view kText =
    "ffffffffc0b00000 t kvm_arch_vcpu_ioctl_run\t[kvm]\n"
    "ffffffff81000000 t startup_64\n"
    "ffffffff81000000 T _stext\n"
    "ffffffff81000100 T do_one\n"
    "ffffffff81000200 t helper\n"
    "ffffffff81000300 d some_data\n"
    "ffffffff81000400 T _etext\n"
    "ffffffffc0a01000 t vmx_vcpu_run\t[kvm_intel]\n"
    "ffffffffc0a01800 T vmx_exit\t[kvm_intel]\n";

Kallsyms parse_ok(std::string_view text) {
  auto k = Kallsyms::parse(text);
  EXPECT_TRUE(k.ok()) << k.error().message();
  return k.ok() ? std::move(*k) : Kallsyms();
}

std::string name_at(const Kallsyms& k, uint64_t addr) {
  const KernelSymbol* s = k.find(addr);
  return s ? s->name : "<none>";
}

}  // namespace

TEST(Kallsyms, KeepsTextSymbolsOfVmlinuxAndModules) {
  Kallsyms k = parse_ok(kText);
  EXPECT_EQ(k.size(), 7u);  // startup_64 shares _stext's address; some_data is not text
  EXPECT_EQ(k.skipped_lines(), 0u);
  EXPECT_FALSE(k.addresses_hidden());
  const KernelSymbol* vmx = k.find(0xffffffffc0a01010);
  ASSERT_NE(vmx, nullptr);
  EXPECT_EQ(vmx->name, "vmx_vcpu_run");
  EXPECT_EQ(vmx->module, "kvm_intel");
  EXPECT_EQ(vmx->addr, 0xffffffffc0a01000u);
  EXPECT_EQ(vmx->end, 0xffffffffc0a01800u);
  const KernelSymbol* run = k.find(0xffffffffc0b00000);
  ASSERT_NE(run, nullptr);
  EXPECT_EQ(run->module, "kvm");
  EXPECT_EQ(k.find(0xffffffff81000100)->module, "");
  EXPECT_GT(k.bytes(), 7 * sizeof(KernelSymbol));
}

TEST(Kallsyms, OneNamePerAddressGlobalFirstThenFirstInText) {
  EXPECT_EQ(name_at(parse_ok(kText), 0xffffffff81000000), "_stext");
  Kallsyms k = parse_ok(
      "ffffffff81000000 t local_one\n"
      "ffffffff81000000 T global_a\n"
      "ffffffff81000000 W weak_b\n"
      "ffffffff81000000 T global_c\n");
  EXPECT_EQ(k.size(), 1u);
  EXPECT_EQ(name_at(k, 0xffffffff81000000), "global_a");
  EXPECT_EQ(name_at(parse_ok("1000 t b\n1000 w a\n"), 0x1000), "b");
}

TEST(Kallsyms, LooksUpAtBoundariesAndPastTheEnd) {
  Kallsyms k = parse_ok(kText);
  EXPECT_EQ(name_at(k, 0xffffffff80ffffff), "<none>");  // before the first symbol
  EXPECT_EQ(name_at(k, 0xffffffff810000ff), "_stext");
  EXPECT_EQ(name_at(k, 0xffffffff81000100), "do_one");
  EXPECT_EQ(name_at(k, 0xffffffff810001ff), "do_one");
  // The data symbol ends nothing: helper runs up to _etext, which covers nothing itself.
  EXPECT_EQ(name_at(k, 0xffffffff810003ff), "helper");
  EXPECT_EQ(name_at(k, 0xffffffff81000400), "<none>");
  EXPECT_EQ(name_at(k, 0xffffffff81100000), "<none>");
  // The last symbol of a module covers a page, never another module's symbols.
  EXPECT_EQ(name_at(k, 0xffffffffc0a027ff), "vmx_exit");
  EXPECT_EQ(name_at(k, 0xffffffffc0a02800), "<none>");
  EXPECT_EQ(name_at(k, 0xffffffffc0b00fff), "kvm_arch_vcpu_ioctl_run");
  EXPECT_EQ(name_at(k, 0xffffffffc0b01000), "<none>");
  EXPECT_EQ(name_at(k, 0xffffffffffffffff), "<none>");
}

TEST(Kallsyms, LastSymbolWithoutEtextCoversAPageUpToTheNextModule) {
  Kallsyms k = parse_ok(
      "ffffffff81000000 T first\n"
      "ffffffff81000800 T last\n"
      "ffffffff81001000 t in_module\t[m]\n"
      "ffffffffffffff00 t at_the_top\t[m2]\n");
  EXPECT_EQ(k.find(0xffffffff81000800)->end, 0xffffffff81001000u);  // capped by [m]
  EXPECT_EQ(name_at(k, 0xffffffff81001fff), "in_module");
  EXPECT_EQ(k.find(0xffffffffffffff00)->end, 0xffffffffffffffffu);  // no wrap-around
}

TEST(Kallsyms, AllZeroAddressesMeanHidden) {
  Kallsyms k = parse_ok(
      "0000000000000000 T _stext\n"
      "0000000000000000 t vmx_vcpu_run\t[kvm_intel]\n"
      "0000000000000000 T schedule\n");
  EXPECT_TRUE(k.addresses_hidden());
  EXPECT_EQ(k.size(), 0u);
  EXPECT_EQ(k.find(0), nullptr);
  EXPECT_FALSE(parse_ok("0000000000000000 T a\nffffffff81000000 T b\n").addresses_hidden());
}

TEST(Kallsyms, SkipsAndCountsJunkLines) {
  std::string text =
      "garbage\n"
      "zzzzzzzzzzzzzzzz T bad_address\n"
      "ffffffff81000000 TT two_letter_type\n"
      "ffffffff81000000 T\n"
      "ffffffff81000010 T too many fields\n"
      "ffffffff81000020 t unclosed\t[module\n"
      "1ffffffff81000000 T seventeen_digits\n"
      "\n   \n"
      "ffffffff81000100 T good\n"
      "ffffffff81000200 T " +
      std::string(1 << 20, 'x') + "\n" + std::string("\0\0\x01\xff", 4) + "\n";
  Kallsyms k = parse_ok(text);
  EXPECT_EQ(k.skipped_lines(), 9u);
  EXPECT_EQ(k.size(), 1u);
  EXPECT_EQ(name_at(k, 0xffffffff81000100), "good");
}

TEST(Kallsyms, ReadsTheLastLineWithoutNewline) {
  Kallsyms k = parse_ok("ffffffff81000000 T a\nffffffffc0001000 t b\t[mod]");
  ASSERT_EQ(k.size(), 2u);
  EXPECT_EQ(k.find(0xffffffffc0001000)->module, "mod");
  EXPECT_EQ(parse_ok("ffffffff81000000 T a\r\n").find(0xffffffff81000000)->name, "a");
}

TEST(Kallsyms, ErrorWhenNoTextSymbolParses) {
  EXPECT_FALSE(Kallsyms::parse("").ok());
  EXPECT_FALSE(Kallsyms::parse("\n\n").ok());
  EXPECT_FALSE(Kallsyms::parse("not kallsyms at all\n").ok());
  EXPECT_FALSE(Kallsyms::parse("ffffffff82400000 D __start_rodata\n").ok());
}

// A guest's kallsyms is operator-supplied: random text must parse or fail, never crash, and
// every symbol found must hold the address asked for.
TEST(Kallsyms, RandomTextNeverBreaksTheInvariants) {
  std::mt19937_64 rng(42);
  const std::string alphabet = "0123456789abcdefTtWwDd[]_ \t\n\r";
  for (int round = 0; round < 300; ++round) {
    std::string text;
    size_t length = rng() % 4000;
    for (size_t i = 0; i < length; ++i) text += alphabet[rng() % alphabet.size()];
    auto k = Kallsyms::parse(text);
    if (!k.ok()) continue;
    for (int probe = 0; probe < 50; ++probe) {
      uint64_t addr = rng() % 0x100000;
      if (const KernelSymbol* s = k->find(addr)) {
        EXPECT_LE(s->addr, addr);
        EXPECT_LT(addr, s->end);
      }
    }
  }
}

TEST(Kallsyms, ParsesThisHost) {
  auto text = HostRoot("/").read_file("/proc/kallsyms");
  if (!text.ok()) GTEST_SKIP() << text.error().message();
  Kallsyms k = parse_ok(*text);
  EXPECT_EQ(k.skipped_lines(), 0u);
  if (!k.addresses_hidden()) {
    EXPECT_GT(k.size(), 1000u);
  }
}
