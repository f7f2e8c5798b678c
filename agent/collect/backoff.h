#pragma once
// Backoff: when to try again something that failed (a VM's process not found, a counter group
// the kernel refused): after `initial`, doubling up to `max`; at once again after a success.
#include <algorithm>
#include <chrono>

namespace kvmprof {

class Backoff {
 public:
  using Clock = std::chrono::steady_clock;

  Backoff(Clock::duration initial, Clock::duration max) : initial_(initial), max_(max), delay_(initial) {}

  bool due(Clock::time_point now) const { return now >= next_; }
  void failed(Clock::time_point now) {
    next_ = now + delay_;
    delay_ = std::min(delay_ * 2, max_);
  }
  void succeeded() {
    next_ = {};
    delay_ = initial_;
  }

 private:
  Clock::duration initial_, max_, delay_;
  Clock::time_point next_{};
};

}  // namespace kvmprof
