#pragma once
// HostRoot: every procfs/sysfs access is relative to a root directory ("/" on a real host,
// a fixture tree in tests, "/host" in a container that mounts the host there).
#include <string>
#include <vector>

#include "agent/system/fd.h"
#include "agent/system/result.h"

namespace kvmprof {

class HostRoot {
 public:
  explicit HostRoot(std::string root = "/");

  std::string path(const std::string& rel) const;  // rel starts with '/'
  Result<std::string> read_file(const std::string& rel) const;
  Result<std::vector<std::string>> list_dir(const std::string& rel) const;
  Result<Fd> open_read(const std::string& rel) const;

 private:
  std::string root_;
};

// Reads a small file into a string; used with procfs, sysfs and config files.
Result<std::string> read_whole_file(const std::string& path);

// Re-reads an already open procfs/seq_file with one pread() at offset 0: the kernel
// regenerates the content, so a kept-open fd costs one syscall per read.
Result<std::string> pread_all(const Fd& fd, const std::string& what);

}  // namespace kvmprof
