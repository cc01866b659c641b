#include "convert/quantize.h"

#include <chrono>
#include <filesystem>

#include "common/error.h"
#include "common/progress.h"
#include "convert/metadata.h"
#include "convert/tensor_names.h"
#include "convert/tensor_stream.h"
#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "format/quant.h"

namespace mlamoe {

ConvertStats quantize_gguf(const QuantizeOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  auto in = GgufFile::open(o.in_path);
  if (std::filesystem::exists(o.out_path) && std::filesystem::equivalent(o.in_path, o.out_path))
    fail(o.out_path, ": output would overwrite the input");
  const std::string arch = in->get_string("general.architecture");
  const int64_t n_layers = in->get_int(arch + ".block_count", 0);

  GgufWriter w(o.out_path);
  for (const auto& [key, value] : in->metadata()) w.set_value(key, value);
  set_file_type(w, o.recipe.base, o.recipe.k_m);

  std::vector<GgmlType> types;
  ConvertStats stats;
  for (const GgufTensor& t : in->tensors()) {
    GgmlType type = choose_type(o.recipe, tn::spec_from_name(t.name, t.ne), n_layers);
    if (type != t.type && !type_traits(t.type)->supported)
      fail(o.in_path, ": tensor ", t.name, ": type ", type_name(t.type), " cannot be converted (f32, f16, bf16, q8_0, "
           "q4_0, q4_K, q5_K, q6_K)");
    types.push_back(type);
    w.add_tensor(t.name, t.ne, type);
    stats.bytes_read += t.nbytes;
  }
  w.begin();
  Progress progress("quantize " + o.in_path, w.total_tensor_bytes());
  for (size_t i = 0; i < in->tensors().size(); ++i) {
    const GgufTensor& t = in->tensors()[i];
    if (types[i] == t.type) {
      for (size_t off = 0; off < t.nbytes; off += size_t(kChunkElements)) {
        const size_t n = std::min(t.nbytes - off, size_t(kChunkElements));
        w.write_data(t.data + off, n);
        progress.add(n);
      }
      continue;
    }
    const int64_t row_len = t.ne[0];
    const size_t in_row = row_bytes(t.type, row_len);
    write_rows(w, types[i], t.rows(), row_len,
               [&](int64_t first, int64_t n, float* out) {
                 for (int64_t r = 0; r < n; ++r)
                   dequantize_row(t.type, t.data + static_cast<size_t>(first + r) * in_row, out + r * row_len, row_len);
               },
               &progress);
  }
  w.finish();
  stats.bytes_written = w.total_tensor_bytes();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  progress.finish();
  return stats;
}

}  // namespace mlamoe
