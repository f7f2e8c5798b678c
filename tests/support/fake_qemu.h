#pragma once
// A fake QEMU process for collector tests: real threads of the test process, named like QEMU's
// vCPU threads, seen through a host-root fixture whose /proc/4242/cmdline holds "-uuid U" and
// whose /proc/4242/task/TID links to the real thread directories.
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "agent/system/host_root.h"

namespace kvmprof::testing {

inline const std::string kUuid = "3cd4a570-41dc-49b4-9ff4-5bb95413e660";

// A busy thread that names itself like a QEMU vCPU thread ("CPU n/KVM") or an emulator one.
class FakeQemuThread {
 public:
  explicit FakeQemuThread(std::string name) : thread_([this, name] {
      pthread_setname_np(pthread_self(), name.c_str());
      tid_ = static_cast<pid_t>(::syscall(SYS_gettid));
      while (!stop_) {
      }  // spin: stop_ is atomic, so the loop is not optimised away
    }) {
    while (tid_ == 0) std::this_thread::yield();
  }
  ~FakeQemuThread() {
    stop_ = true;
    thread_.join();
  }
  pid_t tid() const { return tid_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<pid_t> tid_{0};
  std::thread thread_;
};

class QemuFixture {
 public:
  QemuFixture() : dir_(std::filesystem::temp_directory_path() / ("kvmprof-root-" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(dir_ / "proc/4242/task");
    std::ofstream(dir_ / "proc/4242/cmdline") << std::string("qemu\0-uuid\0", 11) << kUuid << '\0';
    std::ofstream(dir_ / "proc/4242/stat") << "4242 (qemu-system-x86) S 1\n";
  }
  ~QemuFixture() { std::filesystem::remove_all(dir_); }
  void add(pid_t tid) {
    std::filesystem::create_directory_symlink("/proc/" + std::to_string(::getpid()) + "/task/" + std::to_string(tid),
                                 dir_ / "proc/4242/task" / std::to_string(tid));
  }
  void remove(pid_t tid) { std::filesystem::remove(dir_ / "proc/4242/task" / std::to_string(tid)); }
  void remove_process() { std::filesystem::remove_all(dir_ / "proc/4242"); }
  void become_zombie() { std::ofstream(dir_ / "proc/4242/stat") << "4242 (qemu-system-x86) Z 1\n"; }
  HostRoot root() const { return HostRoot(dir_.string()); }

 private:
  std::filesystem::path dir_;
};


}  // namespace kvmprof::testing
