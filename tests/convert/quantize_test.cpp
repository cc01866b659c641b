// mlamoe quantize (GGUF -> GGUF) and the per-tensor type plan.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "common/error.h"
#include "common/files.h"
#include "common/progress.h"
#include "convert/quant_plan.h"
#include "convert/quantize.h"
#include "convert/tensor_names.h"
#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "format/quant.h"
#include "model/config.h"
#include "test_paths.h"

namespace mlamoe {
namespace {

std::string fixture(const std::string& name, const std::string& file) {
  return test::shared_dir() + "/fixtures/" + name + "/" + file;
}

std::string quantize(const std::string& in, const std::string& type, const std::string& out_name) {
  Progress::set_quiet(true);
  QuantizeOptions o;
  o.in_path = in;
  o.out_path = test::temp_dir() + "/" + out_name;
  o.recipe = parse_recipe(type);
  quantize_gguf(o);
  return o.out_path;
}

std::vector<float> values(const GgufTensor& t) {
  std::vector<float> v(static_cast<size_t>(t.n_elements()));
  const size_t rb = row_bytes(t.type, t.ne[0]);
  for (int64_t r = 0; r < t.rows(); ++r) dequantize_row(t.type, t.data + r * rb, v.data() + r * t.ne[0], t.ne[0]);
  return v;
}

TEST(QuantPlan, RealShapesGetTheDocumentedTypes) {
  ModelConfig c = ModelConfig::from_hf_json(test::shared_dir() + "/configs/deepseek-v3.json");
  for (const char* name : {"Q4_K_M", "q5_K_M"}) {
    QuantRecipe mix = parse_recipe(name);
    EXPECT_TRUE(mix.k_m);
    const GgmlType base = mix.base;
    EXPECT_EQ(base, name[1] == '4' ? GgmlType::Q4_K : GgmlType::Q5_K);
    EXPECT_EQ(mix.name(), name[1] == '4' ? "q4_K_M" : "q5_K_M");
    for (const auto& t : tn::model_tensors(c)) {
      SCOPED_TRACE(t.name);
      GgmlType got = choose_type(mix, t, c.n_layers);
      if (t.is_vector() || t.role == tn::Role::Router) {
        EXPECT_EQ(got, GgmlType::F32);
      } else if (t.role == tn::Role::AttnKB) {
        EXPECT_EQ(got, GgmlType::Q8_0);  // rows of d_nope = 128: Q6_K does not fit, never fewer bits
      } else if (t.role == tn::Role::Output || t.role == tn::Role::AttnVB) {
        EXPECT_EQ(got, GgmlType::Q6_K);
      } else if (t.role == tn::Role::FfnDown || t.role == tn::Role::ExpertDown) {
        const int64_t l = t.layer, n = c.n_layers;
        bool more = l >= n || l < n / 8 || l >= 7 * n / 8 || (l - n / 8) % 3 == 2;
        EXPECT_EQ(got, more ? GgmlType::Q6_K : base);
      } else {
        EXPECT_EQ(got, base);
      }
      EXPECT_EQ(choose_type(parse_recipe("q8_0"), t, c.n_layers),
                t.is_vector() || t.role == tn::Role::Router ? GgmlType::F32 : GgmlType::Q8_0);
    }
  }
  EXPECT_EQ(fit_row_length(GgmlType::Q4_K, 128), GgmlType::Q4_0);
  EXPECT_EQ(fit_row_length(GgmlType::Q5_K, 96), GgmlType::Q8_0);
  EXPECT_EQ(fit_row_length(GgmlType::Q6_K, 24), GgmlType::F16);
  EXPECT_EQ(fit_row_length(GgmlType::Q4_0, 24), GgmlType::F16);
  EXPECT_EQ(fit_row_length(GgmlType::BF16, 7), GgmlType::BF16);
  EXPECT_THROW(parse_recipe("q2_K"), Error);
  EXPECT_THROW(parse_recipe("i32"), Error);
}

// Every type: the planned types, and each tensor within its format's error.
TEST(Quantize, EveryTypeStaysWithinItsError) {
  const std::string in = fixture("v3", "model.gguf");
  auto ref = GgufFile::open(in);
  ModelConfig cfg = ModelConfig::from_gguf(*ref);
  struct Bound {
    const char* type;
    double rel_rmse;
  } bounds[] = {{"f32", 0}, {"f16", 1e-3}, {"bf16", 5e-3}, {"q8_0", 1e-2}, {"q6_K", 3e-2},
                {"q5_K", 6e-2}, {"q4_K", 0.12}, {"q4_0", 0.12}, {"q4_K_M", 0.12}};
  for (auto& b : bounds) {
    SCOPED_TRACE(b.type);
    auto out = GgufFile::open(quantize(in, b.type, std::string("q_") + b.type + ".gguf"));
    QuantRecipe r = parse_recipe(b.type);
    EXPECT_EQ(out->metadata().size(), ref->metadata().size());
    EXPECT_EQ(out->get_string("tokenizer.ggml.pre"), ref->get_string("tokenizer.ggml.pre"));
    ASSERT_EQ(out->tensors().size(), ref->tensors().size());
    for (size_t i = 0; i < ref->tensors().size(); ++i) {
      const GgufTensor &a = ref->tensors()[i], &q = out->tensors()[i];
      SCOPED_TRACE(a.name);
      EXPECT_EQ(q.name, a.name);
      EXPECT_EQ(q.type, choose_type(r, tn::spec_from_name(a.name, a.ne), cfg.n_layers));
      std::vector<float> x = values(a), y = values(q);
      double err = 0, norm = 0;
      for (size_t k = 0; k < x.size(); ++k) {
        err += (x[k] - y[k]) * double(x[k] - y[k]);
        norm += double(x[k]) * x[k];
      }
      double rel = std::sqrt(err / norm);
      if (q.type == GgmlType::F32) EXPECT_EQ(rel, 0.0);
      else EXPECT_LE(rel, q.type == GgmlType::F16 ? 1e-3 : b.rel_rmse);
    }
  }
}

TEST(Quantize, TensorsAlreadyInTheTargetTypeAreCopiedNotRerounded) {
  std::string q8 = quantize(fixture("v2", "model.gguf"), "q8_0", "twice_1.gguf");
  std::string q8_again = quantize(q8, "q8_0", "twice_2.gguf");
  EXPECT_EQ(read_file(q8), read_file(q8_again));
}

TEST(Quantize, UnconvertibleTensorTypeIsNamed) {
  std::string in = test::temp_dir() + "/q2k.gguf";
  {
    GgufWriter w(in);
    w.set_string("general.architecture", "deepseek2");
    w.add_tensor("blk.0.attn_output.weight", {256, 2}, GgmlType::Q2_K);
    w.begin();
    std::string zeros(2 * 84, '\0');
    w.write_data(zeros.data(), zeros.size());
    w.finish();
  }
  try {
    quantize(in, "q8_0", "q2k_out.gguf");
    ADD_FAILURE();
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("blk.0.attn_output.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("q2_K"), std::string::npos) << msg;
  }
}

TEST(Quantize, RefusesToOverwriteItsInput) {
  std::string self = test::temp_dir() + "/self.gguf";
  write_file_atomic(self, read_file(fixture("v2", "model.gguf")));
  EXPECT_THROW(quantize(self, "q8_0", "self.gguf"), Error);
  EXPECT_EQ(read_file(self), read_file(fixture("v2", "model.gguf")));
}

}  // namespace
}  // namespace mlamoe
