#include "agent/system/config_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd.valid()) return system_error("open " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return system_error("stat " + path);
  if (!S_ISREG(st.st_mode)) return Error{0, path + " is " + kind_of(st.st_mode) + ", not a config file"};
  if (static_cast<size_t>(st.st_size) > kMaxConfigBytes) {
    return Error{0, path + " is larger than " + std::to_string(kMaxConfigBytes >> 10) + " KiB; not a config file"};
  }
  std::string out(kMaxConfigBytes + 1, '\0');
  size_t got = 0;
  while (got < out.size()) {  // the file may grow while it is read: never past the bound
    ssize_t n = ::read(fd.get(), out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return system_error("read " + path);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > kMaxConfigBytes) return Error{0, path + " grew beyond " + std::to_string(kMaxConfigBytes >> 10) + " KiB while being read"};
  out.resize(got);
  return out;
}

}  // namespace kvmprof
