// Reference conversions: scalar float formats, hand-built blocks of every type,
// bit-identity with llama.cpp's reference quantizers, and round-trip error bounds.
#include "format/quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "common/error.h"

namespace mlamoe {
namespace {

float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ---- fp16 ----

TEST(Fp16, KnownValues) {
  EXPECT_EQ(fp32_to_fp16(0.0f), 0x0000);
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(fp32_to_fp16(-2.0f), 0xc000);
  EXPECT_EQ(fp32_to_fp16(0.5f), 0x3800);
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7bff);  // largest finite half
  EXPECT_EQ(fp16_to_fp32(0x7bff), 65504.0f);
  EXPECT_EQ(fp16_to_fp32(0x3555), 0.333251953125f);
  EXPECT_EQ(fp16_to_fp32(0x8000), 0.0f);
  EXPECT_TRUE(std::signbit(fp16_to_fp32(0x8000)));
}

TEST(Fp16, RoundsToNearestEven) {
  // Half has 10 mantissa bits: around 1.0 the spacing is 2^-10.
  EXPECT_EQ(fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00);          // tie, 0x3c00 is even
  EXPECT_EQ(fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02);      // tie, rounds up to even
  EXPECT_EQ(fp32_to_fp16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);  // just above the tie
  EXPECT_EQ(fp32_to_fp16(2.0f - 0x1p-12f), 0x4000);          // carries into the exponent
  EXPECT_EQ(fp32_to_fp16(65519.99f), 0x7bff);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);  // tie between 65504 (odd) and 2^16 -> inf
  EXPECT_EQ(fp32_to_fp16(-1e6f), 0xfc00);
}

TEST(Fp16, Subnormals) {
  EXPECT_EQ(fp16_to_fp32(0x0001), 0x1p-24f);  // smallest subnormal
  EXPECT_EQ(fp16_to_fp32(0x03ff), 1023 * 0x1p-24f);  // largest subnormal
  EXPECT_EQ(fp16_to_fp32(0x0400), 0x1p-14f);  // smallest normal
  EXPECT_EQ(fp32_to_fp16(0x1p-24f), 0x0001);
  EXPECT_EQ(fp32_to_fp16(0x1p-25f), 0x0000);           // tie between 0 and 1 unit -> 0
  EXPECT_EQ(fp32_to_fp16(0x1.8p-25f), 0x0001);         // 0.75 unit
  EXPECT_EQ(fp32_to_fp16(3 * 0x1p-25f), 0x0002);       // 1.5 units, tie -> 2
  EXPECT_EQ(fp32_to_fp16(5 * 0x1p-25f), 0x0002);       // 2.5 units, tie -> 2
  EXPECT_EQ(fp32_to_fp16(0x1p-30f), 0x0000);
  EXPECT_EQ(fp32_to_fp16(-0x1p-30f), 0x8000);
  EXPECT_EQ(fp32_to_fp16(1023.5f * 0x1p-24f), 0x0400);  // rounds up into the first normal
  EXPECT_EQ(fp32_to_fp16(bits_float(1)), 0x0000);       // float subnormal
}

TEST(Fp16, InfinityAndNan) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(fp32_to_fp16(inf), 0x7c00);
  EXPECT_EQ(fp32_to_fp16(-inf), 0xfc00);
  EXPECT_EQ(fp16_to_fp32(0x7c00), inf);
  EXPECT_EQ(fp16_to_fp32(0xfc00), -inf);
  uint16_t h = fp32_to_fp16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(h & 0x7c00, 0x7c00);
  EXPECT_NE(h & 0x03ff, 0);
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7e00)));
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7c01)));  // signalling half NaN stays NaN
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0xffff)));
  // A NaN whose payload sits only in the low bits must not become infinity.
  EXPECT_NE(fp32_to_fp16(bits_float(0x7f800001)) & 0x3ff, 0);
}

TEST(Fp16, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(f)))) << h;
      continue;
    }
    ASSERT_EQ(fp32_to_fp16(f), h) << "half 0x" << std::hex << h;
  }
}

TEST(Fp16, NearestOnRandomFloats) {
  // Against a definition: the nearest of the two neighbouring halves, ties to even.
  uint32_t s = 12345;
  for (int i = 0; i < 200000; ++i) {
    s = s * 1664525u + 1013904223u;
    float f = bits_float((s & 0x8fffffffu) | 0x30000000u);  // magnitudes around 2^-31..2^16
    if (!std::isfinite(f) || std::fabs(f) >= 65504.0f) continue;
    uint16_t h = fp32_to_fp16(f);
    double err = std::fabs(double(fp16_to_fp32(h)) - f);
    uint16_t mag = h & 0x7fff;
    for (uint16_t other : {uint16_t(mag - 1), uint16_t(mag + 1)}) {
      if (other > 0x7bff) continue;
      double e2 = std::fabs(double(fp16_to_fp32(other | (h & 0x8000))) - f);
      ASSERT_TRUE(err < e2 || (err == e2 && (mag & 1) == 0)) << f;
    }
  }
}

// ---- bf16 ----

TEST(Bf16, KnownValuesAndRounding) {
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_fp32(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_fp32(0xc040), -3.0f);
  EXPECT_EQ(fp32_to_bf16(bits_float(0x3f808000)), 0x3f80);  // tie -> even
  EXPECT_EQ(fp32_to_bf16(bits_float(0x3f818000)), 0x3f82);  // tie -> even (up)
  EXPECT_EQ(fp32_to_bf16(bits_float(0x3f808001)), 0x3f81);
  EXPECT_EQ(fp32_to_bf16(bits_float(0x3f807fff)), 0x3f80);
  EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds to inf
  EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(fp32_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_EQ(fp32_to_bf16(bits_float(0x00010000)), 0x0001);  // subnormals are kept
  // NaN stays NaN even when its payload sits only in the low 16 bits.
  uint16_t n = fp32_to_bf16(bits_float(0x7f800001));
  EXPECT_TRUE(std::isnan(bf16_to_fp32(n)));
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(Bf16, EveryValueRoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = bf16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(fp32_to_bf16(f), h);
  }
}

// ---- fp8 e4m3fn ----

TEST(Fp8E4m3, KnownValues) {
  EXPECT_EQ(fp8_e4m3_to_fp32(0x00), 0.0f);
  EXPECT_TRUE(std::signbit(fp8_e4m3_to_fp32(0x80)));
  EXPECT_EQ(fp8_e4m3_to_fp32(0x38), 1.0f);    // exponent 7 = bias
  EXPECT_EQ(fp8_e4m3_to_fp32(0x3c), 1.5f);
  EXPECT_EQ(fp8_e4m3_to_fp32(0xb8), -1.0f);
  EXPECT_EQ(fp8_e4m3_to_fp32(0x01), 0x1p-9f);   // smallest subnormal: 1/8 * 2^-6
  EXPECT_EQ(fp8_e4m3_to_fp32(0x07), 7 * 0x1p-9f);
  EXPECT_EQ(fp8_e4m3_to_fp32(0x08), 0x1p-6f);   // smallest normal
  EXPECT_EQ(fp8_e4m3_to_fp32(0x78), 256.0f);    // exponent 15 is finite in e4m3fn
  EXPECT_EQ(fp8_e4m3_to_fp32(0x7e), 448.0f);    // largest finite
  EXPECT_EQ(fp8_e4m3_to_fp32(0xfe), -448.0f);
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_fp32(0x7f)));
  EXPECT_TRUE(std::isnan(fp8_e4m3_to_fp32(0xff)));
}

TEST(Fp8E4m3, MonotonicAndSymmetric) {
  for (int v = 1; v <= 0x7e; ++v) {
    EXPECT_LT(fp8_e4m3_to_fp32(uint8_t(v - 1)), fp8_e4m3_to_fp32(uint8_t(v))) << v;
    EXPECT_EQ(fp8_e4m3_to_fp32(uint8_t(v | 0x80)), -fp8_e4m3_to_fp32(uint8_t(v)));
    EXPECT_FALSE(std::isinf(fp8_e4m3_to_fp32(uint8_t(v))));
  }
}

// ---- hand-built blocks ----

template <typename Block>
std::vector<float> dequantize(GgmlType type, const Block& b, int n) {
  std::vector<float> y(n, -12345.0f);
  dequantize_row(type, &b, y.data(), n);
  return y;
}

TEST(Dequantize, PlainFloats) {
  const float f32[3] = {1.5f, -0.0f, 3e-39f};
  std::vector<float> y(3);
  dequantize_row(GgmlType::F32, f32, y.data(), 3);
  EXPECT_EQ(0, std::memcmp(y.data(), f32, sizeof(f32)));
  const uint16_t f16[3] = {0x3c00, 0xc100, 0x0001};  // 1, -2.5, 2^-24
  dequantize_row(GgmlType::F16, f16, y.data(), 3);
  EXPECT_EQ(y, (std::vector<float>{1.0f, -2.5f, 0x1p-24f}));
  const uint16_t b16[3] = {0x3f80, 0xc020, 0x4049};  // 1, -2.5, 3.140625
  dequantize_row(GgmlType::BF16, b16, y.data(), 3);
  EXPECT_EQ(y, (std::vector<float>{1.0f, -2.5f, 3.140625f}));
}

TEST(Dequantize, Q8_0Block) {
  BlockQ8_0 b{};
  b.d = 0x3800;  // 0.5
  for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<int8_t>(j * 8 - 128);  // -128, -120, ... 120
  auto y = dequantize(GgmlType::Q8_0, b, 32);
  EXPECT_EQ(y[0], -64.0f);
  EXPECT_EQ(y[1], -60.0f);
  EXPECT_EQ(y[16], 0.0f);
  EXPECT_EQ(y[31], 60.0f);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], (j * 8 - 128) * 0.5f);
}

TEST(Dequantize, Q4_0Block) {
  BlockQ4_0 b{};
  b.d = 0x3400;  // 0.25
  // byte j: low nibble j (element j), high nibble 15-j (element j+16)
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  auto y = dequantize(GgmlType::Q4_0, b, 32);
  EXPECT_EQ(y[0], -2.0f);    // (0-8)*0.25
  EXPECT_EQ(y[8], 0.0f);
  EXPECT_EQ(y[15], 1.75f);   // (15-8)*0.25
  EXPECT_EQ(y[16], 1.75f);   // high nibble of byte 0 = 15
  EXPECT_EQ(y[31], -2.0f);   // high nibble of byte 15 = 0
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], (j - 8) * 0.25f);
    EXPECT_EQ(y[j + 16], (7 - j) * 0.25f);
  }
}

// Sub-block scales {1,2,3,4,44,45,46,47} and mins {0,2,4,6,54,55,56,57}, packed by hand:
// bytes 0-3 = scale j | (scale j+4 >> 4) << 6   (44..47 >> 4 = 2 -> 0x80)
// bytes 4-7 = min j   | (min j+4 >> 4) << 6     (54..57 >> 4 = 3 -> 0xc0)
// bytes 8-11 = (scale j & 15) | (min j & 15) << 4 for j = 4..7.
constexpr uint8_t kPackedScales[12] = {0x81, 0x82, 0x83, 0x84, 0xc0, 0xc2, 0xc4, 0xc6, 0x6c, 0x7d, 0x8e, 0x9f};
constexpr int kScale[8] = {1, 2, 3, 4, 44, 45, 46, 47};
constexpr int kMin[8] = {0, 2, 4, 6, 54, 55, 56, 57};

TEST(Dequantize, Q4_KBlock) {
  BlockQ4_K b{};
  b.d = 0x3c00;     // 1.0
  b.dmin = 0x3800;  // 0.5
  std::memcpy(b.scales, kPackedScales, 12);
  for (int i = 0; i < 128; ++i) b.qs[i] = static_cast<uint8_t>((i % 16) | ((15 - i % 16) << 4));
  auto y = dequantize(GgmlType::Q4_K, b, 256);
  EXPECT_EQ(y[0], 0.0f);                // sub-block 0: 1*1*0 - 0.5*0
  EXPECT_EQ(y[5], 5.0f);                // 1*1*5 - 0
  EXPECT_EQ(y[32], 2 * 15 - 0.5f * 2);  // byte 0 high nibble 15, sub-block 1
  EXPECT_EQ(y[64 * 2 + 3], 44 * 3 - 0.5f * 54);      // sub-block 4, byte 64+3 low nibble 3
  EXPECT_EQ(y[255], 47 * (15 - 31 % 16) - 0.5f * 57);  // sub-block 7, byte 127 high nibble
  for (int e = 0; e < 256; ++e) {
    const int chunk = e / 64, within = e % 64, sub = 2 * chunk + within / 32;
    const uint8_t byte = b.qs[32 * chunk + within % 32];
    const int q = within < 32 ? (byte & 15) : (byte >> 4);
    ASSERT_EQ(y[e], 1.0f * kScale[sub] * q - 0.5f * kMin[sub]) << e;
  }
}

TEST(Dequantize, Q5_KBlock) {
  BlockQ5_K b{};
  b.d = 0x3400;     // 0.25
  b.dmin = 0x3c00;  // 1.0
  std::memcpy(b.scales, kPackedScales, 12);
  for (int i = 0; i < 128; ++i) b.qs[i] = static_cast<uint8_t>((i % 16) | ((i / 8 % 16) << 4));
  for (int l = 0; l < 32; ++l) b.qh[l] = static_cast<uint8_t>(l % 2 ? 0xa5 : 0x5a);
  auto y = dequantize(GgmlType::Q5_K, b, 256);
  // element 0: sub 0, nibble 0, qh[0]=0x5a bit0=0 -> q=0
  EXPECT_EQ(y[0], 0.0f);
  // element 1: nibble 1, qh[1]=0xa5 bit0=1 -> q=17; 0.25*1*17 - 0
  EXPECT_EQ(y[1], 4.25f);
  // element 32: sub 1, byte 0 high nibble 0, qh[0] bit1=1 -> q=16; 0.25*2*16 - 2
  EXPECT_EQ(y[32], 6.0f);
  // element 255: sub 7, byte 127 high nibble 15, qh[31]=0xa5 bit7=1 -> q=31; 0.25*47*31 - 57
  EXPECT_EQ(y[255], 0.25f * 47 * 31 - 57);
  for (int e = 0; e < 256; ++e) {
    const int chunk = e / 64, within = e % 64, sub = 2 * chunk + within / 32, l = within % 32;
    const uint8_t byte = b.qs[32 * chunk + l];
    const int bit = (b.qh[l] >> sub) & 1;  // sub = 2*chunk (+1 for the high nibbles)
    const int q = (within < 32 ? (byte & 15) : (byte >> 4)) + 16 * bit;
    ASSERT_EQ(y[e], 0.25f * kScale[sub] * q - 1.0f * kMin[sub]) << e;
  }
}

TEST(Dequantize, Q6_KBlock) {
  BlockQ6_K b{};
  b.d = 0x3400;  // 0.25
  for (int s = 0; s < 16; ++s) b.scales[s] = static_cast<int8_t>(s % 2 ? -(s + 1) : s + 1);
  for (int i = 0; i < 128; ++i) b.ql[i] = static_cast<uint8_t>((i % 16) | ((i / 8 % 16) << 4));
  for (int i = 0; i < 64; ++i) b.qh[i] = static_cast<uint8_t>(0x1b ^ i);
  auto y = dequantize(GgmlType::Q6_K, b, 256);
  // element 0: ql[0] low 0, qh[0]=0x1b bits0-1 = 3 -> q = 48-32 = 16, scale[0]=1 -> 4
  EXPECT_EQ(y[0], 4.0f);
  // element 32: ql[32] low 0, qh[0] bits2-3 = 2 -> q = 32-32 = 0
  EXPECT_EQ(y[32], 0.0f);
  // element 64: ql[0] high 0, qh[0] bits4-5 = 1 -> q = 16-32 = -16, scale[4]=5 -> -20
  EXPECT_EQ(y[64], -20.0f);
  // element 96+17: ql[49] high (49/8%16=6), qh[17]=0x0a bits6-7 = 0 -> q=-26, scale[1+6]=-8 -> 52
  EXPECT_EQ(y[113], 52.0f);
  // second half, element 128: ql[64] low 0, qh[32]=0x3b bits0-1 = 3 -> q=16, scale[8]=9 -> 36
  EXPECT_EQ(y[128], 36.0f);
  for (int e = 0; e < 256; ++e) {
    const int half = e / 128, within = e % 128, k = within / 32, l = within % 32;
    const uint8_t low = b.ql[64 * half + l + 32 * (k % 2)];
    const int nibble = k < 2 ? (low & 15) : (low >> 4);
    const int top = (b.qh[32 * half + l] >> (2 * k)) & 3;
    const int scale = b.scales[8 * half + l / 16 + 2 * k];
    ASSERT_EQ(y[e], 0.25f * scale * ((nibble | (top << 4)) - 32)) << e;
  }
}

TEST(Dequantize, RowsOfSeveralBlocks) {
  BlockQ8_0 b[2]{};
  b[0].d = 0x3c00;
  b[1].d = 0x4000;  // 2.0
  for (int j = 0; j < 32; ++j) b[0].qs[j] = b[1].qs[j] = static_cast<int8_t>(j);
  std::vector<float> y(64);
  dequantize_row(GgmlType::Q8_0, b, y.data(), 64);
  EXPECT_EQ(y[31], 31.0f);
  EXPECT_EQ(y[63], 62.0f);
}

// ---- bit-identity with llama.cpp ----

// Exact multiples of 2^-10 from a 32-bit LCG, with sub-blocks of different spread and a
// few outliers, so every platform feeds identical floats to the quantizers.
std::vector<float> lcg_signal(int n, uint32_t seed) {
  std::vector<float> x(n);
  uint32_t s = seed;
  for (int i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    int v = static_cast<int>((s >> 9) % 2001) - 1000;
    float spread = static_cast<float>(1 + (i / 32) % 4);
    if (i % 37 == 5) spread *= 4;
    x[i] = static_cast<float>(v) * spread * 0x1p-10f;
  }
  return x;
}

std::vector<uint8_t> from_hex(const char* hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; hex[i] && hex[i + 1]; i += 2) out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex + i, 2), nullptr, 16)));
  return out;
}

// Generated once by a throwaway program linked to ggml's libggml-base (ggml-org/ggml
// commit d99724f2, built under /tmp, not part of this repository): it fed
// lcg_signal(n, seed) to quantize_row_<type>_ref and printed the bytes as hex.
// (n, seed) = (64, 1) q8_0, (64, 2) q4_0, (256, 3) q4_K, (256, 4) q5_K, (256, 5) q6_K.
constexpr const char* kExpectedQ8_0 =
    "5726eedd1fda1f81250ce41c230ff008ff20daf30926eeeb1319e92107e5f3230fe6de2354738807"
    "97fae1df82df75280b1de881c5659cf2923e7514b9780244a96710dc";
constexpr const char* kExpectedQ4_0 =
    "fe2eff0551537ec48d726dfbf0b634baeb8b9ab30ff2a1f5b3bcf6d6d665c7a1bef2457a";
constexpr const char* kExpectedQ4_K =
    "2d21342f61adbfb2226a7f5d9e0e83dd8cdcbcdbbc70edbc8aec0eeaea7ccebcaeadbe9ddb7989d9"
    "8c796bdbaa6ceedde8daab1bbb9c4da8ae3b1a29881a0950ace89a49fbeeb84b7c8d3d67ba3f0a78"
    "435285622474613256065374703366153371344321237324316f61215364f243f2be372b51213662"
    "90bc6208be9bb12f2264ddb378a29ac440039d676fd14eea";
constexpr const char* kExpectedQ5_K =
    "e61fb831486377f5062479f354d208ffceafcf0fcec6af8ee78eecafa6cfceeaef8fafcee6cfcf87"
    "cfdeefafcececeee76eb7bf35dd033d6cd4d04fe9b65f4ce4fe1d4b44eb2643737b2873fd6f91dc4"
    "4fed6c4dcdebe227fd7a1db3f857381007b58ccf079622e83cf4728b4e9aeacb7630ac363a375b63"
    "47e7a9f0487393a2c9c111732658d6b0d6ef232080f70a5214cd2d0792f20302b88adba28cf660d0"
    "29109762e47c936e052d0779aef446cf";
constexpr const char* kExpectedQ6_K =
    "f661525756d02f0bc8ec3e3dc81bb1054fc21cf49bbcda6dfab6e54110849017fc87254b483c010c"
    "fe6e3007cadb4d53635a37ea9500919c1517ae1e806823ee47439b2d401d0b461ed250c5f4ca8cc8"
    "db6a8be458da5ebc16c1a54547ac135c4ccd3a0a92b47bcbb1fb50a83c7392337e5baceaba376728"
    "0f1af05f98f21106d5e72ba9aa54e9295696a0295aa5dbc6839f821ed57c8ae23c3fcbd2e0cccede"
    "8277853f815f46716966a09ea6a087b916f615e93936e569c5182a8535c95296edf5cdea89212a24"
    "0ae3eabb201c802b8219";

struct IdentityCase {
  GgmlType type;
  int n;
  uint32_t seed;
  const char* expected;
};

class BitIdentity : public ::testing::TestWithParam<IdentityCase> {};

TEST_P(BitIdentity, MatchesLlamaCppReferenceQuantizer) {
  const IdentityCase& c = GetParam();
  auto x = lcg_signal(c.n, c.seed);
  std::vector<uint8_t> out(row_bytes(c.type, c.n), 0xcd);
  quantize_row(c.type, x.data(), out.data(), c.n);
  EXPECT_EQ(out, from_hex(c.expected)) << type_name(c.type);
}

INSTANTIATE_TEST_SUITE_P(Quant, BitIdentity,
                         ::testing::Values(IdentityCase{GgmlType::Q8_0, 64, 1, kExpectedQ8_0},
                                           IdentityCase{GgmlType::Q4_0, 64, 2, kExpectedQ4_0},
                                           IdentityCase{GgmlType::Q4_K, 256, 3, kExpectedQ4_K},
                                           IdentityCase{GgmlType::Q5_K, 256, 4, kExpectedQ5_K},
                                           IdentityCase{GgmlType::Q6_K, 256, 5, kExpectedQ6_K}),
                         [](const auto& info) { return std::string(type_name(info.param.type)); });

TEST(Quantize, Q8_0RoundsTiesAwayFromZero) {
  // amax 127 gives d = 1 exactly, so x/d is x and the rounding rule is visible.
  float x[32] = {127.0f, 2.5f, -2.5f, 0.5f, -0.5f, 1.4999999f, -126.5f};
  BlockQ8_0 b{};
  quantize_row(GgmlType::Q8_0, x, &b, 32);
  EXPECT_EQ(b.d, 0x3c00);
  const int8_t expected[7] = {127, 3, -3, 1, -1, 1, -127};
  for (int j = 0; j < 7; ++j) EXPECT_EQ(b.qs[j], expected[j]) << j;
  EXPECT_EQ(b.qs[31], 0);
}

TEST(Quantize, Q4_0PutsTheExtremeOnLevelZero) {
  // The value of largest magnitude (-8) sets d = -8 / -8 = 1; q = trunc(x/d + 8.5).
  float x[32] = {-8.0f, 7.0f, 7.4f, 0.4f, -0.6f, 0.5f, -1.5f};
  BlockQ4_0 b{};
  quantize_row(GgmlType::Q4_0, x, &b, 32);
  EXPECT_EQ(b.d, 0x3c00);
  const int expected[7] = {0, 15, 15, 8, 7, 9, 7};
  for (int j = 0; j < 7; ++j) EXPECT_EQ(b.qs[j] & 15, expected[j]) << j;
  // A positive extreme gives a negative d: 8 -> d = -1, q = trunc(-8 + 8.5) = 0.
  float y[32] = {8.0f, -7.0f};
  quantize_row(GgmlType::Q4_0, y, &b, 32);
  EXPECT_EQ(b.d, 0xbc00);
  EXPECT_EQ(b.qs[0] & 15, 0);
  EXPECT_EQ(b.qs[1] & 15, 15);
}

// ---- round trips ----

double relative_rmse(GgmlType type, const std::vector<float>& x) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(row_bytes(type, n));
  std::vector<float> y(n);
  quantize_row(type, x.data(), q.data(), n);
  dequantize_row(type, q.data(), y.data(), n);
  double err = 0, ref = 0;
  for (int64_t i = 0; i < n; ++i) {
    err += double(y[i] - x[i]) * (y[i] - x[i]);
    ref += double(x[i]) * x[i];
  }
  return std::sqrt(err / ref);
}

TEST(RoundTrip, RelativeErrorPerType) {
  // Bounds are llama.cpp's own reference quantizers' error on this same signal, measured
  // with the /tmp build (q8_0 .007361, q4_0 .116578, q4_K .078136, q5_K .039581, q6_K .021471),
  // plus 1%: the K-quants must search scales as well as the reference does.
  auto x = lcg_signal(256 * 64, 99);
  EXPECT_LT(relative_rmse(GgmlType::F32, x), 1e-30);
  EXPECT_LT(relative_rmse(GgmlType::F16, x), 3e-4);   // 2^-11 relative, halved on average
  EXPECT_LT(relative_rmse(GgmlType::BF16, x), 2.5e-3);
  EXPECT_LT(relative_rmse(GgmlType::Q8_0, x), 0.007361 * 1.01);
  EXPECT_LT(relative_rmse(GgmlType::Q4_0, x), 0.116578 * 1.01);
  EXPECT_LT(relative_rmse(GgmlType::Q4_K, x), 0.078136 * 1.01);
  EXPECT_LT(relative_rmse(GgmlType::Q5_K, x), 0.039581 * 1.01);
  EXPECT_LT(relative_rmse(GgmlType::Q6_K, x), 0.021471 * 1.01);
}

TEST(RoundTrip, Q8_0ErrorWithinHalfAStep) {
  auto x = lcg_signal(32 * 50, 7);
  std::vector<BlockQ8_0> q(50);
  std::vector<float> y(x.size());
  quantize_row(GgmlType::Q8_0, x.data(), q.data(), 32 * 50);
  dequantize_row(GgmlType::Q8_0, q.data(), y.data(), 32 * 50);
  for (size_t i = 0; i < x.size(); ++i) {
    const float d = fp16_to_fp32(q[i / 32].d);
    // half a step, plus what rounding d itself to fp16 costs at |q| <= 127
    EXPECT_LE(std::fabs(y[i] - x[i]), d * (0.5f + 127 * 0x1p-11f)) << i;
  }
}

TEST(RoundTrip, ZeroAndConstantBlocks) {
  for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    std::vector<float> zeros(256, 0.0f), y(256, 1.0f);
    std::vector<uint8_t> q(row_bytes(t, 256));
    quantize_row(t, zeros.data(), q.data(), 256);
    dequantize_row(t, q.data(), y.data(), 256);
    for (float v : y) ASSERT_EQ(v, 0.0f) << type_name(t);
    // A constant block must come back close (Q4_K/Q5_K represent it through the min).
    std::vector<float> c(256, -0.75f);
    quantize_row(t, c.data(), q.data(), 256);
    dequantize_row(t, q.data(), y.data(), 256);
    for (float v : y) ASSERT_NEAR(v, -0.75f, 0.75f * 0.01f) << type_name(t);
  }
}

TEST(RoundTrip, NonFiniteInputDoesNotCrash) {
  // Nothing sensible can come out, but quantizing garbage must stay defined behaviour
  // (checked under the sanitizer build).
  std::vector<float> x = lcg_signal(256, 3);
  x[3] = std::numeric_limits<float>::quiet_NaN();
  x[100] = std::numeric_limits<float>::infinity();
  x[200] = -std::numeric_limits<float>::infinity();
  for (GgmlType t : {GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q5_K,
                     GgmlType::Q6_K}) {
    std::vector<uint8_t> q(row_bytes(t, 256));
    std::vector<float> y(256);
    quantize_row(t, x.data(), q.data(), 256);
    dequantize_row(t, q.data(), y.data(), 256);
  }
}

// ---- errors ----

TEST(QuantErrors, UnsupportedTypeIsNamed) {
  float x[32] = {};
  uint8_t buf[64] = {};
  try {
    dequantize_row(GgmlType::Q4_1, buf, x, 32);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q4_1"), std::string::npos) << e.what();
  }
  try {
    quantize_row(GgmlType::Q2_K, x, buf, 256);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q2_K"), std::string::npos) << e.what();
  }
  EXPECT_THROW(dequantize_row(static_cast<GgmlType>(99), buf, x, 32), Error);
}

TEST(QuantErrors, RowNotAMultipleOfTheBlock) {
  float x[64] = {};
  uint8_t buf[256] = {};
  EXPECT_THROW(dequantize_row(GgmlType::Q8_0, buf, x, 33), Error);
  EXPECT_THROW(quantize_row(GgmlType::Q4_K, x, buf, 64), Error);
  EXPECT_THROW(quantize_row(GgmlType::F32, x, buf, -1), Error);
}

}  // namespace
}  // namespace mlamoe
