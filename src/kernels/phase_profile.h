// Where a forward pass spends its time, phase by phase and thread by thread: the work
// of each phase, the wait at the barrier that ends it, and the weight bytes its
// products read (so each phase's rate can be set against the machine's bandwidth).
// Off unless asked for (mlamoe bench --phases); off, a phase costs one relaxed load.
#pragma once

#include <cstdint>
#include <vector>

namespace mlamoe::kernels {

enum class Phase : int {
  Projections,      // matmul / matmul_same_input: W_Q, W_DKV, W_O, the router, the head
  AbsorbQuery,      // W_UK^T q_nope per head
  LatentAttention,  // scores and weighted sums over the cached latents
  ValueUp,          // W_UV per head
  ExpertInputs,     // quantizing and grouping the tokens of a MoE step
  ExpertGateUp,     // the selected experts' gate and up rows (SwiGLU fused)
  ExpertDown,       // their down rows
  ExpertSum,        // the gate-weighted sum back into each token
  Count
};
const char* phase_name(Phase p);

void set_phase_profiling(bool on);
bool phase_profiling();
void reset_phase_profile();

struct PhaseTotals {
  double work_s = 0, wait_s = 0;  // summed over threads
  double span_s = 0;              // the phase's wall time, on the team's first thread
  uint64_t weight_bytes = 0;      // read by the products run inside the phase
  int64_t count = 0;              // times the phase ran
};
std::vector<PhaseTotals> phase_profile();  // indexed by Phase

// One thread's share of one phase. Constructed at the phase's start by every thread of
// the team; end() books the work, then waits at the team's barrier (it stands in for
// the implicit barrier of an `omp for`, so it must be reached by every thread, profiled
// or not) and books the wait. end_of_region() is for a phase the region's own closing
// barrier ends: it waits only when profiling, to time the wait. A phase started
// inside another one (a product run by one thread of an outer phase) books nothing
// itself: its time and bytes belong to the outer phase.
class PhaseTimer {
 public:
  explicit PhaseTimer(Phase p);
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;
  ~PhaseTimer();
  void end();
  void end_of_region();

 private:
  void book(bool barrier);
  Phase phase_;
  bool owner_ = false, done_ = false;
  int64_t start_ns_ = 0;
};

// Weight bytes a product reads, booked to the calling thread's current phase.
void count_weight_bytes(uint64_t bytes);

}  // namespace mlamoe::kernels
