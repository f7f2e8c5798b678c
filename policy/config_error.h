#pragma once
// Where a config problem is, and what it is: every config file (agent.yaml, the web config)
// reports its problems as FILE:LINE:COLUMN: message.
#include <string>

namespace kvmprof {

struct Mark {
  int line = 0;    // 1-based
  int column = 0;  // 1-based
};

struct ConfigError {
  std::string file;
  int line = 0;    // 1-based
  int column = 0;  // 1-based
  std::string message;

  std::string format() const;  // "FILE:LINE:COLUMN: message"
};

}  // namespace kvmprof
