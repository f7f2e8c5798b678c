#pragma once
// The page at `/`: what this is and where the metrics are. Plain HTML, no external assets.
#include <string>
#include <string_view>

#include "exporters/prometheus_text.h"

namespace kvmprof {

std::string landing_page(const BuildInfo& build, const std::string& metrics_path);

// Escapes text for HTML element content and attribute values.
std::string html_escape(std::string_view text);

}  // namespace kvmprof
