#include "agent/discovery/qemu_process.h"

#include <charconv>

#include "agent/system/procfs.h"

namespace kvmprof {
namespace {

std::optional<pid_t> to_pid(const std::string& name) {
  pid_t pid = 0;
  auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
  if (ec != std::errc() || p != name.data() + name.size() || pid <= 0) return std::nullopt;
  return pid;
}

std::string proc(pid_t pid) { return "/proc/" + std::to_string(pid); }

}  // namespace

bool argv_has_uuid(const std::vector<std::string>& argv, const std::string& uuid) {
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == "-uuid" && argv[i + 1] == uuid) return true;
  }
  return false;
}

bool process_has_uuid(const HostRoot& root, pid_t pid, const std::string& uuid) {
  auto text = root.read_file(proc(pid) + "/cmdline");
  return text.ok() && argv_has_uuid(parse_cmdline(*text), uuid);
}

Result<bool> qemu_exited(const HostRoot& root, pid_t pid, const std::string& uuid, bool check_identity) {
  auto stat = root.read_file(proc(pid) + "/stat");
  if (!stat.ok()) return gone(stat.error()) ? Result<bool>(true) : stat.error();
  auto state = parse_task_state(*stat);
  if (!state) return Error{0, proc(pid) + "/stat: no state field"};
  if (*state == 'Z' || *state == 'X' || *state == 'x') return true;
  if (!check_identity) return false;
  auto cmdline = root.read_file(proc(pid) + "/cmdline");
  if (!cmdline.ok()) return gone(cmdline.error()) ? Result<bool>(true) : cmdline.error();
  return !argv_has_uuid(parse_cmdline(*cmdline), uuid);
}

std::optional<pid_t> find_qemu_pid(const HostRoot& root, const std::string& uuid) {
  auto entries = root.list_dir("/proc");
  if (!entries.ok()) return std::nullopt;
  for (const auto& name : *entries) {
    auto pid = to_pid(name);
    if (pid && process_has_uuid(root, *pid, uuid)) return pid;
  }
  return std::nullopt;
}

Result<std::vector<pid_t>> list_threads(const HostRoot& root, pid_t pid) {
  auto entries = root.list_dir(proc(pid) + "/task");
  if (!entries.ok()) return entries.error();
  std::vector<pid_t> tids;
  for (const auto& name : *entries) {
    if (auto tid = to_pid(name)) tids.push_back(*tid);
  }
  return tids;
}

Result<std::optional<unsigned>> thread_vcpu_index(const HostRoot& root, pid_t pid, pid_t tid) {
  auto comm = root.read_file(proc(pid) + "/task/" + std::to_string(tid) + "/comm");
  if (!comm.ok()) return comm.error();
  return vcpu_index_from_comm(*comm);
}

}  // namespace kvmprof
