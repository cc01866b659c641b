#include "convert/tensor_stream.h"

#include <omp.h>

#include <algorithm>
#include <exception>
#include <vector>

#include "common/error.h"
#include "common/progress.h"
#include "format/quant.h"

namespace mlamoe {

void write_rows(GgufWriter& w, GgmlType type, int64_t n_rows, int64_t row_len, const RowSource& src,
                Progress* progress) {
  const size_t out_row = row_bytes(type, row_len);
  const int64_t chunk_rows = std::max<int64_t>(1, kChunkElements / row_len);
  std::vector<float> f32(static_cast<size_t>(std::min(chunk_rows, n_rows) * row_len));
  std::vector<uint8_t> encoded(static_cast<size_t>(std::min(chunk_rows, n_rows)) * out_row);
  for (int64_t first = 0; first < n_rows; first += chunk_rows) {
    const int64_t n = std::min(chunk_rows, n_rows - first);
    // Errors thrown inside the parallel region are carried out of it (an exception
    // may not cross an OpenMP region boundary).
    std::exception_ptr error;
    // Small chunks are not worth waking the thread team for.
#pragma omp parallel if (n * row_len >= (int64_t(1) << 16))
    {
      const int nt = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t per = (n + nt - 1) / nt;
      const int64_t begin = std::min(n, per * t), end = std::min(n, begin + per);
      try {
        if (end > begin) {
          float* rows = f32.data() + begin * row_len;
          src(first + begin, end - begin, rows);
          for (int64_t r = begin; r < end; ++r)
            quantize_row(type, f32.data() + r * row_len, encoded.data() + r * out_row, row_len);
        }
      } catch (...) {
#pragma omp critical
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
    w.write_data(encoded.data(), static_cast<size_t>(n) * out_row);
    if (progress) progress->add(static_cast<uint64_t>(n) * out_row);
  }
}

}  // namespace mlamoe
