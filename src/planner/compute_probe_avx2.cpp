// Built with -mavx2 -mfma (see CMakeLists.txt); called only when the CPU has both.
#include "planner/fma_chains.h"

namespace mlamoe::planner::detail {

float fma_chains_avx2(int64_t iters, float seed, int* lanes_out) { return fma_chains<F32x8>(iters, seed, lanes_out); }

}  // namespace mlamoe::planner::detail
