#include "agent/profile/guest_kallsyms.h"

#include <sys/stat.h>

#include <cstring>
#include <tuple>

#include "agent/system/config_file.h"

namespace kvmprof {
namespace {

size_t bytes_of(const GuestSymbols& g) { return g.symbols ? g.symbols->bytes() : 0; }

}  // namespace

GuestMatch match(const Kallsyms& symbols, const std::vector<uint64_t>& guest_kernel_ips) {
  GuestMatch m;
  m.total = guest_kernel_ips.size();
  for (uint64_t ip : guest_kernel_ips) m.covered += symbols.find(ip) ? 1 : 0;
  return m;
}

GuestSymbols GuestKallsyms::get(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {nullptr, "cannot read " + path + ": " + std::strerror(errno)};
  const int64_t mtime = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
  {
    std::lock_guard lock(mu_);
    auto it = files_.find(path);
    if (it != files_.end() && it->second.mtime_ns == mtime && it->second.size == st.st_size) {
      it->second.used = ++clock_;
      return it->second.symbols;
    }
  }
  GuestSymbols loaded;  // read and parsed outside the lock: a profile of another VM goes on
  auto text = read_bounded_file(path, kMaxGuestKallsymsBytes, "kallsyms copy");
  if (!text.ok()) {
    loaded.error = text.error().message();
  } else if (auto parsed = Kallsyms::parse(*text); !parsed.ok()) {
    loaded.error = path + ": " + parsed.error().message();
  } else if (parsed->addresses_hidden()) {
    loaded.error = path + " has every address 0: copy it as root in the guest (kptr_restrict hides them otherwise)";
  } else {
    loaded.symbols = std::make_shared<const Kallsyms>(std::move(*parsed));
  }
  std::lock_guard lock(mu_);
  files_[path] = Loaded{mtime, st.st_size, ++clock_, loaded};
  evict_locked(path);
  return loaded;
}

void GuestKallsyms::evict_locked(const std::string& keep) {
  size_t total = 0;
  for (const auto& [path, file] : files_) total += bytes_of(file.symbols);
  while (total > max_bytes_ && files_.size() > 1) {
    auto oldest = files_.end();
    for (auto it = files_.begin(); it != files_.end(); ++it) {
      if (it->first != keep && (oldest == files_.end() || it->second.used < oldest->second.used)) oldest = it;
    }
    total -= bytes_of(oldest->second.symbols);
    files_.erase(oldest);
  }
}

size_t GuestKallsyms::bytes() const {
  std::lock_guard lock(mu_);
  size_t total = 0;
  for (const auto& [path, file] : files_) total += bytes_of(file.symbols);
  return total;
}

void GuestKallsyms::set_max_bytes(size_t bytes) {
  std::lock_guard lock(mu_);
  max_bytes_ = bytes;
  std::string newest;
  uint64_t used = 0;
  for (const auto& [path, file] : files_) {
    if (file.used >= used) std::tie(newest, used) = std::tie(path, file.used);
  }
  evict_locked(newest);
}

bool GuestKallsyms::first_mismatch(const std::string& path, const std::string& vm) {
  std::lock_guard lock(mu_);
  auto it = files_.find(path);
  const std::string key = it == files_.end() ? path + " " + vm
                                             : std::to_string(it->second.mtime_ns) + " " + path + " " + vm;
  if (warned_.size() > 4096) warned_.clear();  // VMs and files come and go: warned again, never grown
  return warned_.insert(key).second;
}

}  // namespace kvmprof
