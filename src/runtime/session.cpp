#include "runtime/session.h"

#include <algorithm>
#include <cstring>
#include <fstream>

#include "common/error.h"
#include "common/files.h"
#include "common/fnv1a.h"
#include "format/quant.h"

namespace mlamoe {

namespace {

constexpr char kMagic[8] = {'M', 'L', 'A', 'K', 'V', 'S', 'E', 'S'};

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t n_layers, kv_lora_rank, rope_dim;
  uint32_t c_type, r_type;
  uint64_t model_id;
  uint64_t count;       // version 1: the sequence's tokens; version 2: the number of sequences
  uint64_t file_bytes;  // including the checksum: a truncated file is caught by name
};

// Version 2 writes this before each sequence's token ids; its KV rows follow (per
// layer: c_kv rows then k_rope rows of positions [shared, n_tokens)).
struct SequenceHeader {
  uint64_t n_tokens;
  int64_t parent;   // an earlier sequence holding positions [0, shared); -1: none
  uint64_t shared;  // a whole number of blocks when written, so restored blocks are the saved ones
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

Header header_for(const PagedKvCache& kv, uint32_t version, uint64_t model_id, uint64_t count) {
  Header hd{};
  std::memcpy(hd.magic, kMagic, sizeof kMagic);
  hd.version = version;
  hd.n_layers = static_cast<uint32_t>(kv.n_layers());
  hd.kv_lora_rank = static_cast<uint32_t>(kv.kv_lora_rank());
  hd.rope_dim = static_cast<uint32_t>(kv.rope_dim());
  hd.c_type = static_cast<uint32_t>(kv.c_kv_type());
  hd.r_type = static_cast<uint32_t>(kv.k_rope_type());
  hd.model_id = model_id;
  hd.count = count;
  return hd;
}

// Writes the rows of positions [from, n) of `seq`, layer by layer (c_kv rows, then k_rope rows).
void put_rows(Writer& w, const PagedKvCache& kv, int32_t seq, int64_t from, int64_t n) {
  for (int64_t l = 0; l < kv.n_layers(); ++l) {
    for (const bool rope : {false, true})
      kv.for_each_raw_run(seq, l, n, [&](int64_t first, int64_t cnt, const uint8_t* c, const uint8_t* r) {
        const int64_t skip = std::clamp<int64_t>(from - first, 0, cnt);
        const size_t row = rope ? kv.k_rope_row_bytes() : kv.c_kv_row_bytes();
        w.put((rope ? r : c) + static_cast<size_t>(skip) * row, static_cast<size_t>(cnt - skip) * row);
      });
  }
}

// A session file checked end to end, pointing into its bytes.
struct SessionFile {
  struct Sequence {
    std::vector<int32_t> tokens;
    int64_t parent = -1;
    uint64_t shared = 0;
    const uint8_t* rows = nullptr;  // positions [shared, n): per layer c_kv rows, then k_rope rows
  };
  GgmlType c_type, r_type;
  size_t c_row, r_row;
  std::vector<Sequence> sequences;
};

// Every check happens here, before any entry is used.
SessionFile parse_session(const std::string& path, const std::string& bytes, const PagedKvCache& kv, uint64_t model_id) {
  Header hd{};
  if (bytes.size() < sizeof hd) fail(path, ": truncated session file (", bytes.size(), " bytes)");
  std::memcpy(&hd, bytes.data(), sizeof hd);
  if (std::memcmp(hd.magic, kMagic, sizeof kMagic) != 0) fail(path, ": not an mlamoe session file");
  if (hd.version != kSessionVersion && hd.version != kPrefixCacheVersion)
    fail(path, ": session format version ", hd.version, ", this mlamoe reads versions ", kSessionVersion, " and ", kPrefixCacheVersion);
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
  SessionFile f;
  f.c_type = static_cast<GgmlType>(hd.c_type);
  f.r_type = static_cast<GgmlType>(hd.r_type);
  const TypeTraits* ct = type_traits(f.c_type);
  const TypeTraits* rt = type_traits(f.r_type);
  if (!ct || !rt || !ct->supported || !rt->supported) fail(path, ": session KV storage type is unknown");
  f.c_row = row_bytes(f.c_type, kv.kv_lora_rank());
  f.r_row = row_bytes(f.r_type, kv.rope_dim());
  const uint64_t row_bytes_all_layers = static_cast<uint64_t>(kv.n_layers()) * (f.c_row + f.r_row);

  const auto* base = reinterpret_cast<const uint8_t*>(bytes.data());
  uint64_t at = sizeof hd;
  const uint64_t end = bytes.size() - 8;
  auto need = [&](uint64_t n) {
    if (n > end - at) fail(path, ": session size does not match its header");
  };
  const uint64_t n_sequences = hd.version == kSessionVersion ? 1 : hd.count;
  if (n_sequences > end - at) fail(path, ": session size does not match its header");
  for (uint64_t i = 0; i < n_sequences; ++i) {
    SequenceHeader sh{};
    if (hd.version == kSessionVersion) {
      sh = {hd.count, -1, 0};
    } else {
      need(sizeof sh);
      std::memcpy(&sh, base + at, sizeof sh);
      at += sizeof sh;
    }
    if (sh.n_tokens > (end - at) / 4) fail(path, ": session size does not match its header");
    SessionFile::Sequence s;
    s.tokens.resize(sh.n_tokens);
    if (sh.n_tokens) std::memcpy(s.tokens.data(), base + at, sh.n_tokens * 4);  // an empty vector's data() may be null
    at += sh.n_tokens * 4;
    const bool parent_ok = sh.parent == -1 ? sh.shared == 0
                                           : sh.parent >= 0 && static_cast<uint64_t>(sh.parent) < i &&
                                                 sh.shared <= sh.n_tokens &&
                                                 sh.shared <= f.sequences[static_cast<size_t>(sh.parent)].tokens.size() &&
                                                 std::equal(s.tokens.begin(), s.tokens.begin() + static_cast<int64_t>(sh.shared),
                                                            f.sequences[static_cast<size_t>(sh.parent)].tokens.begin());
    if (!parent_ok) fail(path, ": session sequence ", i, " names a prefix it does not share");
    if (kv.options().max_ctx > 0 && static_cast<int64_t>(sh.n_tokens) > kv.options().max_ctx)
      fail(path, ": session holds ", sh.n_tokens, " tokens, more than the context (", kv.options().max_ctx, ")");
    const uint64_t own = sh.n_tokens - sh.shared;
    if (own > (end - at) / std::max<uint64_t>(1, row_bytes_all_layers)) fail(path, ": session size does not match its header");
    need(own * row_bytes_all_layers);
    s.parent = sh.parent;
    s.shared = sh.shared;
    s.rows = base + at;
    at += own * row_bytes_all_layers;
    f.sequences.push_back(std::move(s));
  }
  if (at != end) fail(path, ": session size does not match its header");
  return f;
}

// Stores positions [from, to) of sequence `i` of the file into `seq`, layer `layer`
// (from its parent for positions below `shared`).
void store_positions(const SessionFile& f, size_t i, int64_t layer, uint64_t from, uint64_t to, PagedKvCache& kv, int32_t seq) {
  const SessionFile::Sequence& s = f.sequences[i];
  if (from < s.shared) store_positions(f, static_cast<size_t>(s.parent), layer, from, std::min(to, s.shared), kv, seq);
  from = std::max(from, s.shared);
  if (from >= to) return;
  const uint64_t own = s.tokens.size() - s.shared;
  const uint8_t* layer_rows = s.rows + static_cast<uint64_t>(layer) * own * (f.c_row + f.r_row);
  const uint8_t* c_rows = layer_rows + (from - s.shared) * f.c_row;
  const uint8_t* r_rows = layer_rows + own * f.c_row + (from - s.shared) * f.r_row;
  if (f.c_type == kv.c_kv_type() && f.r_type == kv.k_rope_type()) {
    kv.store_raw(seq, layer, static_cast<int64_t>(from), static_cast<int64_t>(to - from), c_rows, r_rows);
    return;
  }
  // Saved with another --kv-type: convert through float32.
  std::vector<float> c(static_cast<size_t>(kv.kv_lora_rank())), r(static_cast<size_t>(kv.rope_dim()));
  for (uint64_t p = from; p < to; ++p) {
    dequantize_row(f.c_type, c_rows + (p - from) * f.c_row, c.data(), kv.kv_lora_rank());
    dequantize_row(f.r_type, r_rows + (p - from) * f.r_row, r.data(), kv.rope_dim());
    kv.store(seq, layer, static_cast<int64_t>(p), c.data(), r.data());
  }
}

// Replaces `seq` with sequence `i` of the file and publishes its tokens.
void restore_sequence(const SessionFile& f, size_t i, PagedKvCache& kv, int32_t seq) {
  const std::vector<int32_t>& tokens = f.sequences[i].tokens;
  const auto n = static_cast<int64_t>(tokens.size());
  kv.clear(seq);
  try {
    kv.reserve(seq, n);
    for (int64_t l = 0; l < kv.n_layers(); ++l) store_positions(f, i, l, 0, tokens.size(), kv, seq);
    kv.set_length(seq, n);
    kv.publish(seq, tokens);
  } catch (...) {
    kv.clear(seq);  // never leave half a session behind
    throw;
  }
}

int64_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const auto [ia, ib] = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
  return ia - a.begin();
}

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
  Header hd = header_for(kv, kSessionVersion, model_id, n);
  hd.file_bytes = sizeof(Header) + n * 4 + n * kv.bytes_per_token() + 8;
  AtomicFile f(path);
  Writer w{f, {}};
  w.put(&hd, sizeof hd);
  w.put(tokens.data(), n * 4);
  put_rows(w, kv, seq, 0, static_cast<int64_t>(n));
  const uint64_t checksum = w.sum.h;
  f.write(&checksum, sizeof checksum);
  if (f.written() != hd.file_bytes) fail(path, ": internal error: wrote ", f.written(), " bytes, expected ", hd.file_bytes);
  f.commit();
}

std::vector<int32_t> load_session(const std::string& path, PagedKvCache& kv, int32_t seq, uint64_t model_id) {
  kv.clear(seq);
  const std::string bytes = read_file(path);
  const SessionFile f = parse_session(path, bytes, kv, model_id);
  if (f.sequences.empty()) return {};
  restore_sequence(f, f.sequences.size() - 1, kv, seq);  // version 2: the most recently used
  return f.sequences.back().tokens;
}

PrefixCacheFile save_prefix_cache(const std::string& path, PagedKvCache& kv, int32_t scratch, uint64_t model_id) {
  const std::vector<std::vector<int32_t>> seqs = kv.cached_sequences();
  const int64_t B = kv.options().block_tokens;
  // Each sequence's longest whole-block prefix shared with an earlier one is stored once.
  std::vector<SequenceHeader> heads(seqs.size());
  PrefixCacheFile out;
  uint64_t file_bytes = sizeof(Header) + 8;
  for (size_t i = 0; i < seqs.size(); ++i) {
    SequenceHeader& sh = heads[i];
    sh = {seqs[i].size(), -1, 0};
    for (size_t j = 0; j < i; ++j) {
      const uint64_t shared = static_cast<uint64_t>(common_prefix(seqs[i], seqs[j]) / B * B);
      if (shared > sh.shared) sh.parent = static_cast<int64_t>(j), sh.shared = shared;
    }
    file_bytes += sizeof sh + sh.n_tokens * 4 + (sh.n_tokens - sh.shared) * kv.bytes_per_token();
    out.tokens += sh.n_tokens;
    out.stored_tokens += sh.n_tokens - sh.shared;
  }
  out.sequences = seqs.size();
  out.bytes = file_bytes;

  Header hd = header_for(kv, kPrefixCacheVersion, model_id, seqs.size());
  hd.file_bytes = file_bytes;
  AtomicFile f(path);
  Writer w{f, {}};
  w.put(&hd, sizeof hd);
  kv.clear(scratch);
  try {
    for (size_t i = 0; i < seqs.size(); ++i) {
      w.put(&heads[i], sizeof heads[i]);
      w.put(seqs[i].data(), seqs[i].size() * 4);
      // The tree's blocks, read through a sequence that borrows them (no copy but the tail).
      const int64_t n = static_cast<int64_t>(seqs[i].size());
      if (kv.attach_prefix(scratch, seqs[i]) != n) fail(path, ": internal error: a cached sequence is not in the prefix tree");
      put_rows(w, kv, scratch, static_cast<int64_t>(heads[i].shared), n);
      kv.clear(scratch);
    }
  } catch (...) {
    kv.clear(scratch);
    throw;
  }
  const uint64_t checksum = w.sum.h;
  f.write(&checksum, sizeof checksum);
  if (f.written() != hd.file_bytes) fail(path, ": internal error: wrote ", f.written(), " bytes, expected ", hd.file_bytes);
  f.commit();
  return out;
}

PrefixCacheFile restore_prefix_cache(const std::string& path, PagedKvCache& kv, int32_t scratch, uint64_t model_id) {
  const std::string bytes = read_file(path);
  const SessionFile f = parse_session(path, bytes, kv, model_id);
  PrefixCacheFile out;
  out.bytes = bytes.size();
  // Oldest first, so the most recently used sequences are the last the tree would trim.
  for (size_t i = 0; i < f.sequences.size(); ++i) {
    restore_sequence(f, i, kv, scratch);
    kv.release(scratch);
    out.tokens += f.sequences[i].tokens.size();
    out.stored_tokens += f.sequences[i].tokens.size() - f.sequences[i].shared;
  }
  out.sequences = f.sequences.size();
  return out;
}

}  // namespace mlamoe
