// How the threads of one parallel step share its rows. Decode reads every weight once,
// so a thread's rows should be one long stream from memory (each jump elsewhere restarts
// the cores' prefetchers), yet the two vCPUs of these VMs swing ±30% in speed, so a
// fixed split leaves the faster one waiting. Each thread therefore owns a contiguous
// segment of the step's units, takes it from the front a chunk at a time, and when its
// own is done takes chunks from the back of another's. Lock-free: one 64-bit word per
// segment (front and back), changed by compare-and-swap.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>

namespace mlamoe::kernels {

class SplitQueue {
 public:
  // units [0, units) in `threads` segments; runs of at most `chunk` units.
  SplitQueue(int64_t units, int threads, int64_t chunk)
      : threads_(std::max(1, threads)), chunk_(std::max<int64_t>(1, chunk)), segments_(new Segment[static_cast<size_t>(threads_)]) {
    for (int i = 0; i < threads_; ++i)
      segments_[static_cast<size_t>(i)].range.store(pack(units * i / threads_, units * (i + 1) / threads_), std::memory_order_relaxed);
  }

  // The next run [u0, u1) for thread `self`: from the front of its own segment, else
  // from the back of the first other segment with work left. False when all are empty.
  bool next(int self, int64_t& u0, int64_t& u1) {
    if (take(segments_[static_cast<size_t>(self % threads_)], /*front=*/true, u0, u1)) return true;
    for (int k = 1; k < threads_; ++k)
      if (take(segments_[static_cast<size_t>((self + k) % threads_)], /*front=*/false, u0, u1)) return true;
    return false;
  }

  // fn(u) for every unit thread `self` takes, in the order it takes them.
  template <class Fn>
  void for_each_unit(int self, Fn&& fn) {
    for (int64_t u0, u1; next(self, u0, u1);)
      for (int64_t u = u0; u < u1; ++u) fn(u);
  }

 private:
  struct alignas(64) Segment {
    std::atomic<uint64_t> range{0};  // front << 32 | back
  };
  static uint64_t pack(int64_t front, int64_t back) { return static_cast<uint64_t>(front) << 32 | static_cast<uint64_t>(back); }

  bool take(Segment& s, bool front, int64_t& u0, int64_t& u1) {
    uint64_t r = s.range.load(std::memory_order_relaxed);
    for (;;) {
      const int64_t f = static_cast<int64_t>(r >> 32), b = static_cast<int64_t>(r & 0xFFFFFFFFu);
      if (f >= b) return false;
      // A thief takes half of what is left (at most a chunk): the owner keeps streaming.
      const int64_t n = front ? std::min(chunk_, b - f) : std::min(chunk_, std::max<int64_t>(1, (b - f) / 2));
      const uint64_t want = front ? pack(f + n, b) : pack(f, b - n);
      if (s.range.compare_exchange_weak(r, want, std::memory_order_relaxed)) {
        u0 = front ? f : b - n;
        u1 = front ? f + n : b;
        return true;
      }
    }
  }

  int threads_;
  int64_t chunk_;
  std::unique_ptr<Segment[]> segments_;
};

// A step's units are the rows of several parts (matrices, or selected experts) laid end
// to end, each part cut into units of `unit_rows` rows (its last unit may be short);
// rows_of(i) is part i's row count.
template <class RowsOf>
int64_t units_of_parts(int count, int64_t unit_rows, RowsOf&& rows_of) {
  int64_t units = 0;
  for (int i = 0; i < count; ++i) units += (rows_of(i) + unit_rows - 1) / unit_rows;
  return units;
}

// fn(part, r0, r1) for each part that units [u0, u1) touch, with its rows among them.
template <class RowsOf, class Fn>
void for_each_part_rows(int count, int64_t unit_rows, RowsOf&& rows_of, int64_t u0, int64_t u1, Fn&& fn) {
  int64_t base = 0;
  for (int i = 0; i < count && u0 < u1; ++i) {
    const int64_t rows = rows_of(i), end = base + (rows + unit_rows - 1) / unit_rows;
    if (u0 < end) {
      const int64_t b = std::min(end, u1);
      fn(i, (u0 - base) * unit_rows, std::min(rows, (b - base) * unit_rows));
      u0 = b;
    }
    base = end;
  }
}

}  // namespace mlamoe::kernels
