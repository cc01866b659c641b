// Reference conversions between float32 and the GGUF weight types.
//
// Block layouts are those of ggml_types.h (the GGUF/llama.cpp layouts). Q8_0 and Q4_0
// quantize exactly as llama.cpp's reference quantizers do (same float operations in the
// same order, so blocks are bit-identical); the K-quants run the same least-squares
// scale searches as llama.cpp's reference K-quantizers. Everything here is scalar and
// written for clarity: it is the yardstick the fast kernels are tested against.
#include "format/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/error.h"

namespace mlamoe {

namespace {

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round half to even, as the K-quant reference does (its magic-number rounding is RNE
// for every |x| < 2^22). NaN maps to 0 and huge values saturate, so hostile inputs
// never reach an undefined float-to-int conversion.
int round_even(float x) {
  if (!(x == x)) return 0;
  x = std::clamp(x, -4194303.f, 4194303.f);
  return static_cast<int>(std::nearbyint(x));
}

}  // namespace

// ---- scalar formats ----

float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exponent = (h >> 10) & 0x1f;
  const uint32_t mantissa = h & 0x3ff;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float
    float v = static_cast<float>(mantissa) * 0x1p-24f;
    return sign ? -v : v;
  }
  if (exponent == 31) {  // inf, or NaN made quiet as F16C's vcvtph2ps does
    const uint32_t quiet = mantissa ? 0x400000u : 0;
    return bits_float(sign | 0x7f800000u | (mantissa << 13) | quiet);
  }
  return bits_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t fp32_to_fp16(float f) {
  const uint32_t x = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u)  // NaN: stays NaN (quiet), keeping the top payload bits
    return sign | 0x7e00 | static_cast<uint16_t>((ax >> 13) & 0x3ff);
  // 65520 is halfway between 65504 (largest half, odd mantissa) and 2^16: ties go to inf.
  if (ax >= 0x477ff000u) return sign | 0x7c00;
  if (ax >= 0x38800000u) {  // normal half: rebias the exponent, round 13 mantissa bits
    uint32_t v = ax - 0x38000000u;
    v += 0xfffu + ((v >> 13) & 1);  // a carry ripples into the exponent, as it should
    return sign | static_cast<uint16_t>(v >> 13);
  }
  // Subnormal half (or zero): value / 2^-24, rounded to nearest even.
  const uint32_t e = ax >> 23;
  const int shift = 126 - static_cast<int>(e);  // value = m * 2^(e-150) = (m >> shift) * 2^-24
  if (shift > 24) return sign;                   // below half of the smallest subnormal
  const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
  uint32_t q = m >> shift;
  const uint32_t rest = m & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rest > half || (rest == half && (q & 1))) ++q;  // may become 0x400, the smallest normal
  return sign | static_cast<uint16_t>(q);
}

float bf16_to_fp32(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

uint16_t fp32_to_bf16(float f) {
  const uint32_t x = float_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40);  // quiet NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

// OCP e4m3 ("e4m3fn", DeepSeek-V3's FP8): bias 7, no infinities, S.1111.111 is NaN,
// largest finite 448 (0x7e).
float fp8_e4m3_to_fp32(uint8_t v) {
  const bool negative = v & 0x80;
  const int exponent = (v >> 3) & 0xf;
  const int mantissa = v & 7;
  float r;
  if (exponent == 15 && mantissa == 7) r = std::numeric_limits<float>::quiet_NaN();
  else if (exponent == 0) r = static_cast<float>(mantissa) * 0x1p-9f;  // subnormal: m/8 * 2^-6
  else r = std::ldexp(1.0f + static_cast<float>(mantissa) / 8.0f, exponent - 7);
  return negative ? -r : r;
}

// ---- Q8_0 / Q4_0 ----

namespace {

void dequantize_q8_0(const BlockQ8_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += QK8_0) {
    const float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < QK8_0; ++j) y[j] = b[i].qs[j] * d;
  }
}

// d = absmax / 127, q = round(x / d) away from zero on ties (roundf), as llama.cpp.
void quantize_q8_0(const float* x, BlockQ8_0* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += QK8_0) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    for (int j = 0; j < QK8_0; ++j) {
      const float q = std::round(x[j] * id);
      // |x*id| <= 127 for finite input; the clamp only guards NaN/inf blocks.
      b[i].qs[j] = static_cast<int8_t>(q >= -128.0f && q <= 127.0f ? q : 0.0f);
    }
  }
}

void dequantize_q4_0(const BlockQ4_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += QK4_0) {
    const float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      y[j] = ((b[i].qs[j] & 0x0f) - 8) * d;
      y[j + QK4_0 / 2] = ((b[i].qs[j] >> 4) - 8) * d;
    }
  }
}

// d = (signed value of largest magnitude) / -8, so that value lands exactly on q = 0;
// q = trunc(x/d + 8.5) capped at 15, as llama.cpp.
void quantize_q4_0(const float* x, BlockQ4_0* b, int64_t nb) {
  auto level = [](float v) -> uint8_t {  // trunc(v), v in [0.5, 16.5] for finite input
    if (!(v > 0.0f)) return 0;
    return v >= 15.0f ? 15 : static_cast<uint8_t>(v);
  };
  for (int64_t i = 0; i < nb; ++i, x += QK4_0) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < QK4_0; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = fp32_to_fp16(d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      const uint8_t lo = level(x[j] * id + 8.5f);
      const uint8_t hi = level(x[j + QK4_0 / 2] * id + 8.5f);
      b[i].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

// ---- K-quant helpers ----

// Q4_K/Q5_K keep 8 six-bit scales and 8 six-bit mins in 12 bytes: bytes 0..3 hold
// scales 0..3 and bytes 4..7 mins 0..3 (low 6 bits each); bytes 8..11 hold the low
// nibbles of scale j and min j for j = 4..7, whose top 2 bits sit in the spare top
// bits of bytes j-4 (scale) and j (min).
void unpack_scale_min(int j, const uint8_t* s, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = s[j] & 63;
    *min = s[j + 4] & 63;
  } else {
    *scale = static_cast<uint8_t>((s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4));
    *min = static_cast<uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

void pack_scales_mins(const uint8_t scale[8], const uint8_t min[8], uint8_t* s) {
  std::memset(s, 0, K_SCALE_SIZE);
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      s[j] = scale[j];
      s[j + 4] = min[j];
    } else {
      s[j + 4] = static_cast<uint8_t>((scale[j] & 0xf) | ((min[j] & 0xf) << 4));
      s[j - 4] |= static_cast<uint8_t>((scale[j] >> 4) << 6);
      s[j] |= static_cast<uint8_t>((min[j] >> 4) << 6);
    }
  }
}

// Fits x[i] ~ scale * L[i] - min_out with L in 0..nmax, minimizing the weighted squared
// error. Starts from the min/max grid, then tries nstep+1 stretched grids
// (nmax + rmin + rdelta*k levels across the range) and, for each, solves the 2x2
// least-squares problem for scale and offset on the rounded levels, keeping the best.
// The offset is never positive (min_out >= 0), as the formats store it subtracted.
float fit_scale_and_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* min_out,
                        float rmin, float rdelta, int nstep) {
  float lo = x[0], hi = x[0];
  float sum_w = w[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (lo > 0) lo = 0;
  if (hi == lo) {
    std::fill(L, L + n, 0);
    *min_out = -lo;
    return 0.0f;
  }
  float iscale = nmax / (hi - lo);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<uint8_t>(std::clamp(round_even(iscale * (x[i] - lo)), 0, nmax));
    const float diff = scale * L[i] + lo - x[i];
    best_error += w[i] * (diff * diff);
  }
  uint8_t trial[32];
  for (int step = 0; step <= nstep; ++step) {
    iscale = (rmin + rdelta * step + nmax) / (hi - lo);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(round_even(iscale * (x[i] - lo)), 0, nmax);
      trial[i] = static_cast<uint8_t>(l);
      sum_l += w[i] * l;
      sum_l2 += w[i] * l * l;
      sum_xl += w[i] * l * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (!(det > 0)) continue;
    float trial_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float trial_offset = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (trial_offset > 0) {  // the formats cannot add: refit the scale with offset 0
      trial_offset = 0;
      trial_scale = sum_xl / sum_l2;
    }
    float error = 0;
    for (int i = 0; i < n; ++i) {
      const float diff = trial_scale * trial[i] + trial_offset - x[i];
      error += w[i] * (diff * diff);
    }
    if (error < best_error) {
      std::copy(trial, trial + n, L);
      best_error = error;
      scale = trial_scale;
      lo = trial_offset;
    }
  }
  *min_out = -lo;
  return scale;
}

// Fits x[i] ~ scale * l[i] with signed l in -nmax..nmax-1, weighting each element by
// x^2 (large weights matter most). Tries 19 grids around the one that maps the
// largest-magnitude value onto -nmax and keeps the best least-squares scale.
float fit_symmetric_scale(int n, int nmax, const float* x, int8_t* L) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  if (amax < 1e-15f) {
    std::fill(L, L + n, 0);
    return 0.0f;
  }
  auto fit = [&](float iscale, float* sumlx, float* suml2) {
    *sumlx = *suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(round_even(iscale * x[i]), -nmax, nmax - 1);
      const float w = x[i] * x[i];
      *sumlx += w * x[i] * l;
      *suml2 += w * l * l;
    }
  };
  auto store = [&](float iscale) {
    for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(nmax + std::clamp(round_even(iscale * x[i]), -nmax, nmax - 1));
  };
  float sumlx, suml2;
  float iscale = -nmax / max;
  fit(iscale, &sumlx, &suml2);
  store(iscale);
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int step = -9; step <= 9; ++step) {
    if (step == 0) continue;
    iscale = -(nmax + 0.1f * step) / max;
    fit(iscale, &sumlx, &suml2);
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      store(iscale);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

uint8_t six_bits(float v) { return static_cast<uint8_t>(std::clamp(round_even(v), 0, 63)); }

// Q4_K and Q5_K share everything but the level count and the search grid: 8 sub-blocks
// of 32, each fitted with its own scale and min, then scales and mins quantized to
// 6 bits against the super-block's d and dmin, then levels recomputed on the stored grid.
template <int NMAX>
void quantize_k_affine(const float* x, uint16_t* d_out, uint16_t* dmin_out, uint8_t* scales_out, uint8_t L[QK_K]) {
  constexpr float kRmin = NMAX == 15 ? -1.0f : -0.5f;
  constexpr int kSteps = NMAX == 15 ? 20 : 15;
  float scales[8], mins[8], weights[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    const float* xj = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xj[l] * xj[l];
    const float rms = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = rms + std::fabs(xj[l]);
    scales[j] = fit_scale_and_min(32, NMAX, xj, weights, L + 32 * j, &mins[j], kRmin, 0.1f, kSteps);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = six_bits(inv_scale * scales[j]);
    lm[j] = six_bits(inv_min * mins[j]);
  }
  pack_scales_mins(ls, lm, scales_out);
  *d_out = fp32_to_fp16(max_scale / 63.f);
  *dmin_out = fp32_to_fp16(max_min / 63.f);
  for (int j = 0; j < 8; ++j) {
    const float d = fp16_to_fp32(*d_out) * ls[j];
    if (d == 0) continue;
    const float dm = fp16_to_fp32(*dmin_out) * lm[j];
    for (int i = 0; i < 32; ++i)
      L[32 * j + i] = static_cast<uint8_t>(std::clamp(round_even((x[32 * j + i] + dm) / d), 0, NMAX));
  }
}

// ---- Q4_K ----
// Element order: for each 64-element chunk c, 32 low nibbles (sub-block 2c) then the 32
// high nibbles of the same bytes (sub-block 2c+1). x = d*scale*q - dmin*min.

void dequantize_q4_k(const BlockQ4_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    for (int c = 0; c < 4; ++c, q += 32) {
      uint8_t sc, m;
      unpack_scale_min(2 * c, b[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      unpack_scale_min(2 * c + 1, b[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xf) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
    }
  }
}

void quantize_q4_k(const float* x, BlockQ4_K* b, int64_t nb) {
  uint8_t L[QK_K];
  for (int64_t i = 0; i < nb; ++i, x += QK_K) {
    quantize_k_affine<15>(x, &b[i].d, &b[i].dmin, b[i].scales, L);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) b[i].qs[32 * c + l] = static_cast<uint8_t>(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
  }
}

// ---- Q5_K ----
// As Q4_K; the fifth bit of element l of chunk c is bit 2c (low half) or 2c+1 (high
// half) of qh[l].

void dequantize_q5_k(const BlockQ5_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
    const uint8_t* ql = b[i].qs;
    const uint8_t* qh = b[i].qh;
    for (int c = 0; c < 4; ++c, ql += 32) {
      uint8_t sc, m;
      unpack_scale_min(2 * c, b[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      unpack_scale_min(2 * c + 1, b[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      const uint8_t bit_lo = static_cast<uint8_t>(1u << (2 * c)), bit_hi = static_cast<uint8_t>(2u << (2 * c));
      for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xf) + (qh[l] & bit_lo ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & bit_hi ? 16 : 0)) - m2;
    }
  }
}

void quantize_q5_k(const float* x, BlockQ5_K* b, int64_t nb) {
  uint8_t L[QK_K];
  for (int64_t i = 0; i < nb; ++i, x += QK_K) {
    quantize_k_affine<31>(x, &b[i].d, &b[i].dmin, b[i].scales, L);
    std::memset(b[i].qh, 0, sizeof(b[i].qh));
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t lo = L[64 * c + l], hi = L[64 * c + 32 + l];
        b[i].qs[32 * c + l] = static_cast<uint8_t>((lo & 0xf) | ((hi & 0xf) << 4));
        b[i].qh[l] |= static_cast<uint8_t>(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
      }
    }
  }
}

// ---- Q6_K ----
// 16 sub-blocks of 16 with signed 8-bit scales. In each 128-element half, element
// l + 32k (l < 32, k < 4) has its low nibble in ql[l + 32*(k&1)] (low nibble for
// k < 2, high for k >= 2), its top two bits in bits 2k..2k+1 of qh[l], and scale
// index l/16 + 2k. x = d * scale * (q - 32).

void dequantize_q6_k(const BlockQ6_K* b, float* y, int64_t nb) {
  uint8_t q[QK_K];
  for (int64_t i = 0; i < nb; ++i, y += QK_K) {
    const float d = fp16_to_fp32(b[i].d);
    unpack_q6_k(b[i], q);
    for (int e = 0; e < QK_K; ++e) y[e] = d * b[i].scales[e / 16] * (q[e] - 32);
  }
}

void quantize_q6_k(const float* x, BlockQ6_K* b, int64_t nb) {
  int8_t L[QK_K];
  float scales[QK_K / 16];
  for (int64_t i = 0; i < nb; ++i, x += QK_K) {
    float max_scale = 0, max_abs_scale = 0;
    for (int s = 0; s < QK_K / 16; ++s) {
      scales[s] = fit_symmetric_scale(16, 32, x + 16 * s, L + 16 * s);
      if (std::fabs(scales[s]) > max_abs_scale) {
        max_abs_scale = std::fabs(scales[s]);
        max_scale = scales[s];
      }
    }
    std::memset(&b[i], 0, sizeof(BlockQ6_K));
    if (max_abs_scale < 1e-15f) continue;  // all (near) zero: d = 0
    // The sub-block scale of largest magnitude becomes -128 (the full int8 range).
    const float iscale = -128.f / max_scale;
    b[i].d = fp32_to_fp16(1 / iscale);
    for (int s = 0; s < QK_K / 16; ++s)
      b[i].scales[s] = static_cast<int8_t>(std::clamp(round_even(iscale * scales[s]), -128, 127));
    for (int s = 0; s < QK_K / 16; ++s) {
      const float d = fp16_to_fp32(b[i].d) * b[i].scales[s];
      if (d == 0) continue;
      for (int l = 0; l < 16; ++l)
        L[16 * s + l] = static_cast<int8_t>(std::clamp(round_even(x[16 * s + l] / d), -32, 31) + 32);
    }
    for (int half = 0; half < 2; ++half) {
      const int8_t* Lh = L + 128 * half;
      uint8_t* ql = b[i].ql + 64 * half;
      uint8_t* qh = b[i].qh + 32 * half;
      for (int l = 0; l < 32; ++l) {
        ql[l] = static_cast<uint8_t>((Lh[l] & 0xf) | ((Lh[l + 64] & 0xf) << 4));
        ql[l + 32] = static_cast<uint8_t>((Lh[l + 32] & 0xf) | ((Lh[l + 96] & 0xf) << 4));
        qh[l] = static_cast<uint8_t>((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
                                     ((Lh[l + 96] >> 4) << 6));
      }
    }
  }
}

// Blocks in a row of n elements of `type`, or Error (n negative or not a block multiple,
// unknown or unsupported type).
int64_t row_blocks(GgmlType type, int64_t n, const char* what) {
  const TypeTraits* tr = type_traits(type);
  if (!tr) fail(what, ": unknown tensor type ", static_cast<uint32_t>(type));
  if (n < 0 || n % tr->block_size != 0)
    fail(what, ": row of ", n, " elements is not a multiple of the ", tr->name, " block size ", tr->block_size);
  return n / tr->block_size;
}

[[noreturn]] void unsupported(GgmlType type, const char* what) {
  fail(what, ": tensor type ", type_name(type), " is not supported (mlamoe supports f32, f16, bf16, q8_0, q4_0, "
       "q4_K, q5_K, q6_K)");
}

}  // namespace

// The bit layout is described at "---- Q6_K ----" above.
void unpack_q6_k(const BlockQ6_K& b, uint8_t q[QK_K]) {
  for (int half = 0; half < 2; ++half) {
    const uint8_t* ql = b.ql + 64 * half;
    const uint8_t* qh = b.qh + 32 * half;
    for (int l = 0; l < 32; ++l)
      for (int k = 0; k < 4; ++k) {
        const uint8_t low = ql[l + 32 * (k & 1)];
        q[128 * half + l + 32 * k] = static_cast<uint8_t>((k < 2 ? low & 0xf : low >> 4) | ((qh[l] >> (2 * k)) & 3) << 4);
      }
  }
}

void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n) {
  const int64_t nb = row_blocks(type, n, "dequantize");
  const auto* bytes = static_cast<const uint8_t*>(src);
  switch (type) {
    case GgmlType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, bytes + 2 * i, 2);
        dst[i] = fp16_to_fp32(h);
      }
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, bytes + 2 * i, 2);
        dst[i] = bf16_to_fp32(h);
      }
      return;
    // Block structs are packed (alignment 1), so any source address is fine.
    case GgmlType::Q8_0: dequantize_q8_0(static_cast<const BlockQ8_0*>(src), dst, nb); return;
    case GgmlType::Q4_0: dequantize_q4_0(static_cast<const BlockQ4_0*>(src), dst, nb); return;
    case GgmlType::Q4_K: dequantize_q4_k(static_cast<const BlockQ4_K*>(src), dst, nb); return;
    case GgmlType::Q5_K: dequantize_q5_k(static_cast<const BlockQ5_K*>(src), dst, nb); return;
    case GgmlType::Q6_K: dequantize_q6_k(static_cast<const BlockQ6_K*>(src), dst, nb); return;
    default: unsupported(type, "dequantize");
  }
}

void quantize_row(GgmlType type, const float* src, void* dst, int64_t n) {
  const int64_t nb = row_blocks(type, n, "quantize");
  auto* bytes = static_cast<uint8_t*>(dst);
  switch (type) {
    case GgmlType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = fp32_to_fp16(src[i]);
        std::memcpy(bytes + 2 * i, &h, 2);
      }
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = fp32_to_bf16(src[i]);
        std::memcpy(bytes + 2 * i, &h, 2);
      }
      return;
    case GgmlType::Q8_0: quantize_q8_0(src, static_cast<BlockQ8_0*>(dst), nb); return;
    case GgmlType::Q4_0: quantize_q4_0(src, static_cast<BlockQ4_0*>(dst), nb); return;
    case GgmlType::Q4_K: quantize_q4_k(src, static_cast<BlockQ4_K*>(dst), nb); return;
    case GgmlType::Q5_K: quantize_q5_k(src, static_cast<BlockQ5_K*>(dst), nb); return;
    case GgmlType::Q6_K: quantize_q6_k(src, static_cast<BlockQ6_K*>(dst), nb); return;
    default: unsupported(type, "quantize");
  }
}

}  // namespace mlamoe
