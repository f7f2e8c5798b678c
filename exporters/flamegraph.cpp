#include "exporters/flamegraph.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <string_view>
#include <vector>

#include "exporters/folded.h"
#include "exporters/markup.h"

namespace kvmprof {
namespace {

// flamegraph.pl's geometry, so the graph looks like the ones people know.
constexpr int kFontSize = 12;
constexpr double kCharWidth = 0.59 * kFontSize;  // an average glyph of Verdana
constexpr int kFrameHeight = 16;
constexpr int kXPad = 10;
constexpr int kTitleHeight = kFontSize * 3;
constexpr int kSubtitleHeight = kFontSize * 2;
constexpr int kLegendHeight = kFontSize * 2 + 10;
constexpr double kMinWidth = 0.1;  // pixels: narrower frames are not drawn
constexpr int kMinImageWidth = 100;


// The label of a frame `width` pixels wide: whole, shortened with "..", or none under 3 chars.
std::string fitted_label(const std::string& name, double width) {
  const auto fits = static_cast<size_t>(std::max(0.0, (width - 3) / kCharWidth));
  if (fits < 3) return "";
  std::u32string text = characters(name);
  if (text.size() > fits) text = text.substr(0, fits - 2) + U"..";
  return xml_escape(text);
}

// --- Numbers, written the same whatever the process locale. ---

std::string fixed(double v) {
  char buf[32];
  return std::string(buf, std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, 2).ptr);
}

// --- Layout. ---

struct Box {
  StackFrame frame;
  int64_t start = 0, end = 0;  // in samples, from the left
  size_t depth = 0;            // 0 is the root, "all"
};

void close_boxes(std::vector<Box>& open, size_t keep, int64_t at, std::vector<Box>& out) {
  for (; open.size() > keep; open.pop_back()) {
    open.back().end = at;
    out.push_back(std::move(open.back()));
  }
}

// Every frame of the graph, by flamegraph.pl's flow: in sorted order the stacks that share a
// prefix are neighbours, so each frame spans its prefix's samples, its children sorted by name.
// A loop, not a recursion, so deep stacks cannot exhaust the thread's stack.
std::vector<Box> layout(const std::map<Stack, int64_t>& stacks) {
  std::vector<Box> boxes, open;  // open[d] is the frame at depth d + 1 of the previous stack
  int64_t at = 0;
  for (const auto& [stack, count] : stacks) {
    size_t common = 0;
    while (common < open.size() && common < stack.size() && open[common].frame == stack[common]) {
      ++common;
    }
    close_boxes(open, common, at, boxes);
    for (size_t d = common; d < stack.size(); ++d) open.push_back({stack[d], at, 0, d + 1});
    at += count;
  }
  close_boxes(open, 0, at, boxes);
  boxes.push_back({{"all", std::nullopt}, 0, at, 0});
  return boxes;
}

// --- Drawing. ---

uint32_t fnv1a(std::string_view s) {
  uint32_t h = 2166136261u;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
  return h;
}

// A color of the frame's palette; `shade` in [0, 1] varies it so that neighbours stand apart.
std::string color(const std::optional<FrameKind>& kind, double shade) {
  auto rgb = [](double r, double g, double b) {
    return "rgb(" + std::to_string(static_cast<int>(r)) + "," +
           std::to_string(static_cast<int>(g)) + "," + std::to_string(static_cast<int>(b)) + ")";
  };
  if (!kind) return rgb(175 + 40 * shade, 175 + 40 * shade, 175 + 40 * shade);  // VM, thread
  switch (*kind) {
    case FrameKind::kGuest:
      return rgb(80 + 50 * shade, 150 + 60 * shade, 225 + 30 * shade);
    case FrameKind::kHostKernel:
      return rgb(225 + 30 * shade, 155 + 55 * shade, 30 + 40 * shade);
    case FrameKind::kHostUser:
      return rgb(205 + 50 * shade, 60 + 70 * shade, 50 + 30 * shade);
  }
  return rgb(0, 0, 0);
}

std::string frame_color(const StackFrame& f) {
  return color(f.kind, static_cast<double>(fnv1a(f.name) % 1000) / 999);
}

struct Canvas {
  int width = 0, height = 0;
  int graph_bottom = 0;  // y of the root frame's bottom edge
  double pixels_per_sample = 0;
};

std::string box_svg(const Canvas& c, const Box& b, int64_t total) {
  const double x = kXPad + static_cast<double>(b.start) * c.pixels_per_sample;
  const double w = static_cast<double>(b.end - b.start) * c.pixels_per_sample;
  const int y = c.graph_bottom - static_cast<int>(b.depth + 1) * kFrameHeight;
  const double share = 100.0 * static_cast<double>(b.end - b.start) / static_cast<double>(total);
  std::string out = "<g><title>" + xml_escape(b.frame.name) + " (" + with_commas(b.end - b.start) +
                    " samples, " + fixed(share) + "%)</title>";
  out += "<rect x=\"" + fixed(x) + "\" y=\"" + std::to_string(y) + "\" width=\"" + fixed(w) +
         "\" height=\"" + std::to_string(kFrameHeight - 1) + "\" fill=\"" + frame_color(b.frame) +
         "\" rx=\"2\" ry=\"2\"/>";
  if (std::string label = fitted_label(b.frame.name, w); !label.empty()) {
    out += "<text x=\"" + fixed(x + 3) + "\" y=\"" + fixed(y + 10.5) + "\">" + label + "</text>";
  }
  return out + "</g>\n";
}

std::string legend_svg(const Canvas& c) {
  static const std::pair<std::optional<FrameKind>, const char*> kEntries[] = {
      {FrameKind::kGuest, "guest"},
      {FrameKind::kHostKernel, "host kernel"},
      {FrameKind::kHostUser, "host user"},
      {std::nullopt, "VM, thread"}};
  std::string out;
  const int y = c.height - kFontSize - 6;
  int x = kXPad;
  for (const auto& [kind, name] : kEntries) {
    out += "<rect x=\"" + std::to_string(x) + "\" y=\"" + std::to_string(y) + "\" width=\"" +
           std::to_string(kFontSize) + "\" height=\"" + std::to_string(kFontSize) + "\" fill=\"" +
           color(kind, 0.5) + "\"/><text x=\"" + std::to_string(x + kFontSize + 4) + "\" y=\"" +
           std::to_string(y + kFontSize - 2) + "\">" + name + "</text>\n";
    x += 130;
  }
  return out;
}

std::string header_svg(const Canvas& c, const FlameGraphOptions& options) {
  const std::string w = std::to_string(c.width), h = std::to_string(c.height);
  const std::string middle = fixed(c.width / 2.0);
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n";
  out += "<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" + w + "\" height=\"" +
         h + "\" viewBox=\"0 0 " + w + " " + h + "\">\n";
  out += "<style>text{font-family:Verdana,sans-serif;font-size:" + std::to_string(kFontSize) +
         "px;fill:#000}text.title{font-size:17px}g:hover rect{stroke:#000;stroke-width:0.5}"
         "</style>\n";
  out += "<rect width=\"100%\" height=\"100%\" fill=\"#f8f8f8\"/>\n";
  out += "<text class=\"title\" x=\"" + middle + "\" y=\"" + std::to_string(kFontSize * 2) +
         "\" text-anchor=\"middle\">" + xml_escape(options.title) + "</text>\n";
  if (!options.subtitle.empty()) {
    out += "<text x=\"" + middle + "\" y=\"" + std::to_string(kFontSize * 4) +
           "\" text-anchor=\"middle\">" + xml_escape(options.subtitle) + "</text>\n";
  }
  return out;
}

}  // namespace

std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n);
  for (int i = static_cast<int>(digits.size()) - 3; i > (n < 0 ? 1 : 0); i -= 3) digits.insert(static_cast<size_t>(i), ",");
  return digits;
}

std::string flamegraph_svg(const Profile& profile, const FlameGraphOptions& options) {
  Canvas c;
  c.width = std::max(options.width, kMinImageWidth);
  std::vector<Box> boxes = layout(stack_counts(profile));
  const int64_t total = boxes.back().end;  // the root, "all"
  if (total > 0) c.pixels_per_sample = (c.width - 2.0 * kXPad) / static_cast<double>(total);
  std::erase_if(boxes, [&](const Box& b) {
    return static_cast<double>(b.end - b.start) * c.pixels_per_sample < kMinWidth;
  });
  size_t depth = 0;
  for (const Box& b : boxes) depth = std::max(depth, b.depth);
  const int top = kTitleHeight + (options.subtitle.empty() ? 0 : kSubtitleHeight);
  c.graph_bottom = top + static_cast<int>(depth + 1) * kFrameHeight;
  c.height = c.graph_bottom + kLegendHeight;

  std::string out = header_svg(c, options);
  if (boxes.empty()) {
    out += "<text x=\"" + fixed(c.width / 2.0) + "\" y=\"" + std::to_string(c.graph_bottom - 4) +
           "\" text-anchor=\"middle\">no samples</text>\n";
  }
  for (const Box& b : boxes) out += box_svg(c, b, total);
  return out + legend_svg(c) + "</svg>\n";
}

}  // namespace kvmprof
