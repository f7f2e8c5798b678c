#include "agent/system/perf_backend.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

namespace kvmprof {

Result<Fd> RealPerfBackend::open(perf_event_attr& attr, pid_t tid, int cpu, int group_fd) {
  long fd = ::syscall(SYS_perf_event_open, &attr, tid, cpu, group_fd, PERF_FLAG_FD_CLOEXEC);
  if (fd < 0) return system_error("perf_event_open tid " + std::to_string(tid));
  return Fd(static_cast<int>(fd));
}

Result<size_t> RealPerfBackend::read(const Fd& fd, std::span<std::byte> buf) {
  ssize_t n = ::read(fd.get(), buf.data(), buf.size());
  if (n < 0) return system_error("read perf fd");
  return static_cast<size_t>(n);
}

Result<uint64_t> RealPerfBackend::event_id(const Fd& fd) {
  uint64_t id = 0;
  if (::ioctl(fd.get(), PERF_EVENT_IOC_ID, &id) < 0) return system_error("ioctl PERF_EVENT_IOC_ID");
  return id;
}

}  // namespace kvmprof
