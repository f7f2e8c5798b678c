#pragma once
// PerfBackend: the narrow interface over perf_event_open/read/ioctl. RealPerfBackend calls
// the kernel; tests substitute fake kernel personalities for hardware this host lacks.
#include <linux/perf_event.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "agent/system/fd.h"
#include "agent/system/result.h"

namespace kvmprof {

class PerfBackend {
 public:
  virtual ~PerfBackend() = default;
  // attr may be changed by the kernel (attr.size on E2BIG), as with the real syscall.
  virtual Result<Fd> open(perf_event_attr& attr, pid_t tid, int cpu, int group_fd) = 0;
  // Returns the number of bytes read.
  virtual Result<size_t> read(const Fd& fd, std::span<std::byte> buf) = 0;
  virtual Result<uint64_t> event_id(const Fd& fd) = 0;  // PERF_EVENT_IOC_ID
};

class RealPerfBackend final : public PerfBackend {
 public:
  Result<Fd> open(perf_event_attr& attr, pid_t tid, int cpu, int group_fd) override;
  Result<size_t> read(const Fd& fd, std::span<std::byte> buf) override;
  Result<uint64_t> event_id(const Fd& fd) override;
};

}  // namespace kvmprof
