#pragma once
// One fuzz input = an event spec as written in a config or on explain's command line
// ("cycles:ppG", "cpu/event=0x3c,umask=0x0/k", "kvm:kvm_exit"). fuzz_event_spec_input parses it
// with parse_event_spec and checks event_spec.h's promises: an error points into the spec (its
// column at most the spec's length) and says something; an accepted spec has a canonical text
// that parses again to the same text, kind and modifiers.
// Used by event_spec_fuzz.cpp; a unit test replays tests/fuzz/corpus/event_spec/ through it.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

#include "policy/event_spec.h"
#include "tests/fuzz/fuzz_promise.h"

namespace kvmprof::testing {

inline bool fuzz_same_modifiers(const Modifiers& a, const Modifiers& b) {
  return a.exclude_user == b.exclude_user && a.exclude_kernel == b.exclude_kernel && a.exclude_hv == b.exclude_hv &&
         a.exclude_idle == b.exclude_idle && a.exclude_guest == b.exclude_guest && a.exclude_host == b.exclude_host &&
         a.guest_host_given == b.guest_host_given && a.precise == b.precise && a.precise_max == b.precise_max;
}

inline void fuzz_event_spec_input(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = parse_event_spec(text);
  if (auto* err = std::get_if<EventSpecError>(&parsed)) {
    KVMPROF_FUZZ_PROMISE(err->column <= text.size() && !err->message.empty());
    return;
  }
  const auto& spec = std::get<EventSpec>(parsed);
  KVMPROF_FUZZ_PROMISE(!spec.text.empty());
  auto again = parse_event_spec(spec.text);
  KVMPROF_FUZZ_PROMISE(std::holds_alternative<EventSpec>(again));
  const auto& second = std::get<EventSpec>(again);
  KVMPROF_FUZZ_PROMISE(second.text == spec.text && second.kind.index() == spec.kind.index());
  KVMPROF_FUZZ_PROMISE(fuzz_same_modifiers(second.mods, spec.mods));
}

}  // namespace kvmprof::testing
