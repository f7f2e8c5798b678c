#pragma once
// YamlReader: what every config loader shares. It parses a YAML document, checks maps for
// unknown and duplicate keys, reads scalars, and records every problem at its FILE:LINE:COLUMN
// instead of stopping at the first, so one run of check-config lists them all.
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "policy/config_error.h"

namespace YAML {
class Node;
}

namespace kvmprof {

// yaml-cpp refuses deeper nesting with the message "bad file" (src/singledocparser.cpp DepthGuard<500>).
inline constexpr int kMaxYamlDepth = 500;

Mark mark_of(const YAML::Node& node);

class YamlReader {
 public:
  explicit YamlReader(std::string file) : file_(std::move(file)) {}

  void error(const YAML::Node& node, std::string message);
  void error_at(Mark m, std::string message);
  // `map` is a map whose keys are all in `allowed`, each once; problems are recorded. False
  // when it is not a map at all.
  bool keys(const YAML::Node& map, const std::set<std::string>& allowed, const std::string& where);
  std::optional<std::string> scalar(const YAML::Node& node, const std::string& key);
  // Parses `text` and hands the document to `load`; returns every problem, syntax errors
  // included, in the order of the file.
  std::vector<ConfigError> read(std::string_view text, const std::function<void(const YAML::Node&)>& load);
  const std::string& file() const { return file_; }
  // A path written in the file: relative ones are relative to the file's directory.
  std::string resolve(const std::string& path) const;

 private:
  std::string file_;
  std::vector<ConfigError> errors_;
};

}  // namespace kvmprof
