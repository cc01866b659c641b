#include "runtime/session.h"

#include <cstring>
#include <fstream>

#include "common/error.h"
#include "common/files.h"
#include "format/quant.h"

namespace mlamoe {

namespace {

constexpr char kMagic[8] = {'M', 'L', 'A', 'K', 'V', 'S', 'E', 'S'};

struct Fnv1a {
  uint64_t h = 0xcbf29ce484222325ull;
  void add(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  }
  template <typename T>
  void add_value(const T& v) {
    add(&v, sizeof v);
  }
};

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t n_layers, kv_lora_rank, rope_dim;
  uint32_t c_type, r_type;
  uint64_t model_id;
  uint64_t n_tokens;
  uint64_t file_bytes;  // including the checksum: a truncated file is caught by name
};

// Writes through the checksum.
struct Writer {
  AtomicFile& f;
  Fnv1a sum;
  void put(const void* data, size_t n) {
    f.write(data, n);
    sum.add(data, n);
  }
};

}  // namespace

uint64_t model_identity(const Model& model) {
  const GgufFile& g = model.gguf();
  Fnv1a h;
  std::ifstream in(g.path(), std::ios::binary);
  if (!in) fail(g.path(), ": cannot open to fingerprint the model");
  std::vector<char> head(static_cast<size_t>(g.data_offset()));
  if (!in.read(head.data(), static_cast<std::streamsize>(head.size()))) fail(g.path(), ": cannot read its header");
  h.add(head.data(), head.size());
  for (const auto& t : g.tensors()) {
    const size_t n = std::min<size_t>(t.nbytes, 64);
    h.add(t.data, n);
    h.add(t.data + t.nbytes - n, n);
  }
  return h.h;
}

void save_session(const std::string& path, const PagedKvCache& kv, int32_t seq, uint64_t model_id) {
  const std::vector<int32_t> tokens = kv.tokens(seq);
  const uint64_t n = tokens.size();
  Header hd{};
  std::memcpy(hd.magic, kMagic, sizeof kMagic);
  hd.version = kSessionVersion;
  hd.n_layers = static_cast<uint32_t>(kv.n_layers());
  hd.kv_lora_rank = static_cast<uint32_t>(kv.kv_lora_rank());
  hd.rope_dim = static_cast<uint32_t>(kv.rope_dim());
  hd.c_type = static_cast<uint32_t>(kv.c_kv_type());
  hd.r_type = static_cast<uint32_t>(kv.k_rope_type());
  hd.model_id = model_id;
  hd.n_tokens = n;
  hd.file_bytes = sizeof(Header) + n * 4 + n * kv.bytes_per_token() + 8;
  AtomicFile f(path);
  Writer w{f, {}};
  w.put(&hd, sizeof hd);
  w.put(tokens.data(), n * 4);
  for (int64_t l = 0; l < kv.n_layers(); ++l) {
    // c_kv rows of the layer, then its k_rope rows: each written run by run.
    kv.for_each_raw_run(seq, l, static_cast<int64_t>(n), [&](int64_t, int64_t cnt, const uint8_t* c, const uint8_t*) {
      w.put(c, static_cast<size_t>(cnt) * kv.c_kv_row_bytes());
    });
    kv.for_each_raw_run(seq, l, static_cast<int64_t>(n), [&](int64_t, int64_t cnt, const uint8_t*, const uint8_t* r) {
      w.put(r, static_cast<size_t>(cnt) * kv.k_rope_row_bytes());
    });
  }
  const uint64_t checksum = w.sum.h;
  f.write(&checksum, sizeof checksum);
  if (f.written() != hd.file_bytes) fail(path, ": internal error: wrote ", f.written(), " bytes, expected ", hd.file_bytes);
  f.commit();
}

std::vector<int32_t> load_session(const std::string& path, PagedKvCache& kv, int32_t seq, uint64_t model_id) {
  kv.clear(seq);
  const std::string bytes = read_file(path);
  Header hd{};
  if (bytes.size() < sizeof hd) fail(path, ": truncated session file (", bytes.size(), " bytes)");
  std::memcpy(&hd, bytes.data(), sizeof hd);
  if (std::memcmp(hd.magic, kMagic, sizeof kMagic) != 0) fail(path, ": not an mlamoe session file");
  if (hd.version != kSessionVersion)
    fail(path, ": session format version ", hd.version, ", this mlamoe reads version ", kSessionVersion);
  if (hd.file_bytes != bytes.size())
    fail(path, ": truncated or damaged session file (", bytes.size(), " bytes, header says ", hd.file_bytes, ")");
  Fnv1a sum;
  sum.add(bytes.data(), bytes.size() - 8);
  uint64_t stored;
  std::memcpy(&stored, bytes.data() + bytes.size() - 8, 8);
  if (stored != sum.h) fail(path, ": session checksum mismatch (the file is corrupt)");
  if (hd.model_id != model_id) fail(path, ": session was saved with a different model");
  if (hd.n_layers != kv.n_layers() || hd.kv_lora_rank != kv.kv_lora_rank() || hd.rope_dim != kv.rope_dim())
    fail(path, ": session KV shape does not match the model");
  const auto c_type = static_cast<GgmlType>(hd.c_type), r_type = static_cast<GgmlType>(hd.r_type);
  const TypeTraits* ct = type_traits(c_type);
  const TypeTraits* rt = type_traits(r_type);
  if (!ct || !rt || !ct->supported || !rt->supported) fail(path, ": session KV storage type is unknown");
  const size_t c_row = row_bytes(c_type, kv.kv_lora_rank()), r_row = row_bytes(r_type, kv.rope_dim());
  const uint64_t n = hd.n_tokens;
  if (n > bytes.size()) fail(path, ": session size does not match its header");
  if (sizeof hd + n * 4 + n * kv.n_layers() * (c_row + r_row) + 8 != bytes.size())
    fail(path, ": session size does not match its header");

  std::vector<int32_t> tokens(n);
  if (n) std::memcpy(tokens.data(), bytes.data() + sizeof hd, n * 4);  // an empty vector's data() may be null
  try {
    kv.reserve(seq, static_cast<int64_t>(n));
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data()) + sizeof hd + n * 4;
    const bool same_types = c_type == kv.c_kv_type() && r_type == kv.k_rope_type();
    std::vector<float> c(static_cast<size_t>(kv.kv_lora_rank())), r(static_cast<size_t>(kv.rope_dim()));
    for (int64_t l = 0; l < kv.n_layers(); ++l) {
      const uint8_t* c_rows = p;
      const uint8_t* r_rows = p + n * c_row;
      if (same_types) {
        kv.store_raw(seq, l, 0, static_cast<int64_t>(n), c_rows, r_rows);
      } else {  // saved with another --kv-type: convert through float32
        for (uint64_t i = 0; i < n; ++i) {
          dequantize_row(c_type, c_rows + i * c_row, c.data(), kv.kv_lora_rank());
          dequantize_row(r_type, r_rows + i * r_row, r.data(), kv.rope_dim());
          kv.store(seq, l, static_cast<int64_t>(i), c.data(), r.data());
        }
      }
      p += n * (c_row + r_row);
    }
    kv.set_length(seq, static_cast<int64_t>(n));
    kv.publish(seq, tokens);
  } catch (...) {
    kv.clear(seq);  // never leave half a session behind
    throw;
  }
  return tokens;
}

}  // namespace mlamoe
