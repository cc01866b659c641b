#include "planner/roofline_svg.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

#include "common/svg.h"

namespace mlamoe::planner {

namespace {

using svg::escape;

std::string si(double v) {  // 1.2e15 -> "1.2 P"
  const char* units[] = {"", "k", "M", "G", "T", "P", "E"};
  int u = 0;
  while (std::fabs(v) >= 1000 && u < 6) v /= 1000, ++u;
  return svg::number(v < 10 ? "%.2g" : "%.3g", v) + " " + units[u];
}

}  // namespace

std::string roofline_svg(const Plan& p) {
  const Accelerator& a = p.hw.device;
  const double bw = a.memory_bandwidth_gbps * 1e9;  // bytes/s
  struct Roof { std::string name; double flops; };
  std::vector<Roof> roofs;
  for (auto& [prec, tf] : a.peak_dense_tflops)
    if (prec == "fp32" || prec == "bf16" || prec == "fp8" || prec == "fp4") roofs.push_back({prec, tf * 1e12});
  std::sort(roofs.begin(), roofs.end(), [](auto& x, auto& y) { return x.flops < y.flops; });
  struct Point { std::string name; double ai, flops; std::string color; };
  auto achieved = [](const PhaseCost& s) { return s.t_step > 0 ? s.flops / s.t_step : 0.0; };
  std::vector<Point> points = {{"prefill", p.prefill.arithmetic_intensity(), achieved(p.prefill), "#1f77b4"},
                               {"decode", p.decode.arithmetic_intensity(), achieved(p.decode), "#d62728"}};

  const double peak = roofs.empty() ? 1e12 : roofs.back().flops;
  double x_lo = 0.1, x_hi = 1e4, y_hi = peak * 3, y_lo = peak / 1e4;
  for (auto& pt : points) {
    if (pt.ai > 0) x_lo = std::min(x_lo, pt.ai / 3), x_hi = std::max(x_hi, pt.ai * 3);
    if (pt.flops > 0) y_lo = std::min(y_lo, pt.flops / 3);
  }
  x_lo = std::pow(10, std::floor(std::log10(x_lo)));
  x_hi = std::pow(10, std::ceil(std::log10(x_hi)));
  y_lo = std::pow(10, std::floor(std::log10(y_lo)));
  y_hi = std::pow(10, std::ceil(std::log10(y_hi)));

  const double W = 800, H = 520, L = 90, R = 30, T = 50, B = 60;
  auto X = [&](double v) { return L + (std::log10(v) - std::log10(x_lo)) / (std::log10(x_hi) - std::log10(x_lo)) * (W - L - R); };
  auto Y = [&](double v) { return H - B - (std::log10(v) - std::log10(y_lo)) / (std::log10(y_hi) - std::log10(y_lo)) * (H - T - B); };

  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" viewBox=\"0 0 " << W << ' ' << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s << "<text x=\"" << W / 2 << "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">"
    << escape(p.model.name + " on " + (p.hw.system ? p.hw.system->id : a.id) + ": roofline per device") << "</text>\n";
  // Grid and axes: one line per decade.
  for (double v = x_lo; v <= x_hi * 1.001; v *= 10)
    s << "<line x1=\"" << X(v) << "\" y1=\"" << T << "\" x2=\"" << X(v) << "\" y2=\"" << H - B << "\" stroke=\"#ddd\"/>"
      << "<text x=\"" << X(v) << "\" y=\"" << H - B + 16 << "\" text-anchor=\"middle\">" << si(v) << "</text>\n";
  for (double v = y_lo; v <= y_hi * 1.001; v *= 10)
    s << "<line x1=\"" << L << "\" y1=\"" << Y(v) << "\" x2=\"" << W - R << "\" y2=\"" << Y(v) << "\" stroke=\"#ddd\"/>"
      << "<text x=\"" << L - 6 << "\" y=\"" << Y(v) + 4 << "\" text-anchor=\"end\">" << si(v) << "</text>\n";
  s << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << W - L - R << "\" height=\"" << H - T - B
    << "\" fill=\"none\" stroke=\"black\"/>\n";
  s << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 18 << "\" text-anchor=\"middle\">arithmetic intensity (FLOP/byte)</text>\n";
  s << "<text transform=\"translate(22," << (T + H - B) / 2 << ") rotate(-90)\" text-anchor=\"middle\">attainable FLOP/s</text>\n";
  // Roofs: bandwidth × intensity up to each precision's ridge, then flat.
  for (size_t i = 0; i < roofs.size(); ++i) {
    const double ridge = roofs[i].flops / bw;
    const double x0 = std::max(x_lo, y_lo / bw);
    const bool top = i + 1 == roofs.size();
    s << "<polyline fill=\"none\" stroke=\"" << (top ? "black" : "#888") << "\" stroke-width=\"" << (top ? 2 : 1)
      << "\" points=\"" << X(x0) << ',' << Y(x0 * bw) << ' ' << X(ridge) << ',' << Y(roofs[i].flops) << ' ' << X(x_hi) << ','
      << Y(roofs[i].flops) << "\"/>\n";
    s << "<text x=\"" << W - R - 4 << "\" y=\"" << Y(roofs[i].flops) - 4 << "\" text-anchor=\"end\">" << roofs[i].name
      << " peak " << si(roofs[i].flops) << "FLOP/s (ridge " << svg::number("%.0f", ridge) << " FLOP/B)</text>\n";
  }
  s << "<text x=\"" << X(std::max(x_lo, y_lo / bw)) + 8 << "\" y=\"" << Y(std::max(x_lo, y_lo / bw) * bw) - 8
    << "\">HBM " << si(bw) << "B/s</text>\n";
  for (auto& pt : points) {
    if (pt.ai <= 0 || pt.flops <= 0) continue;
    const bool right_half = X(pt.ai) > W * 0.55;  // label on the side with room
    s << "<circle cx=\"" << X(pt.ai) << "\" cy=\"" << Y(pt.flops) << "\" r=\"6\" fill=\"" << pt.color << "\"/>"
      << "<text x=\"" << X(pt.ai) + (right_half ? -9 : 9) << "\" y=\"" << Y(pt.flops) + 18
      << "\" text-anchor=\"" << (right_half ? "end" : "start") << "\" fill=\"" << pt.color << "\">" << pt.name << " ("
      << svg::number("%.1f", pt.ai) << " FLOP/B, " << si(pt.flops) << "FLOP/s)</text>\n";
  }
  s << "<text x=\"" << L << "\" y=\"" << H - 2 << "\" font-size=\"10\" fill=\"#555\">"
    << escape("batch " + std::to_string(p.dep.batch) + ", ctx " + std::to_string(p.dep.ctx_in) + ":" +
              std::to_string(p.dep.ctx_out) + ", weights " + p.wp.name + ", KV " + p.kvp.name +
              "; points: FLOPs per step / step time (includes communication)")
    << "</text>\n";
  s << "</svg>\n";
  return s.str();
}

}  // namespace mlamoe::planner
