#include "agent/symbols/symbolizer.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>

#include "agent/system/log.h"

namespace kvmprof {
namespace {

// Each distinct file opened leaves one small entry in file_keys_; a host that maps more files
// than this between two clears parses some of them again, nothing worse.
constexpr size_t kMaxFileKeys = 4096;

// /proc/modules without the use count and the users of each module: they change whenever a
// VM starts or stops, which does not move any symbol. Name, size and load address do.
std::string module_list(std::string_view text) {
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = std::min(text.find('\n', pos), text.size());
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    for (int field = 0; field < 6 && !line.empty(); ++field) {
      size_t space = std::min(line.find(' '), line.size());
      if (field == 0 || field == 1 || field == 5) out.append(line.substr(0, space)).append(" ");
      line.remove_prefix(std::min(space + 1, line.size()));
    }
    out += '\n';
  }
  return out;
}

std::string map_files_name(const MapEntry& map) {
  char name[40];
  std::snprintf(name, sizeof(name), "%llx-%llx", static_cast<unsigned long long>(map.start),
                static_cast<unsigned long long>(map.end));
  return name;
}

}  // namespace

Symbolizer::Symbolizer(HostRoot root, SymbolizerLimits limits)
    : root_(std::move(root)), limits_(limits) {}

void Symbolizer::refresh() {
  auto modules_text = root_.read_file("/proc/modules");  // missing when modules are disabled
  std::string modules = modules_text ? module_list(*modules_text) : "";
  {
    std::lock_guard lock(mu_);
    if (kallsyms_ && modules == modules_) return;
  }
  auto text = root_.read_file("/proc/kallsyms");
  auto parsed = text ? Kallsyms::parse(*text) : Result<Kallsyms>(text.error());
  std::lock_guard lock(mu_);
  if (!parsed) {
    if (parsed.error().message() != kernel_error_) {
      kernel_error_ = parsed.error().message();
      log_warning("kernel frames stay addresses: " + kernel_error_);
    }
    return;
  }
  kernel_error_.clear();
  kallsyms_ = std::make_shared<const Kallsyms>(std::move(*parsed));
  modules_ = std::move(modules);
  evict_locked();
}

std::optional<KernelName> Symbolizer::kernel(uint64_t addr) const {
  std::lock_guard lock(mu_);
  const KernelSymbol* symbol = kallsyms_ ? kallsyms_->find(addr) : nullptr;
  if (symbol == nullptr) return std::nullopt;
  return KernelName{symbol->name, symbol->module};
}

bool Symbolizer::kernel_addresses_hidden() const {
  std::lock_guard lock(mu_);
  return kallsyms_ && kallsyms_->addresses_hidden();
}

std::vector<MapEntry> Symbolizer::maps(pid_t pid) const {
  auto text = root_.read_file("/proc/" + std::to_string(pid) + "/maps");
  return text ? parse_maps(*text) : std::vector<MapEntry>{};
}

UserName Symbolizer::user(pid_t pid, const MapEntry& map, uint64_t addr) {
  if (addr < map.start || addr >= map.end) return {};
  std::shared_ptr<const ElfSymbols> symbols = symbols_for(pid, map);
  if (!symbols) return {};
  UserName out{symbols->build_id(), ""};
  // The mapping holds the file from map.offset on; the segment holding that file offset gives
  // the address the file was linked for, whatever base the loader chose.
  if (auto vaddr = symbols->vaddr_of_offset(addr - map.start + map.offset)) {
    if (const ElfSymbol* symbol = symbols->find(*vaddr)) out.function = demangle(symbol->name);
  }
  return out;
}

Result<Fd> Symbolizer::open_mapped(pid_t pid, const MapEntry& map) const {
  std::string proc = "/proc/" + std::to_string(pid);
  std::string map_file = proc + "/map_files/" + map_files_name(map);
  if (map.deleted) return root_.open_read(map_file);
  if (!map.path.starts_with('/')) return Error{0, "no file behind " + map.path};
  auto fd = root_.open_read(proc + "/root" + map.path);
  return fd ? std::move(fd) : root_.open_read(map_file);
}

std::shared_ptr<const ElfSymbols> Symbolizer::symbols_for(pid_t pid, const MapEntry& map) {
  // Failed opens are not remembered: retrying one costs a syscall, and the file may appear.
  auto fd = open_mapped(pid, map);
  struct stat st {};
  if (!fd || ::fstat(fd->get(), &st) != 0) return nullptr;
  FileId file{st.st_dev, st.st_ino, st.st_mtim.tv_sec * 1'000'000'000 + st.st_mtim.tv_nsec};
  {
    std::lock_guard lock(mu_);
    auto known = file_keys_.find(file);
    if (known != file_keys_.end()) {
      if (known->second.empty()) return nullptr;
      if (auto cached = touch_locked(known->second)) {
        ++hits_;
        return cached;
      }
    }
    ++misses_;
  }
  auto loaded = ElfSymbols::load_fd(fd->get(), map.path);
  std::lock_guard lock(mu_);
  if (!loaded) {
    remember_locked(file, "");
    return nullptr;
  }
  std::string key = (*loaded)->build_id();
  if (key.empty()) {  // never equal to a build-id: those are hex digits only
    key = "file:" + std::to_string(file.dev) + ":" + std::to_string(file.ino) + ":" +
          std::to_string(file.mtime_ns);
  }
  remember_locked(file, key);
  return insert_locked(key, std::move(*loaded));
}

void Symbolizer::remember_locked(const FileId& file, std::string key) {
  if (file_keys_.size() >= kMaxFileKeys) file_keys_.clear();
  file_keys_[file] = std::move(key);
}

std::shared_ptr<const ElfSymbols> Symbolizer::touch_locked(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return it->second.symbols;
}

// Another thread, or another copy of the file, may have cached the same build-id meanwhile.
std::shared_ptr<const ElfSymbols> Symbolizer::insert_locked(
    const std::string& key, std::shared_ptr<const ElfSymbols> symbols) {
  if (auto cached = touch_locked(key)) return cached;
  lru_.push_front(key);
  file_bytes_ += symbols->bytes();
  entries_.emplace(key, Entry{symbols, lru_.begin()});
  evict_locked();
  return symbols;
}

void Symbolizer::evict_locked() {
  while (entries_.size() > 1 &&
         (entries_.size() > limits_.max_files || bytes_locked() > limits_.max_bytes)) {
    auto it = entries_.find(lru_.back());
    file_bytes_ -= it->second.symbols->bytes();
    entries_.erase(it);
    lru_.pop_back();
    ++evictions_;
  }
}

size_t Symbolizer::bytes_locked() const {
  return file_bytes_ + (kallsyms_ ? kallsyms_->bytes() : 0);
}

SymbolCacheStats Symbolizer::stats() const {
  std::lock_guard lock(mu_);
  return {.files = entries_.size(),
          .bytes = bytes_locked(),
          .hits = hits_,
          .misses = misses_,
          .evictions = evictions_,
          .kernel_symbols = kallsyms_ ? kallsyms_->size() : 0};
}

void Symbolizer::set_limits(SymbolizerLimits limits) {
  std::lock_guard lock(mu_);
  limits_ = limits;
  evict_locked();
}

}  // namespace kvmprof
