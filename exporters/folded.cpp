#include "exporters/folded.h"

namespace kvmprof {
namespace {

// "[qemu-system-x86_64]" for "/usr/bin/qemu-system-x86_64"; "[guest_kernel]" stays as it is.
std::string bracketed_basename(const std::string& file) {
  if (file.size() >= 2 && file.front() == '[' && file.back() == ']') return file;
  return "[" + file.substr(file.rfind('/') + 1) + "]";  // npos + 1 == 0: no '/'
}

StackFrame frame(const Profile& profile, size_t location_index) {
  const ProfileLocation& l = profile.locations.at(location_index - 1);
  if (!l.function.empty()) return {l.function, l.kind};
  if (l.mapping == 0) return {"[unknown]", l.kind};
  return {bracketed_basename(profile.mappings.at(l.mapping - 1).file), l.kind};
}

std::optional<StackFrame> thread_frame(const ProfileSample& s) {
  for (const auto& [key, value] : s.num_labels) {
    if (key == "vcpu") return StackFrame{"vcpu " + std::to_string(value), std::nullopt};
  }
  if (const std::string& thread = label(s, "thread"); !thread.empty()) {
    return StackFrame{thread, std::nullopt};
  }
  return std::nullopt;
}

Stack stack(const Profile& profile, const ProfileSample& s) {
  Stack frames;
  if (const std::string& domain = label(s, "domain"); !domain.empty()) {
    frames.push_back({domain, std::nullopt});
  }
  if (auto thread = thread_frame(s)) frames.push_back(std::move(*thread));
  for (auto it = s.locations.rbegin(); it != s.locations.rend(); ++it) {  // leaf first in s
    frames.push_back(frame(profile, *it));
  }
  if (frames.empty()) frames.push_back({"[unknown]", std::nullopt});  // still CPU time: keep it
  return frames;
}

void append_folded_name(std::string& out, const StackFrame& f) {
  for (char c : f.name) {
    if (c == ';') {
      out += ':';
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += '?';
    } else {
      out += c;
    }
  }
  if (f.kind == FrameKind::kHostKernel) out += "_[k]";
  if (f.kind == FrameKind::kGuest) out += "_[g]";
}

}  // namespace

std::map<Stack, int64_t> stack_counts(const Profile& profile) {
  std::map<Stack, int64_t> counts;
  for (const auto& s : profile.samples) {
    if (s.count > 0) counts[stack(profile, s)] += s.count;
  }
  return counts;
}

std::string folded(const Profile& profile) {
  // Keyed again by the line: two stacks can fold to one line (a guest and a host frame of one
  // name are told apart by the suffix, but "a;b" and "a:b" are not).
  std::map<std::string, int64_t> lines;
  for (const auto& [stack, count] : stack_counts(profile)) {
    std::string line;
    for (size_t i = 0; i < stack.size(); ++i) {
      if (i > 0) line += ';';
      append_folded_name(line, stack[i]);
    }
    lines[line] += count;
  }
  std::string out;
  for (const auto& [line, count] : lines) out += line + " " + std::to_string(count) + "\n";
  return out;
}

}  // namespace kvmprof
