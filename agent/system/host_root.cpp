#include "agent/system/host_root.h"

#include <dirent.h>
#include <fcntl.h>

#include <array>
#include <memory>

namespace kvmprof {

HostRoot::HostRoot(std::string root) : root_(std::move(root)) {
  while (root_.size() > 1 && root_.back() == '/') root_.pop_back();
  if (root_ == "/") root_.clear();
}

std::string HostRoot::path(const std::string& rel) const { return root_ + rel; }

Result<std::string> HostRoot::read_file(const std::string& rel) const {
  return read_whole_file(path(rel));
}

Result<Fd> HostRoot::open_read(const std::string& rel) const {
  Fd fd(::open(path(rel).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return system_error("open " + path(rel));
  return fd;
}

Result<std::vector<std::string>> HostRoot::list_dir(const std::string& rel) const {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(path(rel).c_str()), ::closedir);
  if (!dir) return system_error("opendir " + path(rel));
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(dir.get())) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(std::move(name));
  }
  return names;
}

Result<std::string> read_whole_file(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return system_error("open " + path);
  std::string out;
  std::array<char, 4096> buf{};
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) return system_error("read " + path);
    if (n == 0) return out;
    out.append(buf.data(), static_cast<size_t>(n));
  }
}

Result<std::string> pread_all(const Fd& fd, const std::string& what) {
  std::array<char, 2048> buf{};  // stat and schedstat lines are well under 1 KiB
  ssize_t n = ::pread(fd.get(), buf.data(), buf.size(), 0);
  if (n < 0) return system_error("read " + what);
  return std::string(buf.data(), static_cast<size_t>(n));
}

}  // namespace kvmprof
