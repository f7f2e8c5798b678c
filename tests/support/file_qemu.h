#pragma once
// A QEMU process made of files, for what real threads cannot give on demand: exact CPU times,
// a read that fails once, threads that come and go. Under a fixture root it writes
// /proc/PID/cmdline ("-uuid U") and /proc/PID/task/TID/{comm,stat,schedstat}; files are
// rewritten in place (same inode), as procfs regenerates them, so the agent's open fds see
// every change. Pair it with a FakeKernel for the thread ids' perf counters.
#include <sys/types.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "agent/system/host_root.h"

namespace kvmprof::testing {

class FileQemu {
 public:
  struct Times {
    uint64_t run_ns = 0, wait_ns = 0;           // schedstat
    uint64_t utime = 0, stime = 0, guest = 0;   // stat ticks (USER_HZ)
  };

  explicit FileQemu(std::string uuid, pid_t pid = 4242)
      : dir_(std::filesystem::temp_directory_path() /
             ("kvmprof-fileqemu-" + std::to_string(::getpid()) + "-" + std::to_string(next_id()))),
        uuid_(std::move(uuid)), pid_(pid) {
    create_process();
  }
  ~FileQemu() { std::filesystem::remove_all(dir_); }
  FileQemu(const FileQemu&) = delete;
  FileQemu& operator=(const FileQemu&) = delete;

  HostRoot root() const { return HostRoot(dir_.string()); }
  pid_t pid() const { return pid_; }

  void add_thread(pid_t tid, const std::string& comm) {
    std::filesystem::create_directories(task(tid));
    std::ofstream(task(tid) / "comm") << comm << "\n";
    set(tid, {});
  }
  // Rewrites the thread's schedstat and stat in place.
  void set(pid_t tid, const Times& t) {
    times_[tid] = t;
    write(task(tid) / "schedstat", std::to_string(t.run_ns) + " " + std::to_string(t.wait_ns) + " 1\n");
    write(task(tid) / "stat", stat_line(tid, t));
  }
  // The thread ran `ns` more, all of it as host user time.
  void run(pid_t tid, uint64_t ns) {
    Times t = times_[tid];
    t.run_ns += ns;
    t.utime = t.run_ns / 10'000'000;  // USER_HZ 100
    set(tid, t);
  }
  const Times& times(pid_t tid) { return times_[tid]; }
  // The stat file holds garbage until the next set(): a read error that is not an exit.
  void corrupt(pid_t tid) { write(task(tid) / "stat", "garbage\n"); }
  // schedstat cannot be opened (a symlink loop: ELOOP, not an exit) until repair().
  void break_files(pid_t tid) {
    std::filesystem::remove(task(tid) / "schedstat");
    std::filesystem::create_symlink("schedstat", task(tid) / "schedstat");
  }
  void repair(pid_t tid) {
    std::filesystem::remove(task(tid) / "schedstat");
    set(tid, times_[tid]);
  }
  // The thread is no longer listed (files already open keep their last content).
  void remove_thread(pid_t tid) {
    std::filesystem::remove_all(task(tid));
    times_.erase(tid);
  }
  void remove_process() { std::filesystem::remove_all(proc()); }
  void create_process() {
    std::filesystem::create_directories(proc() / "task");
    std::ofstream(proc() / "cmdline") << std::string("qemu\0-uuid\0", 11) << uuid_ << '\0';
    std::ofstream(proc() / "stat") << stat_line(pid_, {});
  }

 private:
  static int next_id() {
    static int id = 0;
    return ++id;
  }
  std::filesystem::path proc() const { return dir_ / "proc" / std::to_string(pid_); }
  std::filesystem::path task(pid_t tid) const { return proc() / "task" / std::to_string(tid); }
  static void write(const std::filesystem::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::in | std::ios::out | std::ios::trunc);  // truncates in place: same inode
    out << text;
  }
  // Fields 14 (utime), 15 (stime) and 43 (guest_time) of /proc/PID/task/TID/stat.
  static std::string stat_line(pid_t tid, const Times& t) {
    std::string line = std::to_string(tid) + " (qemu) S";
    for (int field = 4; field <= 52; ++field) {
      uint64_t v = field == 14 ? t.utime : field == 15 ? t.stime : field == 43 ? t.guest : 0;
      line += " " + std::to_string(v);
    }
    return line + "\n";
  }

  std::filesystem::path dir_;
  std::string uuid_;
  pid_t pid_;
  std::map<pid_t, Times> times_;
};

}  // namespace kvmprof::testing
