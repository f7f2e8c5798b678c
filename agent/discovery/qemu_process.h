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

// True once the QEMU process of `uuid` has exited: /proc says it is gone (ENOENT, ESRCH), or a
// zombie nobody has reaped yet (a QEMU killed while libvirtd, its parent, is down stays one
// until init reaps it), or, with `check_identity`, its pid now runs another program. An error
// when /proc could not tell (EMFILE, ENOMEM, EACCES): then nothing is known to have exited.
Result<bool> qemu_exited(const HostRoot& root, pid_t pid, const std::string& uuid, bool check_identity);

// /proc answered that what was asked for does not exist (any more).
inline bool gone(const Error& e) { return e.err == ENOENT || e.err == ESRCH; }

Result<std::vector<pid_t>> list_threads(const HostRoot& root, pid_t pid);

// The vCPU index of a thread, from its comm; nullopt for non-vCPU threads; an error when
// comm could not be read (the thread is then neither, and is looked at again later).
Result<std::optional<unsigned>> thread_vcpu_index(const HostRoot& root, pid_t pid, pid_t tid);

}  // namespace kvmprof
