// The perf layer against the real kernel: software events on this test's own threads.
#include "agent/system/perf_group.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "agent/collect/counter_groups.h"
#include "agent/collect/thread_reader.h"
#include "policy/event_spec.h"

using namespace kvmprof;

namespace {

std::vector<EventAttr> software(std::initializer_list<const char*> names) {
  std::vector<EventAttr> out;
  for (const char* name : names) {
    auto spec = std::get<EventSpec>(parse_event_spec(name));
    perf_event_attr attr{};
    attr.size = sizeof(attr);
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = std::get<SoftwareEvent>(spec.kind).config;
    out.push_back({spec.text, "all", attr, ""});
  }
  return out;
}

pid_t gettid_() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

// A thread that burns CPU and faults pages until told to stop.
struct Worker {
  std::atomic<bool> stop{false};
  std::atomic<pid_t> tid{0};
  std::thread thread{[this] {
    tid = gettid_();
    while (!stop) {  // fresh anonymous pages fault on first touch
      void* pages = ::mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      std::memset(pages, 1, 1 << 20);
      ::munmap(pages, 1 << 20);
    }
  }};
  Worker() {
    while (tid == 0) std::this_thread::yield();
  }
  ~Worker() {
    stop = true;
    thread.join();
  }
};

}  // namespace

TEST(PerfGroup, CountsGrowOnALiveThreadWithOneReadPerGroup) {
  Worker worker;
  RealPerfBackend perf;
  ErrorCounts errors;
  auto group = PerfGroup::open(perf, worker.tid, software({"task-clock", "page-faults", "cs"}), {0, 1, 2}, errors);
  ASSERT_TRUE(group.ok()) << group.error().message();
  ASSERT_TRUE(errors.empty());
  EXPECT_EQ(group->fd_count(), 3u);
  auto first = group->read(perf);
  ASSERT_TRUE(first.ok()) << first.error().message();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto second = group->read(perf);
  ASSERT_TRUE(second.ok());
  EXPECT_GT(*second->raw[0], *first->raw[0] + 50'000'000);  // >50 ms of task-clock in 200 ms
  EXPECT_GT(*second->raw[1], *first->raw[1]);               // page faults
  EXPECT_GE(second->enabled_ns, second->running_ns);
  EXPECT_GT(second->running_ns, 0u);
}

TEST(PerfGroup, AThreadThatExitedKeepsItsFinalCountAndProcfsSaysSo) {
  RealPerfBackend perf;
  ErrorCounts errors;
  auto worker = std::make_unique<Worker>();
  pid_t tid = worker->tid;
  auto group = PerfGroup::open(perf, tid, software({"task-clock"}), {0}, errors);
  auto reader = ThreadReader::open(HostRoot("/"), ::getpid(), tid);
  ASSERT_TRUE(group.ok());
  ASSERT_TRUE(reader.ok());
  worker.reset();  // the thread exits
  auto last = group->read(perf);
  ASSERT_TRUE(last.ok());  // the kernel keeps the final values readable
  EXPECT_GT(*last->raw[0], 0u);
  auto times = reader->read();
  ASSERT_FALSE(times.ok());
  EXPECT_EQ(times.error().err, ESRCH);
}

TEST(PerfGroup, OpeningOnAGoneThreadCountsEsrchAndOpensNothing) {
  pid_t tid = 0;
  std::thread([&] { tid = gettid_(); }).join();
  RealPerfBackend perf;
  ErrorCounts errors;
  auto group = PerfGroup::open(perf, tid, software({"task-clock", "page-faults"}), {0, 1}, errors);
  ASSERT_FALSE(group.ok());
  EXPECT_EQ(group.error().err, ESRCH);
  EXPECT_EQ((errors[{"task-clock", "ESRCH"}]), 1u);
  EXPECT_EQ(errors.size(), 1u);  // stops at the first ESRCH
}

TEST(PerfGroup, DecodeRejectsBadKernelBytes) {
  std::map<uint64_t, size_t> ids{{7, 0}, {9, 1}};
  auto bytes = [](std::vector<uint64_t> words) {
    std::vector<std::byte> out(words.size() * 8);
    std::memcpy(out.data(), words.data(), out.size());
    return out;
  };
  auto good = bytes({2, 100, 50, 11, 7, 22, 9});
  auto reading = decode_group_read(good, 2, ids);
  ASSERT_TRUE(reading.ok());
  EXPECT_EQ(*reading->raw[1], 22u);
  EXPECT_FALSE(decode_group_read(bytes({2, 100, 50, 11, 7}), 2, ids).ok());     // nr too big
  EXPECT_FALSE(decode_group_read(bytes({1, 100, 50, 11, 8}), 2, ids).ok());     // unknown id
  EXPECT_FALSE(decode_group_read(bytes({1, 100}), 2, ids).ok());                // short
  EXPECT_FALSE(decode_group_read(bytes({~0ull, 1, 1, 1, 7}), 2, ids).ok());     // huge nr
  std::vector<std::byte> odd(13);
  EXPECT_FALSE(decode_group_read(odd, 2, ids).ok());
}

TEST(PerfGroup, ADeltaIsScaledForMultiplexingAndNeverInvented) {
  EXPECT_EQ(scaled_delta(100, 10, 10), 100.0);
  EXPECT_EQ(scaled_delta(100, 20, 10), 200.0);
  EXPECT_EQ(scaled_delta(100, 10, 20), 100.0);  // hybrid: running summed over core types may exceed enabled
  EXPECT_EQ(scaled_delta(0, 20, 0), 0.0);       // did not run in the interval: nothing to add
}
