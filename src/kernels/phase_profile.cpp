#include "kernels/phase_profile.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>

namespace mlamoe::kernels {
namespace {

constexpr int kPhases = static_cast<int>(Phase::Count);
constexpr int kMaxThreads = 256;

// A thread's counters, on cache lines of their own: the threads never share a line.
struct alignas(64) ThreadSlot {
  int64_t work_ns[kPhases] = {}, wait_ns[kPhases] = {}, count[kPhases] = {};
  // Start to release from the closing barrier, booked by a team's thread 0 only: its
  // phases follow one another on its own clock, so they never overlap and add up to at
  // most the decode time. The longest thread's work + wait did not: a thread descheduled
  // just after the barrier released it booked, as its wait, time the next phase had
  // already spent (a loaded test run summed the phases to 138 % of the decode).
  int64_t span_ns[kPhases] = {};
  uint64_t bytes[kPhases] = {};
};
ThreadSlot slots[kMaxThreads];
std::atomic<bool> profiling{false};
thread_local int current_phase = -1;
std::atomic<int> threads_seen{0};
// A slot per OS thread (not per OpenMP thread number, which repeats in nested teams).
thread_local const int my_slot_index = threads_seen.fetch_add(1, std::memory_order_relaxed) % kMaxThreads;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
ThreadSlot& my_slot() { return slots[my_slot_index]; }

}  // namespace

const char* phase_name(Phase p) {
  static const char* const names[kPhases] = {"projections",   "absorb query",   "latent attention", "value up",
                                             "expert inputs", "expert gate+up", "expert down",      "expert sum"};
  const int i = static_cast<int>(p);
  return i >= 0 && i < kPhases ? names[i] : "?";
}

void set_phase_profiling(bool on) { profiling.store(on, std::memory_order_relaxed); }
bool phase_profiling() { return profiling.load(std::memory_order_relaxed); }

void reset_phase_profile() {
  for (ThreadSlot& s : slots) s = ThreadSlot{};
}

std::vector<PhaseTotals> phase_profile() {
  std::vector<PhaseTotals> out(kPhases);
  for (const ThreadSlot& s : slots)
    for (int p = 0; p < kPhases; ++p) {
      out[p].work_s += static_cast<double>(s.work_ns[p]) * 1e-9;
      out[p].wait_s += static_cast<double>(s.wait_ns[p]) * 1e-9;
      out[p].span_s = std::max(out[p].span_s, static_cast<double>(s.span_ns[p]) * 1e-9);
      out[p].weight_bytes += s.bytes[p];
      out[p].count = std::max(out[p].count, s.count[p]);
    }
  return out;
}

PhaseTimer::PhaseTimer(Phase p) : phase_(p) {
  if (!phase_profiling() || current_phase >= 0) return;
  owner_ = true;
  current_phase = static_cast<int>(p);
  start_ns_ = now_ns();
}

PhaseTimer::~PhaseTimer() {
  if (owner_ && !done_) book(false);
}

void PhaseTimer::book(bool barrier) {
  done_ = true;
  const int64_t t1 = now_ns();
  if (barrier) {
#pragma omp barrier
  }
  ThreadSlot& s = my_slot();
  const int p = static_cast<int>(phase_);
  const int64_t t2 = now_ns();
  s.work_ns[p] += t1 - start_ns_;
  s.wait_ns[p] += t2 - t1;
  if (omp_get_thread_num() == 0) s.span_ns[p] += t2 - start_ns_;
  ++s.count[p];
  current_phase = -1;
}

void PhaseTimer::end() {
  if (owner_ && !done_) return book(true);
#pragma omp barrier
}

void PhaseTimer::end_of_region() {
  if (owner_ && !done_) book(true);
}

void count_weight_bytes(uint64_t bytes) {
  if (current_phase >= 0) my_slot().bytes[current_phase] += bytes;
}

}  // namespace mlamoe::kernels
