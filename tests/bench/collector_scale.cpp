// Collector scale benchmark on a synthetic inventory: N real threads of this process, named
// like QEMU vCPU threads and grouped 4 per "VM" through a host-root fixture, counted with real
// perf software events, collected at the default 5 s interval in synthetic time. Prints, per
// N: counters opened, fds, CPU time per collection cycle.
// Syscalls per cycle are counted from outside (bench_scale.sh runs this under strace -c).
// Usage: kvmprof_collector_scale THREADS CYCLES
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <time.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "agent/collect/collector.h"
#include "agent/system/host_probe.h"
#include "agent/system/log.h"

using namespace kvmprof;
namespace fs = std::filesystem;

namespace {

constexpr int kVcpusPerVm = 4;

// CPU time of the collecting thread only (ns resolution); the idle vCPU stand-ins do nothing.
double cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

std::string uuid_of(int vm) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "00000000-0000-0000-0000-%012d", vm);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 100;
  const int cycles = argc > 2 ? std::atoi(argv[2]) : 20;
  set_log_level(LogLevel::kError);
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &lim);

  fs::path root = fs::temp_directory_path() / ("kvmprof-scale-" + std::to_string(::getpid()));
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::atomic<int> started{0};
  std::vector<std::thread> pool;
  std::vector<DomainRecord> domains;
  for (int i = 0; i < threads; ++i) {
    int vm = i / kVcpusPerVm, vcpu = i % kVcpusPerVm;
    fs::path task = root / "proc" / std::to_string(100000 + vm) / "task";
    if (vcpu == 0) {
      fs::create_directories(task);
      std::ofstream(task.parent_path() / "cmdline") << std::string("qemu\0-uuid\0", 11) << uuid_of(vm) << '\0';
      std::ofstream(task.parent_path() / "stat") << 100000 + vm << " (qemu-system-x86) S 1\n";
      domains.push_back({"vm" + std::to_string(vm), uuid_of(vm), vm, 0, "", {}, {}});
    }
    ++domains.back().vcpus_current;
    pool.emplace_back([&, task, vcpu] {
      std::string name = "CPU " + std::to_string(vcpu) + "/KVM";
      pthread_setname_np(pthread_self(), name.c_str());
      pid_t tid = static_cast<pid_t>(::syscall(SYS_gettid));
      fs::create_directory_symlink("/proc/" + std::to_string(::getpid()) + "/task/" + std::to_string(tid),
                                   task / std::to_string(tid));
      ++started;
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return stop; });
    });
  }
  while (started < threads) std::this_thread::yield();

  RealPerfBackend perf;
  HostRoot host_root(root.string());
  Policy policy;
  policy.name = "default";
  policy.events = default_events();
  HostModel host = probe_host(HostRoot("/"));
  auto planned = plan_events(HostRoot("/"), perf, policy.events, host, builtin_quirks());
  // The agent's default interval, in synthetic time, so each VM's threads are reconciled every
  // 10th cycle as on a real host (a cycle here takes milliseconds, not 5 s).
  constexpr auto kInterval = std::chrono::milliseconds(5000);
  Collector collector(host_root, perf, {{}, make_policy_plan(policy, std::move(planned), 4), {}, kInterval, {}});
  auto now = std::chrono::steady_clock::now();
  collector.collect(&domains, true, now);  // opens everything
  double before = cpu_seconds();
  auto wall = std::chrono::steady_clock::now();
  for (int c = 0; c < cycles; ++c) collector.collect(&domains, true, now += kInterval);
  double cpu = cpu_seconds() - before;
  double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count();
  std::printf("threads %d vms %zu open_fds %zu cpu_ms_per_cycle %.3f wall_ms_per_cycle %.3f us_per_thread %.2f\n", threads,
              domains.size(), collector.open_fds(), 1000 * cpu / cycles, 1000 * wall_s / cycles, 1e6 * cpu / cycles / threads);
  {
    std::lock_guard lock(mu);
    stop = true;
  }
  cv.notify_all();
  for (auto& t : pool) t.join();
  fs::remove_all(root);
  return 0;
}
