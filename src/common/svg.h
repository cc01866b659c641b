// Pieces of the hand-written SVG charts (the planner's roofline, the trainer's curves).
#pragma once
#include <string>

namespace mlamoe::svg {

// Text made safe inside an SVG element: < > & escaped.
std::string escape(const std::string& s);

// One number through a printf format ("%.1f", "%.3g").
std::string number(const char* printf_format, double v);

}  // namespace mlamoe::svg
