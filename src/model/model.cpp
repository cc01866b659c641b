#include "model/model.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>

#include "common/error.h"
#include "common/progress.h"
#include "format/quant.h"

namespace mlamoe {

namespace {

// Checks one tensor of the file against the shape the architecture requires; every
// message names the file and the tensor.
class TensorBinder {
 public:
  explicit TensorBinder(const GgufFile& f) : f_(f) {}

  const GgufTensor* find(const std::string& name) const { return f_.tensor(name); }

  const GgufTensor& require(const std::string& name, std::initializer_list<int64_t> shape) const {
    const GgufTensor* t = f_.tensor(name);
    if (!t) fail(f_.path(), ": missing tensor ", name);
    check(*t, shape);
    return *t;
  }

  void check(const GgufTensor& t, std::initializer_list<int64_t> shape) const {
    std::vector<int64_t> want(shape);
    std::vector<int64_t> have = t.ne;
    while (have.size() > want.size() && have.back() == 1) have.pop_back();
    if (have != want) {
      std::string w = "[";
      for (size_t i = 0; i < want.size(); ++i) w += (i ? ", " : "") + std::to_string(want[i]);
      fail(f_.path(), ": tensor ", t.name, " has shape ", t.shape_string(), ", expected ", w, "]");
    }
    const TypeTraits* tr = type_traits(t.type);
    if (!tr || !tr->supported)
      fail(f_.path(), ": tensor ", t.name, " has type ", type_name(t.type),
           ", which mlamoe does not support (f32, f16, bf16, q8_0, q4_0, q4_K, q5_K, q6_K)");
  }

  // A 2-D (or stacked 3-D, as rows) matrix view.
  WeightView matrix(const std::string& name, int64_t cols, int64_t rows) const {
    return view(require(name, {cols, rows}));
  }

  std::vector<float> vector(const std::string& name, int64_t n) const {
    const GgufTensor& t = require(name, {n});
    std::vector<float> v(static_cast<size_t>(n));
    dequantize_row(t.type, t.data, v.data(), n);
    return v;
  }

  static WeightView view(const GgufTensor& t) {
    WeightView w;
    w.type = t.type;
    w.data = t.data;
    w.cols = t.ne[0];
    w.rows = t.rows();
    w.row_stride = row_bytes(t.type, t.ne[0]);
    return w;
  }

  // Sub-matrix `index` of a stacked [cols, rows, count] tensor.
  static WeightView slice(const GgufTensor& t, int64_t index) {
    WeightView w = view(t);
    w.rows = t.ne[1];
    w.data = t.data + static_cast<size_t>(index) * static_cast<size_t>(w.rows) * w.row_stride;
    return w;
  }

 private:
  const GgufFile& f_;
};

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& path, const LoadOptions& opts) {
  std::unique_ptr<Model> m(new Model());
  m->gguf_ = GgufFile::open(path);
  const GgufFile& f = *m->gguf_;
  m->config_ = ModelConfig::from_gguf(f);
  const ModelConfig& c = m->config_;
  TensorBinder b(f);

  const int64_t d = c.hidden_size, H = c.n_heads;
  const int64_t d_qk = c.qk_head_dim(), d_nope = c.qk_nope_head_dim, d_v = c.v_head_dim;
  const int64_t d_c = c.kv_lora_rank, d_r = c.qk_rope_head_dim;

  m->token_embd = b.matrix("token_embd.weight", d, c.vocab_size);
  m->output_norm = b.vector("output_norm.weight", d);
  m->output = b.matrix("output.weight", d, c.vocab_size);

  m->layers.resize(static_cast<size_t>(c.n_layers));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerWeights& L = m->layers[static_cast<size_t>(l)];
    const std::string p = "blk." + std::to_string(l) + ".";
    L.attn_norm = b.vector(p + "attn_norm.weight", d);
    L.ffn_norm = b.vector(p + "ffn_norm.weight", d);

    // Query: the presence of attn_q_a (not the layer count or a name) says whether
    // the query is compressed.
    if (b.find(p + "attn_q_a.weight")) {
      if (c.q_lora_rank <= 0) fail(path, ": tensor ", p, "attn_q_a.weight present but attention.q_lora_rank is not set");
      L.wq_a = b.matrix(p + "attn_q_a.weight", d, c.q_lora_rank);
      L.q_a_norm = b.vector(p + "attn_q_a_norm.weight", c.q_lora_rank);
      L.wq_b = b.matrix(p + "attn_q_b.weight", c.q_lora_rank, H * d_qk);
    } else {
      L.wq = b.matrix(p + "attn_q.weight", d, H * d_qk);
    }
    L.wkv_a = b.matrix(p + "attn_kv_a_mqa.weight", d, d_c + d_r);
    L.kv_a_norm = b.vector(p + "attn_kv_a_norm.weight", d_c);
    if (b.find(p + "attn_k_b.weight")) {
      const GgufTensor& kb = b.require(p + "attn_k_b.weight", {d_nope, d_c, H});
      const GgufTensor& vb = b.require(p + "attn_v_b.weight", {d_c, d_v, H});
      for (int64_t h = 0; h < H; ++h) {
        L.w_uk.push_back(TensorBinder::slice(kb, h));
        L.w_uv.push_back(TensorBinder::slice(vb, h));
      }
    } else if (b.find(p + "attn_kv_b.weight")) {
      L.wkv_b = b.matrix(p + "attn_kv_b.weight", d_c, H * (d_nope + d_v));
    } else {
      fail(path, ": missing tensor ", p, "attn_k_b.weight (or the older ", p, "attn_kv_b.weight)");
    }
    L.wo = b.matrix(p + "attn_output.weight", H * d_v, d);

    L.is_moe = b.find(p + "ffn_gate_inp.weight") != nullptr;
    if (L.is_moe) {
      if (c.n_routed_experts <= 0) fail(path, ": tensor ", p, "ffn_gate_inp.weight present but expert_count is 0");
      const int64_t E = c.n_routed_experts, ff = c.moe_intermediate_size;
      L.router = b.matrix(p + "ffn_gate_inp.weight", d, E);
      if (b.find(p + "exp_probs_b.bias")) L.routing_bias = b.vector(p + "exp_probs_b.bias", E);
      const GgufTensor& g = b.require(p + "ffn_gate_exps.weight", {d, ff, E});
      const GgufTensor& u = b.require(p + "ffn_up_exps.weight", {d, ff, E});
      const GgufTensor& dn = b.require(p + "ffn_down_exps.weight", {ff, d, E});
      for (int64_t e = 0; e < E; ++e)
        L.experts.push_back({TensorBinder::slice(g, e), TensorBinder::slice(u, e), TensorBinder::slice(dn, e)});
      if (c.n_shared_experts > 0) {
        const int64_t ffs = ff * c.n_shared_experts;
        L.shared = {b.matrix(p + "ffn_gate_shexp.weight", d, ffs), b.matrix(p + "ffn_up_shexp.weight", d, ffs),
                    b.matrix(p + "ffn_down_shexp.weight", ffs, d)};
      }
    } else {
      const int64_t ff = c.intermediate_size;
      L.ffn_gate = b.matrix(p + "ffn_gate.weight", d, ff);
      L.ffn_up = b.matrix(p + "ffn_up.weight", d, ff);
      L.ffn_down = b.matrix(p + "ffn_down.weight", ff, d);
    }
  }
  m->split_shared_experts();
  if (opts.repack) {
    m->transpose_legacy_w_uk();
    m->tile_weights(opts);
  }
  if (opts.verbose) {
    std::fprintf(stderr, "loaded %s: %lld layers, %zu tensors, %.2f MB of weights", path.c_str(),
                 static_cast<long long>(c.n_layers), f.tensors().size(), m->weight_bytes() / 1e6);
    if (m->tiled_weight_bytes()) std::fprintf(stderr, ", %.2f MB laid out for the int8 kernels", m->tiled_weight_bytes() / 1e6);
    std::fprintf(stderr, "\n");
  }
  return m;
}

// A legacy attn_kv_b holds W_UK with its blocks along the latent dimension, so the
// absorbed query W_UK^T q_nope is a transposed product. Newer files store W_UK^T per head
// (attn_k_b). For old ones with Q4_0/Q8_0/Q6_K blocks and the int8 kernels, each head's
// W_UK rows are tiled as they are (w_uk_rows, which the naive path's keys need anyway)
// and kernels::matmul_transposed sums them in float: the file's bytes, no copy.
// Otherwise W_UK^T is built once at load in float32 (exact, 7× the bytes of Q4_0).
void Model::transpose_legacy_w_uk() {
  const ModelConfig& c = config_;
  const int64_t H = c.n_heads, d_nope = c.qk_nope_head_dim, d_v = c.v_head_dim, d_c = c.kv_lora_rank;
  std::vector<LayerWeights*> as_float;
  for (LayerWeights& L : layers)
    if (L.w_uk.empty() && !L.wkv_b.empty() && !keep_legacy_w_uk_rows(L)) as_float.push_back(&L);
  if (as_float.empty()) return;
  const size_t per_head = static_cast<size_t>(d_c * d_nope);
  legacy_w_uk_.assign(as_float.size() * static_cast<size_t>(H) * per_head, 0.f);
  std::vector<float> row(static_cast<size_t>(d_c));
  float* out = legacy_w_uk_.data();
  for (LayerWeights* L : as_float) {
    for (int64_t h = 0; h < H; ++h, out += per_head) {
      for (int64_t n = 0; n < d_nope; ++n) {  // row n of W_UK = column n of W_UK^T
        kernels::get_row(L->wkv_b, h * (d_nope + d_v) + n, row.data());
        for (int64_t j = 0; j < d_c; ++j) out[j * d_nope + n] = row[static_cast<size_t>(j)];
      }
      L->w_uk.push_back(WeightView{GgmlType::F32, reinterpret_cast<const uint8_t*>(out), d_c, d_nope,
                                   static_cast<size_t>(d_nope) * sizeof(float)});
    }
  }
}

// Per head, W_UK's and W_UV's rows of attn_kv_b as views to be tiled, if the tiled W_UK
// rows take matmul_transposed's kernel. W_UV is already in the right orientation.
bool Model::keep_legacy_w_uk_rows(LayerWeights& L) {
  const ModelConfig& c = config_;
  const int64_t H = c.n_heads, d_nope = c.qk_nope_head_dim, d_v = c.v_head_dim;
  auto w_uk_of = [&](int64_t h) { return kernels::row_slice(L.wkv_b, h * (d_nope + d_v), d_nope); };
  if (!kernels::has_tiled_transposed(w_uk_of(0))) return false;
  for (int64_t h = 0; h < H; ++h) {
    L.w_uv.push_back(kernels::row_slice(L.wkv_b, h * (d_nope + d_v) + d_nope, d_v));
    L.w_uk_rows.push_back(w_uk_of(h));
  }
  return true;
}

// Shared expert j is rows [j·ff, (j+1)·ff) of the shared gate and up matrices and the
// same columns of the shared down matrix (ff = moe_intermediate_size): the sum of the
// n_shared experts' outputs is the wide MLP's output. Taken apart before the weights are
// tiled, so each expert's down is tiled on its own, one contiguous stream: a column
// slice of the tiled wide down read half of every tile and skipped the other half, and
// the down phase ran 7-9 % slower than gate+up (Q4_0 file, --phases).
void Model::split_shared_experts() {
  const int64_t n_shared = config_.n_shared_experts, ff = config_.moe_intermediate_size;
  for (LayerWeights& L : layers) {
    if (!L.is_moe || L.experts.empty() || L.shared.gate.empty() || n_shared <= 0) continue;
    const ExpertWeights& e = L.experts[0];
    const auto same_kind = [](const WeightView& a, const WeightView& b) { return a.type == b.type && a.layout == b.layout; };
    const TypeTraits* down = type_traits(L.shared.down.type);
    if (L.shared.gate.rows != n_shared * ff || !same_kind(L.shared.gate, e.gate) || !same_kind(L.shared.up, e.up) ||
        !same_kind(L.shared.down, e.down) || e.gate.rows != ff || !down || ff % down->block_size)
      continue;
    L.routed_and_shared = L.experts;
    for (int64_t j = 0; j < n_shared; ++j)
      L.routed_and_shared.push_back({kernels::row_slice(L.shared.gate, j * ff, ff), kernels::row_slice(L.shared.up, j * ff, ff),
                                     kernels::column_slice(L.shared.down, j * ff, ff)});
  }
}

// Every matrix the int8 kernels take in tiles. Not tiled: token_embd (read a row at a
// time).
std::vector<WeightView*> Model::matrices_to_tile() {
  std::vector<WeightView*> views;
  auto add = [&](WeightView& w) {
    if (!w.empty() && kernels::tiled_bytes(w)) views.push_back(&w);
  };
  auto add_ffn = [&](ExpertWeights& e) {
    add(e.gate);
    add(e.up);
    add(e.down);
  };
  add(output);
  for (LayerWeights& L : layers) {
    for (WeightView* w : {&L.wq, &L.wq_a, &L.wq_b, &L.wkv_a, &L.wo, &L.router, &L.ffn_gate, &L.ffn_up, &L.ffn_down}) add(*w);
    for (WeightView& w : L.w_uk) add(w);
    for (WeightView& w : L.w_uv) add(w);
    for (WeightView& w : L.w_uk_rows) add(w);
    for (ExpertWeights& e : L.experts) add_ffn(e);
    if (L.routed_and_shared.empty()) add_ffn(L.shared);  // else only the split copy is used
    for (size_t j = L.experts.size(); j < L.routed_and_shared.size(); ++j) add_ffn(L.routed_and_shared[j]);
  }
  return views;
}

namespace {

// Lays a few matrices out again (their first 64 rows) and compares them with a tile
// cache's bytes: catches a cache whose tiles do not match its table, or a build whose
// tiles changed without a new kernels::kTileFormatVersion.
bool cache_agrees_on_samples(const std::vector<WeightView*>& views, const std::vector<TiledMatrix>& layout,
                             const uint8_t* tiles) {
  constexpr size_t kSamples = 8;
  std::vector<uint8_t> scratch;
  for (size_t k = 0; k < kSamples; ++k) {
    const size_t i = k * (views.size() - 1) / (kSamples - 1);
    const WeightView head = kernels::row_slice(*views[i], 0, std::min<int64_t>(views[i]->rows, 64));
    scratch.assign(kernels::tiled_bytes(head), 0);
    kernels::tile_weights(head, scratch.data());
    if (std::memcmp(scratch.data(), tiles + layout[i].offset, scratch.size()) != 0) return false;
  }
  return true;
}

}  // namespace

// A matrix's bytes as the file holds them (row_stride is the file's, whatever the layout):
// what a decode step streams, for the roofline and for the prefetch timing.
static uint64_t bytes_of(const WeightView& w) { return w.data ? static_cast<uint64_t>(w.rows) * w.row_stride : 0; }
static uint64_t bytes_of(const ExpertWeights& e) { return bytes_of(e.gate) + bytes_of(e.up) + bytes_of(e.down); }

// Whether decode prefetches, timed on what decode mostly reads: one token through k
// routed experts of every MoE layer, where an expert's gate and up rows alternate (two
// streams at once). Whole matrices streamed end to end misjudged it: a q5_K_M V2-Lite
// tuned prefetch off at 36.2 GB/s with, 37.9 without, where decode ran at 68 % of the
// roofline without and 76 % with (BENCHMARKS.md, "Q5_K decode").
static kernels::PrefetchChoice tune_decode_prefetch(const ModelConfig& c, const std::vector<LayerWeights>& layers,
                                                    std::vector<WeightView*>& views) {
  std::vector<const LayerWeights*> moe;
  for (const LayerWeights& L : layers)
    if (L.is_moe && !L.experts.empty() && L.experts[0].gate.layout == kernels::Layout::Tiles16) moe.push_back(&L);
  const int k = static_cast<int>(c.num_experts_per_tok);
  const int64_t n_experts = static_cast<int64_t>(moe.empty() ? 0 : moe[0]->experts.size());
  uint64_t per_pass = 0;  // about: k of each layer's experts
  for (const LayerWeights* L : moe) per_pass += k * bytes_of(L->experts[0]);
  // Too few experts, or a pass that would stay in the caches: the matrices' timing decides.
  if (moe.empty() || k <= 0 || k > n_experts || per_pass < (uint64_t{64} << 20))
    return kernels::tune_decode_prefetch(views.data(), views.size());
  std::vector<float> x(static_cast<size_t>(c.hidden_size)), y(x.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(static_cast<int>(i * 7919 % 255) - 127) / 127.f;
  std::vector<int32_t> ids(static_cast<size_t>(k));
  const std::vector<float> weights(static_cast<size_t>(k), 1.0f / static_cast<float>(k));
  uint32_t state = 12345;
  return kernels::tune_decode_prefetch([&] {
    uint64_t bytes = 0;
    for (const LayerWeights* L : moe) {
      for (int i = 0; i < k; ++i) {  // k distinct experts, as a router picks them
        do {
          state = state * 1664525u + 1013904223u;
          ids[static_cast<size_t>(i)] = static_cast<int32_t>((state >> 8) % static_cast<uint32_t>(n_experts));
        } while (std::find(ids.begin(), ids.begin() + i, ids[static_cast<size_t>(i)]) != ids.begin() + i);
        bytes += bytes_of(L->experts[static_cast<size_t>(ids[static_cast<size_t>(i)])]);
      }
      kernels::moe_ffn(L->experts.data(), n_experts, x.data(), 1, ids.data(), weights.data(), k, y.data());
    }
    return bytes;
  });
}

// The tiled matrices live in one arena, laid out here or mapped from a tile cache; the
// file's pages of those tensors are then released, so resident memory stays about one
// model's size.
void Model::tile_weights(const LoadOptions& opts) {
  std::vector<WeightView*> views = matrices_to_tile();
  if (views.empty()) {
    if (!opts.tile_cache.empty())
      std::fprintf(stderr, "tile cache %s: not written (no matrix of this model is laid out for the int8 kernels on this CPU)\n",
                   opts.tile_cache.c_str());
    return;
  }
  std::vector<TiledMatrix> layout;
  uint64_t at = 0;
  for (const WeightView* w : views) {
    const uint64_t bytes = kernels::tiled_bytes(*w);
    layout.push_back({w->type, w->rows, w->cols, at, bytes});
    at += (bytes + 63) & ~uint64_t{63};
  }
  const uint8_t* tiles = nullptr;
  const uint64_t fingerprint = opts.tile_cache.empty() ? 0 : gguf_fingerprint(*gguf_);
  if (!opts.tile_cache.empty()) {
    std::string why_not;
    tile_cache_ = TileCache::open(opts.tile_cache, fingerprint, layout, &why_not);
    if (tile_cache_.is_open() && !cache_agrees_on_samples(views, layout, tile_cache_.tiles())) {
      why_not = "its tiles differ from this build's layout";
      tile_cache_ = TileCache();
    }
    if (!why_not.empty())
      std::fprintf(stderr, "tile cache %s: %s; laying the weights out again\n", opts.tile_cache.c_str(), why_not.c_str());
    if (tile_cache_.is_open()) {
      tile_cache_.read_in();
      tiles = tile_cache_.tiles();
    }
  }
  if (!tiles) {
    tiles = lay_out(views, layout, opts.verbose);
    if (!opts.tile_cache.empty()) {
      try {
        TileCache::write(opts.tile_cache, fingerprint, layout, tiles);
      } catch (const Error& e) {  // the model is loaded; only the next load pays
        std::fprintf(stderr, "warning: tile cache not written: %s\n", e.what());
      }
    }
  }
  for (size_t i = 0; i < views.size(); ++i) {
    const WeightView source = *views[i];
    *views[i] = kernels::tiled_view(source, tiles + layout[i].offset);
    // lay_out released each source as soon as it was laid out
    if (tile_cache_.is_open()) gguf_->release(source.data, static_cast<size_t>(source.rows) * source.row_stride);
  }
  for (LayerWeights& L : layers)  // the routed experts' tiled views, ahead of the shared ones
    if (!L.routed_and_shared.empty()) std::copy(L.experts.begin(), L.experts.end(), L.routed_and_shared.begin());
  prefetch_choice_ = tune_decode_prefetch(config_, layers, views);
}

// Lays every matrix out into tiled_ and returns it.
const uint8_t* Model::lay_out(const std::vector<WeightView*>& views, const std::vector<TiledMatrix>& layout, bool verbose) {
  const uint64_t total = tiled_total_bytes(layout);
  tiled_ = AnonymousMemory(total);
  std::unique_ptr<Progress> progress;
  if (verbose || total > (uint64_t{256} << 20)) progress = std::make_unique<Progress>("repacking weights", total);
  // One parallel loop over the matrices (hundreds of expert slices), not one per matrix.
  std::atomic<uint64_t> done{0};
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t i = 0; i < views.size(); ++i) {
    kernels::tile_weights(*views[i], tiled_.data() + layout[i].offset);
    gguf_->release(views[i]->data, static_cast<size_t>(views[i]->rows) * views[i]->row_stride);
    done += layout[i].bytes;
    if (progress && omp_get_thread_num() == 0) progress->update(done);
  }
  if (progress) progress->finish();
  return tiled_.data();
}

uint64_t Model::weight_bytes() const {
  uint64_t n = 0;
  for (const auto& t : gguf_->tensors()) n += t.nbytes;
  return n;
}

uint64_t Model::bytes_per_token() const {
  const ModelConfig& c = config_;
  uint64_t n = bytes_of(output) + static_cast<uint64_t>(token_embd.row_stride);  // head + one embedding row
  for (const LayerWeights& L : layers) {
    // A legacy attn_kv_b is read through the W_UK^T / W_UV views built at load, where
    // there are some.
    const uint64_t kv_b = bytes_of(L.wkv_b), d_nope = c.qk_nope_head_dim, d_v = c.v_head_dim;
    n += bytes_of(L.wq) + bytes_of(L.wq_a) + bytes_of(L.wq_b) + bytes_of(L.wkv_a) + bytes_of(L.wo) +
         (L.w_uk.empty() ? kv_b * d_nope / (d_nope + d_v) : 0) + (L.w_uv.empty() ? kv_b * d_v / (d_nope + d_v) : 0);
    for (const auto& w : L.w_uk) n += bytes_of(w);
    for (const auto& w : L.w_uv) n += bytes_of(w);
    if (L.is_moe) {
      n += bytes_of(L.router) + bytes_of(L.shared);
      if (!L.experts.empty()) {
        const ExpertWeights& e = L.experts[0];
        n += static_cast<uint64_t>(c.num_experts_per_tok) * bytes_of(e);
      }
    } else {
      n += bytes_of(L.ffn_gate) + bytes_of(L.ffn_up) + bytes_of(L.ffn_down);
    }
  }
  return n;
}

}  // namespace mlamoe
