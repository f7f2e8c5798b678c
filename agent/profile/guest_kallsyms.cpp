#include "agent/profile/guest_kallsyms.h"

#include <sys/stat.h>

#include <cstring>

#include "agent/system/config_file.h"

namespace kvmprof {

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
    if (it != files_.end() && it->second.mtime_ns == mtime && it->second.size == st.st_size) return it->second.symbols;
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
  if (files_.size() >= kMaxFiles) files_.clear();  // paths of configs replaced since: loaded again on use
  files_[path] = Loaded{mtime, st.st_size, loaded};
  return loaded;
}

size_t GuestKallsyms::bytes() const {
  std::lock_guard lock(mu_);
  size_t total = 0;
  for (const auto& [path, file] : files_) total += file.symbols.symbols ? file.symbols.symbols->bytes() : 0;
  return total;
}

}  // namespace kvmprof
