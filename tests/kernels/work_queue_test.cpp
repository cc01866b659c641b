// SplitQueue hands out every unit exactly once however the threads race, an owner's
// runs come from the front of its segment in order (one contiguous stream), and runs
// taken from another segment come from its back.
#include <gtest/gtest.h>

#include <omp.h>

#include <vector>

#include "kernels/work_queue.h"

using namespace mlamoe::kernels;

namespace {

struct Claimed {
  int64_t u0, u1;
};

// Drains the queue with `threads` OpenMP threads, each recording its runs.
std::vector<std::vector<Claimed>> drain(SplitQueue& q, int threads) {
  std::vector<std::vector<Claimed>> runs(static_cast<size_t>(threads));
#pragma omp parallel num_threads(threads)
  {
    const int self = omp_get_thread_num();
    for (int64_t u0, u1; q.next(self, u0, u1);) runs[static_cast<size_t>(self)].push_back({u0, u1});
  }
  return runs;
}

}  // namespace

TEST(SplitQueue, EveryUnitOnceOwnersStreamFromTheFrontThievesFromTheBack) {
  for (int threads : {1, 2, 3, 8})
    for (int64_t units : {int64_t{0}, int64_t{1}, int64_t{5}, int64_t{100}, int64_t{4099}})
      for (int64_t chunk : {int64_t{1}, int64_t{16}}) {
        for (int repeat = 0; repeat < 20; ++repeat) {
          SplitQueue q(units, threads, chunk);
          const auto runs = drain(q, threads);
          std::vector<int> seen(static_cast<size_t>(units), 0);
          for (int t = 0; t < static_cast<int>(runs.size()); ++t) {
            const int64_t lo = units * t / threads, hi = units * (t + 1) / threads;
            int64_t front = lo;
            bool stealing = false;
            for (const Claimed& r : runs[static_cast<size_t>(t)]) {
              ASSERT_LT(r.u0, r.u1);
              ASSERT_LE(r.u1 - r.u0, chunk);
              for (int64_t u = r.u0; u < r.u1; ++u) ++seen[static_cast<size_t>(u)];
              if (!stealing && r.u0 == front && r.u1 <= hi) {
                front = r.u1;  // own segment, in order
              } else {
                stealing = true;  // after its own segment, only other segments' units
                ASSERT_TRUE(r.u1 <= lo || r.u0 >= hi) << "thread " << t << " took [" << r.u0 << ", " << r.u1 << ") of its own segment out of order";
              }
            }
          }
          for (int64_t u = 0; u < units; ++u)
            ASSERT_EQ(seen[static_cast<size_t>(u)], 1) << "unit " << u << " of " << units << ", " << threads << " threads, chunk " << chunk;
        }
      }
}

TEST(SplitQueue, AThiefTakesHalfOfWhatIsLeftFromTheBack) {
  SplitQueue q(/*units=*/40, /*threads=*/2, /*chunk=*/16);
  int64_t u0 = 0, u1 = 0;
  ASSERT_TRUE(q.next(0, u0, u1));  // owner 0: the front of [0, 20)
  EXPECT_EQ(u0, 0);
  EXPECT_EQ(u1, 16);
  ASSERT_TRUE(q.next(0, u0, u1));
  EXPECT_EQ(u0, 16);
  EXPECT_EQ(u1, 20);
  ASSERT_TRUE(q.next(0, u0, u1));  // its own is done: half of [20, 40), from the back
  EXPECT_EQ(u0, 30);
  EXPECT_EQ(u1, 40);
  ASSERT_TRUE(q.next(1, u0, u1));  // owner 1 still starts at its front
  EXPECT_EQ(u0, 20);
  EXPECT_EQ(u1, 30);
  EXPECT_FALSE(q.next(1, u0, u1));
  EXPECT_FALSE(q.next(0, u0, u1));
}

// for_each_unit visits every unit of every run a thread takes, once, whatever the chunk.
TEST(SplitQueue, ForEachUnitVisitsEveryUnitOnce) {
  for (int64_t chunk : {int64_t{1}, int64_t{7}})
    for (int threads : {1, 3}) {
      const int64_t units = 100;
      SplitQueue q(units, threads, chunk);
      std::vector<int> seen(static_cast<size_t>(units), 0);
#pragma omp parallel num_threads(threads)
      q.for_each_unit(omp_get_thread_num(), [&](int64_t u) {
#pragma omp atomic
        ++seen[static_cast<size_t>(u)];
      });
      for (int64_t u = 0; u < units; ++u) EXPECT_EQ(seen[static_cast<size_t>(u)], 1) << "unit " << u << " chunk " << chunk;
    }
}
