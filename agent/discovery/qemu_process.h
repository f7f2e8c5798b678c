#pragma once
// Finding a domain's QEMU process and telling its vCPU threads from the others.
//
// libvirt has no public API for thread ids. The method here needs only procfs:
// 1. the QEMU process is the one whose argv holds "-uuid <domain uuid>" (libvirt always
//    passes it; unlike pid files this does not depend on libvirt's state directory);
// 2. vCPU threads are named "CPU <n>/<accel>" because libvirt always runs QEMU with
//    "-name ...,debug-threads=on"; every other thread of the process is emulator/I/O work.
#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/system/host_root.h"

namespace kvmprof {

bool argv_has_uuid(const std::vector<std::string>& argv, const std::string& uuid);

// Scans /proc/*/cmdline. Called only when a domain is first seen or its process changed.
std::optional<pid_t> find_qemu_pid(const HostRoot& root, const std::string& uuid);

bool process_has_uuid(const HostRoot& root, pid_t pid, const std::string& uuid);

// False once the process has exited, also while it is a zombie nobody has reaped yet (a QEMU
// killed while libvirtd, its parent, is down stays one until init reaps it).
bool process_running(const HostRoot& root, pid_t pid);

Result<std::vector<pid_t>> list_threads(const HostRoot& root, pid_t pid);

// The vCPU index of a thread, from its comm; nullopt for non-vCPU threads; an error when
// comm could not be read (the thread is then neither, and is looked at again later).
Result<std::optional<unsigned>> thread_vcpu_index(const HostRoot& root, pid_t pid, pid_t tid);

}  // namespace kvmprof
