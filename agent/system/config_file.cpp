#include "agent/system/config_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "agent/system/fd.h"

namespace kvmprof {
namespace {

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

}  // namespace

Result<std::string> read_config_file(const std::string& path) {
  return read_bounded_file(path, kMaxConfigBytes, "config file");
}

Result<std::string> read_bounded_file(const std::string& path, size_t max_bytes, const std::string& what) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd.valid()) return system_error("open " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return system_error("stat " + path);
  if (!S_ISREG(st.st_mode)) return Error{0, path + " is " + kind_of(st.st_mode) + ", not a " + what};
  if (static_cast<size_t>(st.st_size) > max_bytes) {
    return Error{0, path + " is larger than " + std::to_string(max_bytes >> 10) + " KiB; not a " + what};
  }
  std::string out(static_cast<size_t>(st.st_size) + 1, '\0');
  size_t got = 0;
  for (;;) {  // the file may grow while it is read: never past the bound
    if (got == out.size()) out.resize(std::min(out.size() * 2, max_bytes + 1));
    if (got == out.size()) break;
    ssize_t n = ::read(fd.get(), out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return system_error("read " + path);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > max_bytes) return Error{0, path + " grew beyond " + std::to_string(max_bytes >> 10) + " KiB while being read"};
  out.resize(got);
  return out;
}

}  // namespace kvmprof
