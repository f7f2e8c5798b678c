#pragma once
// PerfBackend: the narrow interface over perf_event_open/read/ioctl/mmap. RealPerfBackend calls
// the kernel; tests substitute fake kernel personalities for hardware this host lacks.
#include <linux/perf_event.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <functional>
#include <span>

#include "agent/system/fd.h"
#include "agent/system/result.h"

namespace kvmprof {

// A sampling event's ring buffer mapping (page 0 + data pages); unmapped once, on destruction.
class RingMapping {
 public:
  using Release = std::function<void(std::byte*, size_t)>;
  RingMapping() = default;
  RingMapping(std::byte* base, size_t bytes, Release release) : base_(base), bytes_(bytes), release_(std::move(release)) {}
  RingMapping(RingMapping&& other) noexcept { *this = std::move(other); }
  RingMapping& operator=(RingMapping&& other) noexcept {
    if (this != &other) {
      reset();
      base_ = std::exchange(other.base_, nullptr);
      bytes_ = std::exchange(other.bytes_, 0);
      release_ = std::move(other.release_);
    }
    return *this;
  }
  ~RingMapping() { reset(); }

  std::span<std::byte> bytes() const { return {base_, bytes_}; }

 private:
  void reset() {
    if (base_ && release_) release_(base_, bytes_);
    base_ = nullptr;
  }
  std::byte* base_ = nullptr;
  size_t bytes_ = 0;
  Release release_;
};

class PerfBackend {
 public:
  virtual ~PerfBackend() = default;
  // attr may be changed by the kernel (attr.size on E2BIG), as with the real syscall.
  virtual Result<Fd> open(perf_event_attr& attr, pid_t tid, int cpu, int group_fd) = 0;
  // Returns the number of bytes read.
  virtual Result<size_t> read(const Fd& fd, std::span<std::byte> buf) = 0;
  virtual Result<uint64_t> event_id(const Fd& fd) = 0;  // PERF_EVENT_IOC_ID
  // Maps a sampling event's ring: page 0 and `data_pages` (a power of two) pages, writable so
  // that the kernel reports what does not fit as PERF_RECORD_LOST instead of overwriting.
  // EPERM when it would exceed perf_event_mlock_kb + RLIMIT_MEMLOCK without CAP_IPC_LOCK.
  virtual Result<RingMapping> map_ring(const Fd& fd, size_t data_pages) = 0;
  // PERF_EVENT_IOC_DISABLE: the event writes no more records (before a ring's last drain).
  virtual Result<bool> disable(const Fd& fd) = 0;
};

class RealPerfBackend final : public PerfBackend {
 public:
  Result<Fd> open(perf_event_attr& attr, pid_t tid, int cpu, int group_fd) override;
  Result<size_t> read(const Fd& fd, std::span<std::byte> buf) override;
  Result<uint64_t> event_id(const Fd& fd) override;
  Result<RingMapping> map_ring(const Fd& fd, size_t data_pages) override;
  Result<bool> disable(const Fd& fd) override;
};

}  // namespace kvmprof
