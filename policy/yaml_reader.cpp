#include "policy/yaml_reader.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <tuple>

namespace kvmprof {
namespace {

std::string list(const std::set<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// yaml-cpp marks are 0-based, and -1 for nodes without a position (an empty document).
Mark from_yaml(const YAML::Mark& m) { return Mark{std::max(m.line, 0) + 1, std::max(m.column, 0) + 1}; }

}  // namespace

Mark mark_of(const YAML::Node& node) { return from_yaml(node.Mark()); }

std::string ConfigError::format() const {
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

std::string YamlReader::resolve(const std::string& path) const {
  return (std::filesystem::path(file_).parent_path() / path).lexically_normal().string();
}

void YamlReader::error(const YAML::Node& node, std::string message) { error_at(mark_of(node), std::move(message)); }

void YamlReader::error_at(Mark m, std::string message) { errors_.push_back({file_, m.line, m.column, std::move(message)}); }

bool YamlReader::keys(const YAML::Node& map, const std::set<std::string>& allowed, const std::string& where) {
  if (!map.IsMap()) {
    error(map, "'" + where + "' must be a map");
    return false;
  }
  std::set<std::string> seen;
  for (const auto& entry : map) {
    const std::string key = entry.first.IsScalar() ? entry.first.Scalar() : "";
    if (!allowed.contains(key)) error(entry.first, "unknown key '" + key + "' in " + where + " (allowed: " + list(allowed) + ")");
    if (!seen.insert(key).second) error(entry.first, "duplicate key '" + key + "'");
  }
  return true;
}

std::optional<std::string> YamlReader::scalar(const YAML::Node& node, const std::string& key) {
  if (node.IsScalar()) return node.Scalar();
  error(node, "'" + key + "' must be a string");
  return std::nullopt;
}

std::vector<ConfigError> YamlReader::read(std::string_view text, const std::function<void(const YAML::Node&)>& load) {
  try {
    load(YAML::Load(std::string(text)));
  } catch (const YAML::DeepRecursion& e) {
    error_at(from_yaml(e.mark), "YAML nested too deeply (more than " + std::to_string(kMaxYamlDepth) + " levels)");
  } catch (const YAML::Exception& e) {
    error_at(from_yaml(e.mark), e.msg);
  }
  auto errors = std::move(errors_);
  std::stable_sort(errors.begin(), errors.end(),
                   [](const auto& a, const auto& b) { return std::tie(a.line, a.column) < std::tie(b.line, b.column); });
  return errors;
}

}  // namespace kvmprof
