#include "convert/quant_plan.h"

#include "common/error.h"

namespace mlamoe {

std::string QuantRecipe::name() const { return k_m ? std::string(type_name(base)) + "_M" : std::string(type_name(base)); }

QuantRecipe parse_recipe(std::string_view s) {
  std::string lower(s);
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  QuantRecipe r;
  if (lower == "q4_k_m" || lower == "q5_k_m") {
    r.base = lower == "q4_k_m" ? GgmlType::Q4_K : GgmlType::Q5_K;
    r.k_m = true;
    return r;
  }
  GgmlType t;
  if (parse_type_name(lower, &t)) {
    switch (t) {
      case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16: case GgmlType::Q8_0:
      case GgmlType::Q4_0: case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
        r.base = t;
        return r;
      default: break;
    }
  }
  fail("unsupported type '", s, "' (f32, f16, bf16, q8_0, q4_0, q4_K, q5_K, q6_K, q4_K_M, q5_K_M)");
}

GgmlType fit_row_length(GgmlType want, int64_t row_len) {
  const TypeTraits* tr = type_traits(want);
  if (tr && row_len % tr->block_size == 0) return want;
  switch (want) {
    case GgmlType::Q4_K: want = GgmlType::Q4_0; break;
    case GgmlType::Q5_K: case GgmlType::Q6_K: want = GgmlType::Q8_0; break;
    default: want = GgmlType::F16; break;
  }
  return fit_row_length(want, row_len);
}

static bool more_bits_layer(int64_t l, int64_t n) {
  return l < n / 8 || l >= 7 * n / 8 || (l - n / 8) % 3 == 2;
}

GgmlType choose_type(const QuantRecipe& r, const tn::TensorSpec& t, int64_t n_layers) {
  using tn::Role;
  if (t.is_vector() || t.role == Role::Router || t.role == Role::Norm || t.role == Role::RoutingBias)
    return GgmlType::F32;
  GgmlType want = r.base;
  if (r.k_m) {
    switch (t.role) {
      case Role::Output: case Role::AttnKB: case Role::AttnVB: case Role::AttnKvB:
        want = GgmlType::Q6_K;
        break;
      case Role::FfnDown: case Role::ExpertDown:
        if (t.layer >= n_layers || more_bits_layer(t.layer, n_layers)) want = GgmlType::Q6_K;
        break;
      default: break;
    }
  }
  return fit_row_length(want, t.ne[0]);
}

}  // namespace mlamoe
