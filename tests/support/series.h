#pragma once
// Reading a scrape the way Prometheus does: every sample line as a series (name and label set,
// label order ignored) with its value. `promtool check metrics` does not catch two lines of
// the same series; Prometheus silently keeps one of them. Every scrape in the tests goes
// through series() and must have no duplicates.
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "exporters/prometheus_text.h"

namespace kvmprof::testing {

using Labels = std::map<std::string, std::string>;
using SeriesKey = std::pair<std::string, Labels>;

struct Scrape {
  std::map<SeriesKey, double> values;
  std::vector<std::string> duplicates;  // sample lines whose series was already seen
};

inline Scrape parse_scrape(const std::string& text) {
  Scrape out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    std::string line = text.substr(pos, end - pos);
    pos = end == std::string::npos ? text.size() : end + 1;
    if (line.empty() || line[0] == '#') continue;
    size_t i = line.find_first_of("{ ");
    SeriesKey key{line.substr(0, i), {}};
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (line.at(i) != '}') {
        size_t eq = line.find('=', i);
        std::string name = line.substr(i, eq - i), value;
        for (i = eq + 2; line.at(i) != '"'; ++i) {
          if (line[i] == '\\') {
            ++i;
            value += line.at(i) == 'n' ? '\n' : line[i];
          } else {
            value += line[i];
          }
        }
        key.second[name] = value;
        i += line.at(i + 1) == ',' ? 2 : 1;
      }
      ++i;
    }
    double value = std::stod(line.substr(i + 1));
    if (!out.values.emplace(key, value).second) out.duplicates.push_back(line);
  }
  return out;
}

// The scrape of a snapshot, failing the test's expectations on a duplicate series.
inline std::map<SeriesKey, double> series(const Snapshot& s) {
  Scrape scrape = parse_scrape(prometheus_text(s, {"test", "test"}));
  if (!scrape.duplicates.empty()) throw std::runtime_error("duplicate series: " + scrape.duplicates.front());
  return scrape.values;
}

}  // namespace kvmprof::testing
