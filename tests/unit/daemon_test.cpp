// The whole daemon (loop, HTTP server, libvirt thread, planner) against a fake libvirt, the
// fake kernel and a file-backed QEMU, scraped over HTTP like Prometheus does: libvirt that
// hangs or goes away never stops measurement or a scrape, stopping is prompt whatever libvirt
// does, planning never holds up serving, and a failed reload shows at once.
#include "agent/daemon.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/support/fake_hypervisor.h"
#include "tests/support/fake_kernel.h"
#include "tests/support/fake_qemu.h"
#include "tests/support/file_qemu.h"
#include "tests/support/http_client.h"
#include "tests/support/series.h"

using namespace kvmprof;
using namespace kvmprof::testing;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

const std::string kConfig =
    "version: 1\nlisten: 127.0.0.1:0\ninterval: 100ms\nlibvirt: {call_timeout: 200ms}\nevents: [task-clock]\n";

template <class Predicate>
bool eventually(Predicate p, std::chrono::milliseconds timeout = 5s) {
  for (auto end = Clock::now() + timeout; Clock::now() < end; std::this_thread::sleep_for(20ms)) {
    if (p()) return true;
  }
  return p();
}

// A daemon running on its own thread, with a 2-vCPU VM in a file-backed QEMU.
struct RunningDaemon {
  explicit RunningDaemon(const std::string& yaml = kConfig, FakeHypervisor* hypervisor = nullptr,
                         std::chrono::milliseconds open_delay = 0ms)
      : libvirt(hypervisor ? *hypervisor : own_libvirt) {
    qemu.add_thread(101, "CPU 0/KVM");
    qemu.add_thread(102, "CPU 1/KVM");
    kernel.count_for = [](const perf_event_attr&) { return 1'000'000; };
    kernel.open_delay = open_delay;
    libvirt.set_domains({vm()});
    std::ofstream(config_path) << yaml;
    auto config = std::get<AgentConfig>(parse_agent_config(yaml, config_path));
    daemon = std::make_unique<Daemon>(std::move(config), config_path, qemu.root(), libvirt, kernel);
    thread = std::thread([this] { code = daemon->run(); });
    EXPECT_TRUE(eventually([&] { return daemon->http_port() != 0; }));
  }
  ~RunningDaemon() {
    if (thread.joinable()) stop();
    std::filesystem::remove(config_path);
  }
  // Stops the daemon and says how long run() took to return.
  Clock::duration stop() {
    auto start = Clock::now();
    daemon->stop();
    thread.join();
    return Clock::now() - start;
  }

  static DomainRecord vm() {
    DomainRecord r{"vm", kUuid, 1, 2, "", {}, {}};
    r.exits = {{0, {{"all", 5}}}, {1, {{"all", 7}}}};
    return r;
  }
  std::map<SeriesKey, double> scrape() {
    Scrape s = parse_scrape(body_of(daemon->http_port(), "/metrics"));
    EXPECT_TRUE(s.duplicates.empty()) << s.duplicates.front();
    return s.values;
  }
  double value(const std::string& name, const Labels& labels = {}) {
    auto s = scrape();
    auto it = s.find({name, labels});
    return it == s.end() ? -1 : it->second;
  }
  size_t count(const std::string& name) {
    auto s = scrape();
    return static_cast<size_t>(std::count_if(s.begin(), s.end(), [&](const auto& e) { return e.first.first == name; }));
  }

  FileQemu qemu{kUuid};
  FakeKernel kernel = no_hardware_pmu();
  FakeHypervisor own_libvirt;
  FakeHypervisor& libvirt;
  std::string config_path = std::filesystem::temp_directory_path() / ("kvmprof-daemon-" + std::to_string(::getpid()) + ".yaml");
  std::unique_ptr<Daemon> daemon;
  std::thread thread;
  int code = -1;
};

const Labels kVcpu0{{"domain", "vm"}, {"uuid", kUuid}, {"vcpu", "0"}, {"mode", "host_user"}};

}  // namespace

TEST(Daemon, MeasuresTheVmsLibvirtReportsAndServesThem) {
  RunningDaemon d;
  ASSERT_TRUE(eventually([&] { return d.value("kvmprof_libvirt_up") == 1 && d.count("kvmprof_vm_info") == 1; }));
  d.qemu.run(101, 2'000'000'000);
  EXPECT_TRUE(eventually([&] { return d.value("kvmprof_vcpu_cpu_seconds_total", kVcpu0) >= 2.0; }));
  EXPECT_TRUE(eventually([&] { return d.value("kvmprof_source_up", {{"source", "perf:task-clock"}}) == 1; }));
  EXPECT_EQ(d.value("kvmprof_vcpu_exits_total", {{"domain", "vm"}, {"uuid", kUuid}, {"vcpu", "1"}, {"reason", "all"}}), 7);
  d.libvirt.set_domains({});  // the VM stops
  EXPECT_TRUE(eventually([&] { return d.count("kvmprof_vm_info") == 0; }, 1s));
  EXPECT_EQ(d.kernel.open_events(), 0u);
  EXPECT_LT(d.stop(), 1s);
  EXPECT_EQ(d.code, 0);
}

TEST(Daemon, AHungLibvirtIsDownWithinItsTimeoutAndMeasurementGoesOn) {
  RunningDaemon d;
  ASSERT_TRUE(eventually([&] { return d.value("kvmprof_libvirt_up") == 1 && d.count("kvmprof_vcpu_exits_total") == 2; }));
  d.libvirt.hold(true);  // libvirtd stopped with SIGSTOP: calls never answer
  const auto held = Clock::now();
  ASSERT_TRUE(eventually([&] { return d.value("kvmprof_libvirt_up") == 0; }));
  const auto noticed = Clock::now() - held;
  EXPECT_LT(noticed, 500ms);  // the next call (within 100 ms) + the 200 ms timeout, published at once
  EXPECT_EQ(d.count("kvmprof_vcpu_exits_total"), 0u);  // not live, no series
  const double before = d.value("kvmprof_vcpu_cpu_seconds_total", kVcpu0);
  d.qemu.run(101, 1'000'000'000);
  EXPECT_TRUE(eventually([&] { return d.value("kvmprof_vcpu_cpu_seconds_total", kVcpu0) >= before + 1.0; }));
  EXPECT_EQ(d.count("kvmprof_vm_info"), 1u);
  d.libvirt.hold(false);
  EXPECT_TRUE(eventually([&] { return d.value("kvmprof_libvirt_up") == 1 && d.count("kvmprof_vcpu_exits_total") == 2; }));
}

TEST(Daemon, StopsPromptlyWhileLibvirtIsStuckInACall) {
  static FakeHypervisor stuck_libvirt;  // outlives the test: the agent leaves a stuck libvirt behind
  FakeHypervisor* stuck = &stuck_libvirt;
  RunningDaemon d(kConfig, stuck);
  ASSERT_TRUE(eventually([&] { return d.value("kvmprof_libvirt_up") == 1; }));
  stuck->hold(true);
  ASSERT_TRUE(eventually([&] { return d.value("kvmprof_libvirt_up") == 0; }));
  EXPECT_LT(d.stop(), 1s);
  EXPECT_TRUE(d.daemon->libvirt_abandoned());
  EXPECT_EQ(d.code, 0);
  stuck->hold(false);  // the abandoned thread returns, sees it was stopped, and ends without touching the daemon
}

TEST(Daemon, LibvirtGoneAndBackKeepsTheVmsAndRecovers) {
  RunningDaemon d;
  ASSERT_TRUE(eventually([&] { return d.value("kvmprof_libvirt_up") == 1 && d.count("kvmprof_vm_info") == 1; }));
  d.libvirt.set_up(false);
  ASSERT_TRUE(eventually([&] { return d.value("kvmprof_libvirt_up") == 0; }));
  EXPECT_EQ(d.count("kvmprof_vm_info"), 1u);  // still measured
  EXPECT_EQ(d.count("kvmprof_vcpu_exits_total"), 0u);
  EXPECT_EQ(d.value("kvmprof_source_up", {{"source", "libvirt_vcpu_exits"}}), 0);
  d.libvirt.set_up(true);
  EXPECT_TRUE(eventually([&] { return d.value("kvmprof_libvirt_up") == 1 && d.count("kvmprof_vcpu_exits_total") == 2; }));
}

TEST(Daemon, AVmWhoseProcessExitsWhileLibvirtIsDownLeaves) {
  RunningDaemon d;
  ASSERT_TRUE(eventually([&] { return d.count("kvmprof_vm_info") == 1; }));
  d.libvirt.set_up(false);
  ASSERT_TRUE(eventually([&] { return d.value("kvmprof_libvirt_up") == 0; }));
  d.qemu.remove_process();
  // Files of a removed fixture stay readable: it is seen at the next thread reconcile (10 cycles).
  EXPECT_TRUE(eventually([&] { return d.count("kvmprof_vm_info") == 0; }, 3s));
  EXPECT_EQ(d.value("kvmprof_discovery_errors_total", {{"reason", "qemu_process_not_found"}}), -1);
}

TEST(Daemon, AFailedReloadShowsAtOnceAndAGoodOneApplies) {
  RunningDaemon d("version: 1\nlisten: 127.0.0.1:0\ninterval: 10s\nevents: [task-clock]\n");
  ASSERT_TRUE(eventually([&] { return d.count("kvmprof_vm_info") == 1 && d.count("kvmprof_event_info") == 1; }));
  std::this_thread::sleep_for(200ms);  // the early cycles of the start are over; the next is 10 s away
  const double collected = d.value("kvmprof_last_collection_timestamp_seconds");
  std::ofstream(d.config_path) << "version: 1\nevents: [cyclez]\n";
  ::kill(::getpid(), SIGHUP);
  EXPECT_TRUE(eventually([&] { return d.value("kvmprof_config_last_reload_successful") == 0; }, 1s));
  EXPECT_EQ(d.value("kvmprof_last_collection_timestamp_seconds"), collected);  // not waiting for the next cycle
  std::ofstream(d.config_path) << "version: 1\nlisten: 127.0.0.1:0\ninterval: 10s\nevents: [task-clock, page-faults]\n";
  ::kill(::getpid(), SIGHUP);
  EXPECT_TRUE(eventually([&] { return d.value("kvmprof_config_last_reload_successful") == 1; }, 1s));
  EXPECT_TRUE(eventually([&] { return d.count("kvmprof_event_info") == 2; }, 2s));
}

TEST(Daemon, ServesBeforeSlowPlanningEndsAndStopsDuringIt) {
  std::string events;
  for (const char* e : {"task-clock", "cs", "page-faults", "cpu-migrations", "minor-faults", "major-faults",
                        "alignment-faults", "emulation-faults", "cpu-clock", "task-clock:u"}) {
    events += std::string(events.empty() ? "" : ", ") + "'" + e + "'";
  }
  const std::string yaml = "version: 1\nlisten: 127.0.0.1:0\ninterval: 100ms\nevents: [" + events + "]\n";
  RunningDaemon d(yaml, nullptr, 300ms);  // 10 events x 300 ms of probing
  ASSERT_TRUE(eventually([&] { return d.count("kvmprof_vm_info") == 1; }, 1s));  // VMs and CPU time at once
  EXPECT_EQ(d.count("kvmprof_event_info"), 0u);  // still planning
  EXPECT_LT(d.stop(), 1s);  // between two probes
}

TEST(Daemon, AnExceptionThatEscapesTheLoopIsLoggedAndExitsOne) {
  ::testing::internal::CaptureStderr();
  RunningDaemon d;
  ASSERT_TRUE(eventually([&] { return d.value("kvmprof_source_up", {{"source", "perf:task-clock"}}) == 1; }));
  d.kernel.throw_on_read = true;
  d.thread.join();
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(d.code, 1);
  EXPECT_NE(log.find("internal error, stopping: fake kernel: read failed on purpose"), std::string::npos) << log;
}
