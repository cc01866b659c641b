#include "train/svg_chart.h"

#include <algorithm>
#include <cmath>

#include "common/files.h"
#include "common/svg.h"

namespace mlamoe::train {

using svg::escape;

static std::string fmt(double v) { return svg::number("%.1f", v); }

static std::string tick_label(double v) {
  double a = std::fabs(v);
  return svg::number(a != 0 && (a < 0.01 || a >= 1e5) ? "%.2g" : a < 10 ? "%.3g" : "%.0f", v);
}

std::string render_svg(const Chart& c) {
  const double W = 720, H = 420, L = 70, R = 160, T = 40, B = 50;
  const char* palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  auto ty = [&](double y) { return c.log_y ? std::log10(std::max(y, 1e-12)) : y; };
  for (auto& s : c.series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, ty(s.y[i])), y1 = std::max(y1, ty(s.y[i]));
    }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad, y1 += pad;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - (ty(y) - y0) / (y1 - y0) * (H - T - B); };
  std::string o = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"720\" height=\"420\" font-family=\"sans-serif\" font-size=\"12\">\n";
  o += "<rect width=\"720\" height=\"420\" fill=\"white\"/>\n";
  o += "<text x=\"360\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" + escape(c.title) + "</text>\n";
  for (int i = 0; i <= 5; ++i) {  // grid and tick labels
    double gx = x0 + (x1 - x0) * i / 5, gy = y0 + (y1 - y0) * i / 5;
    double yv = c.log_y ? std::pow(10.0, gy) : gy;
    o += "<line x1=\"" + fmt(px(gx)) + "\" y1=\"" + fmt(T) + "\" x2=\"" + fmt(px(gx)) + "\" y2=\"" + fmt(H - B) +
         "\" stroke=\"#ddd\"/>\n";
    o += "<line x1=\"" + fmt(L) + "\" y1=\"" + fmt(py(yv)) + "\" x2=\"" + fmt(W - R) + "\" y2=\"" + fmt(py(yv)) +
         "\" stroke=\"#ddd\"/>\n";
    o += "<text x=\"" + fmt(px(gx)) + "\" y=\"" + fmt(H - B + 16) + "\" text-anchor=\"middle\">" + tick_label(gx) + "</text>\n";
    o += "<text x=\"" + fmt(L - 6) + "\" y=\"" + fmt(py(yv) + 4) + "\" text-anchor=\"end\">" + tick_label(yv) + "</text>\n";
  }
  o += "<rect x=\"" + fmt(L) + "\" y=\"" + fmt(T) + "\" width=\"" + fmt(W - L - R) + "\" height=\"" + fmt(H - T - B) +
       "\" fill=\"none\" stroke=\"#333\"/>\n";
  o += "<text x=\"" + fmt((L + W - R) / 2) + "\" y=\"" + fmt(H - 12) + "\" text-anchor=\"middle\">" + escape(c.x_label) + "</text>\n";
  o += "<text transform=\"translate(16," + fmt((T + H - B) / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
       escape(c.y_label) + (c.log_y ? " (log)" : "") + "</text>\n";
  for (size_t k = 0; k < c.series.size(); ++k) {
    const Series& s = c.series[k];
    std::string color = s.color.empty() ? palette[k % 8] : s.color;
    std::string pts;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (std::isfinite(s.y[i])) pts += fmt(px(s.x[i])) + "," + fmt(py(s.y[i])) + " ";
    o += "<polyline fill=\"none\" stroke=\"" + color + "\" stroke-width=\"1.6\" points=\"" + pts + "\"/>\n";
    double ly = T + 14 + 18 * k;
    o += "<line x1=\"" + fmt(W - R + 10) + "\" y1=\"" + fmt(ly - 4) + "\" x2=\"" + fmt(W - R + 30) + "\" y2=\"" +
         fmt(ly - 4) + "\" stroke=\"" + color + "\" stroke-width=\"2\"/>\n";
    o += "<text x=\"" + fmt(W - R + 34) + "\" y=\"" + fmt(ly) + "\">" + escape(s.name) + "</text>\n";
  }
  o += "</svg>\n";
  return o;
}

void write_svg_atomic(const std::string& path, const Chart& chart) { write_file_atomic(path, render_svg(chart)); }

std::vector<double> smooth(const std::vector<double>& y, double alpha) {
  std::vector<double> out;
  double m = 0;
  bool first = true;
  for (double v : y) {
    m = first ? v : alpha * v + (1 - alpha) * m;
    first = false;
    out.push_back(m);
  }
  return out;
}

}  // namespace mlamoe::train
