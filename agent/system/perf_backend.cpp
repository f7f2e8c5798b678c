#include "agent/system/perf_backend.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
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

Result<bool> RealPerfBackend::disable(const Fd& fd) {
  if (::ioctl(fd.get(), PERF_EVENT_IOC_DISABLE, 0) < 0) return system_error("ioctl PERF_EVENT_IOC_DISABLE");
  return true;
}

Result<RingMapping> RealPerfBackend::map_ring(const Fd& fd, size_t data_pages) {
  size_t bytes = (1 + data_pages) * static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  void* base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (base == MAP_FAILED) return system_error("mmap perf ring of " + std::to_string(bytes) + " bytes");
  return RingMapping(static_cast<std::byte*>(base), bytes, [](std::byte* b, size_t n) { ::munmap(b, n); });
}

}  // namespace kvmprof
