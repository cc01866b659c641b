// The roofline of a plan as a hand-written SVG: arithmetic intensity (FLOP/byte, log)
// against attainable FLOP/s per device (log); the memory roof (bandwidth × intensity),
// one flat roof per precision peak, and the model's prefill and decode operating points.
#pragma once
#include <string>

#include "planner/cost_model.h"

namespace mlamoe::planner {
std::string roofline_svg(const Plan& p);
}
