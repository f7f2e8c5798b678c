#pragma once
// Reading a file an operator names (agent.yaml, a guest's kallsyms): only a regular file, only up to a bound, and
// never blocking (a FIFO or a device is refused before anything is read).
#include <cstddef>
#include <string>

#include "agent/system/result.h"

namespace kvmprof {

inline constexpr size_t kMaxConfigBytes = 1 << 20;  // 1 MiB: far above any real config

// The file's text, or why not: missing, unreadable, not a regular file (directory, FIFO,
// device, also through a symlink), or larger than kMaxConfigBytes.
Result<std::string> read_config_file(const std::string& path);
// The same for other files an operator names (a guest's kallsyms copy), up to max_bytes.
Result<std::string> read_bounded_file(const std::string& path, size_t max_bytes, const std::string& what);

}  // namespace kvmprof
