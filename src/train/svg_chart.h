// Line charts as hand-written SVG (loss curves, reward, expert load): no plotting
// library, one self-contained file a browser or the README renders.
#pragma once
#include <string>
#include <vector>

namespace mlamoe::train {

struct Series {
  std::string name;
  std::vector<double> x, y;
  std::string color;  // "" picks from a palette
};

struct Chart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  bool log_y = false;
};

std::string render_svg(const Chart& chart);  // 720x420
void write_svg_atomic(const std::string& path, const Chart& chart);

// Exponential moving average, to draw a noisy loss as a readable line.
std::vector<double> smooth(const std::vector<double>& y, double alpha = 0.1);

}  // namespace mlamoe::train
