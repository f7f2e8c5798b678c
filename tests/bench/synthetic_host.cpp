// A synthetic host for tests/bench/bench_scale.py: the real Daemon (HTTP server, collector,
// sampler, perf software events through RealPerfBackend) on a host of VMS domains x 4 vCPUs.
// A synthetic libvirt announces the domains (with KVM's exit counters, as libvirt reports them);
// a host-root fixture gives each domain a /proc/PID with "-uuid U" in its cmdline, and task/TID
// entries that link to real threads named "CPU k/KVM". Those threads live in a child process,
// the thread farm, forked before this process has any thread of its own, so this process's
// RSS, fds and CPU time are the agent's alone. Every farm thread wakes once a second (so each
// vCPU's counters run, and have values, from the first cycle on), and together they burn BURN of
// one core, so sampling has something to sample: each thread bursts for about two sampling
// periods at 99 Hz, as many seconds apart as that budget allows (a thread's cpu-clock sample comes
// after 10.1 ms of its own CPU time: short bursts over 4,000 threads would take minutes to give one).
// Prints "port P farm F" (F: the farm's pid) once serving on the config's `listen` (give
// 127.0.0.1:0); stops on SIGTERM.
// Usage: kvmprof_synthetic_host VMS CONFIG [BURN]   (BURN: share of one core, default 0.25)
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>
#include <vector>

#include "agent/config_load.h"
#include "agent/daemon.h"
#include "agent/system/host_probe.h"
#include "agent/system/log.h"

using namespace kvmprof;
namespace fs = std::filesystem;

namespace {

constexpr int kVcpus = 4;
constexpr int kFirstPid = 100000;  // above the default pid_max: no clash with a real process
// x86 KVM's exit counters as libvirt reports them on Linux 6.1 ("all" is vcpu.N.exits.sum).
const char* const kExitReasons[] = {"all", "halt", "io", "mmio", "irq", "irq_window",
                                    "nmi_window", "signal", "request_irq", "preemption_timer"};

std::string uuid_of(int vm) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012d", vm);
  return buf;
}

// libvirt as the agent sees it: VMS running domains whose exit counters grow at every answer.
class SyntheticHypervisor final : public Hypervisor {
 public:
  explicit SyntheticHypervisor(int vms) {
    for (int vm = 0; vm < vms; ++vm) {
      DomainRecord& d = domains_.emplace_back();
      d.name = "synthetic-" + std::to_string(vm);
      d.uuid = uuid_of(vm);
      d.id = vm + 1;
      d.vcpus_current = kVcpus;
      for (unsigned v = 0; v < kVcpus; ++v) {
        for (const char* reason : kExitReasons) d.exits[v][reason] = 0;
      }
    }
  }
  void set_events(HypervisorEvents) override {}
  Result<bool> connect() override { return true; }
  bool connected() const override { return true; }
  void disconnect() override {}
  Result<std::vector<DomainRecord>> running_domains() override {
    for (auto& d : domains_) {
      for (auto& [vcpu, reasons] : d.exits) {
        for (auto& [reason, n] : reasons) n += 100;
      }
    }
    return domains_;
  }
  void set_metadata_uris(std::vector<std::string>) override {}

 private:
  std::vector<DomainRecord> domains_;
};

// The host root: the real /sys and the host-wide /proc files the agent reads, and one fake
// QEMU process per VM whose task/ the farm fills.
fs::path make_root(int vms) {
  fs::path root = fs::temp_directory_path() / ("kvmprof-synthetic-" + std::to_string(::getpid()));
  fs::create_directories(root / "proc");
  fs::create_directory_symlink("/sys", root / "sys");
  for (const char* f : {"cpuinfo", "kallsyms", "modules"}) {
    fs::create_symlink(std::string("/proc/") + f, root / "proc" / f);
  }
  fs::create_directory_symlink("/proc/sys", root / "proc/sys");
  for (int vm = 0; vm < vms; ++vm) {
    fs::path proc = root / "proc" / std::to_string(kFirstPid + vm);
    fs::create_directories(proc / "task");
    std::ofstream(proc / "cmdline") << std::string("qemu-system-x86_64\0-uuid\0", 25) << uuid_of(vm) << '\0';
    std::ofstream(proc / "stat") << kFirstPid + vm << " (qemu-system-x86) S 1\n";
  }
  return root;
}

constexpr int64_t kSecond = 1'000'000'000;

struct FarmThread {
  fs::path task_dir;  // the fake QEMU process's task/
  int vcpu = 0;
  int64_t phase_ns = 0;     // when in each second it wakes
  int every = 1, slot = 0;  // it bursts in the seconds s where s % every == slot
  int64_t burst_ns = 0;     // thread CPU time per burst
  std::atomic<int>* started = nullptr;
};

int64_t now_ns(clockid_t clock) {
  timespec t{};
  ::clock_gettime(clock, &t);
  return t.tv_sec * kSecond + t.tv_nsec;
}

void* farm_thread(void* arg) {
  auto* t = static_cast<FarmThread*>(arg);
  std::string name = "CPU " + std::to_string(t->vcpu) + "/KVM";
  pthread_setname_np(pthread_self(), name.c_str());
  std::string tid = std::to_string(::syscall(SYS_gettid));
  fs::create_directory_symlink("/proc/" + std::to_string(::getpid()) + "/task/" + tid, t->task_dir / tid);
  ++*t->started;
  int64_t next = now_ns(CLOCK_MONOTONIC) + t->phase_ns;
  for (int second = 0;; ++second, next += kSecond) {
    timespec at{static_cast<time_t>(next / kSecond), static_cast<long>(next % kSecond)};
    ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nullptr);
    if (second % t->every != t->slot) continue;
    for (int64_t end = now_ns(CLOCK_THREAD_CPUTIME_ID) + t->burst_ns; now_ns(CLOCK_THREAD_CPUTIME_ID) < end;) {
    }
  }
}

// The child: VMS x 4 threads, then one byte on `ready`; it dies with its parent.
[[noreturn]] void run_farm(const fs::path& root, int vms, double burn, int ready) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  const int n = vms * kVcpus;
  // Bursts of about 20 ms, as many seconds apart as the budget allows.
  const int every = std::max(1, static_cast<int>(std::lround(n * 0.020 / burn)));
  const auto burst = static_cast<int64_t>(burn * every * kSecond / n);
  std::atomic<int> started{0};
  std::vector<FarmThread> threads(n);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  for (int i = 0; i < n; ++i) {
    threads[i] = {root / "proc" / std::to_string(kFirstPid + i / kVcpus) / "task", i % kVcpus, kSecond * i / n, every,
                  i % every, burst, &started};
    pthread_t id;
    if (pthread_create(&id, &attr, farm_thread, &threads[i]) != 0) {
      std::perror("thread farm: pthread_create");
      std::_Exit(1);
    }
  }
  while (started < n) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (::write(ready, "r", 1) != 1) std::_Exit(1);
  for (;;) ::pause();
}

pid_t start_farm(const fs::path& root, int vms, double burn) {
  int fds[2];
  if (::pipe(fds) != 0) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    run_farm(root, vms, burn, fds[1]);
  }
  ::close(fds[1]);
  char c = 0;
  bool ok = pid > 0 && ::read(fds[0], &c, 1) == 1;
  ::close(fds[0]);
  return ok ? pid : -1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: kvmprof_synthetic_host VMS CONFIG [BURN]\n";
    return 2;
  }
  const int vms = std::atoi(argv[1]);
  const std::string config_path = argv[2];
  const double burn = argc > 3 ? std::atof(argv[3]) : 0.25;
  set_log_level(LogLevel::kWarning);
  fs::path root = make_root(vms);
  pid_t farm = start_farm(root, vms, burn);  // before this process starts any thread
  int code = 1;
  if (farm < 0) {
    std::cerr << "kvmprof_synthetic_host: the thread farm did not start\n";
  } else if (auto loaded = load_config_file(config_path, probe_host(HostRoot(root.string())));
             auto* errors = std::get_if<std::vector<ConfigError>>(&loaded)) {
    for (const auto& e : *errors) std::cerr << e.format() << "\n";
  } else {
    SyntheticHypervisor hypervisor(vms);
    RealPerfBackend perf;
    Daemon daemon(std::get<AgentConfig>(std::move(loaded)), config_path, HostRoot(root.string()), hypervisor, perf);
    std::atomic<bool> done{false};
    std::thread announce([&] {  // exits once the port is printed
      while (!done && daemon.http_port() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      if (!done) std::printf("port %u farm %d\n", daemon.http_port(), farm);
      std::fflush(stdout);
    });
    code = daemon.run();
    done = true;
    announce.join();
  }
  if (farm > 0) {
    ::kill(farm, SIGKILL);
    ::waitpid(farm, nullptr, 0);
  }
  fs::remove_all(root);
  return code;
}
