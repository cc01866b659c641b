// Writes one tensor from float32 rows produced on demand, converting to its GGUF type
// in parallel (OpenMP) and in bounded chunks: at most ~kChunkElements float32 values
// and their encoded bytes are in memory at once, whatever the tensor's size.
#pragma once
#include <cstdint>
#include <functional>

#include "format/ggml_types.h"
#include "format/gguf_writer.h"

namespace mlamoe {

class Progress;

// Fills rows [first, first + n) of the tensor, each row_len floats, into out.
// Called concurrently from several threads for disjoint ranges.
using RowSource = std::function<void(int64_t first, int64_t n, float* out)>;

constexpr int64_t kChunkElements = int64_t(1) << 22;  // 16 MiB of float32

// Streams n_rows rows of row_len values as `type` into the writer's current tensor.
// `progress`, if given, advances by the bytes written.
void write_rows(GgufWriter& w, GgmlType type, int64_t n_rows, int64_t row_len, const RowSource& src,
                Progress* progress = nullptr);

}  // namespace mlamoe
