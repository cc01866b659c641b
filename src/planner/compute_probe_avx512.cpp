// Built with -mavx512f (see CMakeLists.txt); called only when the CPU has it.
#include "planner/fma_chains.h"

namespace mlamoe::planner::detail {

float fma_chains_avx512(int64_t iters, float seed, int* lanes_out) { return fma_chains<F32x16>(iters, seed, lanes_out); }

}  // namespace mlamoe::planner::detail
