#pragma once
// Result<T>: a value or an Error carrying errno and context, for expected failures
// (a thread that exited, a file that is missing, a perf open the kernel refused).
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <variant>

namespace kvmprof {

struct Error {
  int err = 0;          // errno at the failure point, 0 when not a system error
  std::string context;  // what was being done, e.g. "open /proc/12/task/13/stat"

  std::string message() const {
    return err == 0 ? context : context + ": " + std::strerror(err);
  }
};

template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

inline Error system_error(std::string context) { return Error{errno, std::move(context)}; }

inline std::string errno_name(int err) {
  const char* name = strerrorname_np(err);
  return name ? name : std::to_string(err);
}

// Failures by (what failed, errno name): the kvmprof_*_errors_total counters.
using ErrorCounts = std::map<std::pair<std::string, std::string>, uint64_t>;

// Counts `e` under (what, its errno name); "EBADMSG" when it is no system error (text that did
// not parse).
inline void count_error(ErrorCounts& counts, const std::string& what, const Error& e) {
  ++counts[{what, e.err ? errno_name(e.err) : "EBADMSG"}];
}

}  // namespace kvmprof
