// HF -> GGUF conversion: the shared hf-f32/hf-bf16/hf-fp8 checkpoints and checkpoints
// written here (sharded, BF16 and FP8 block-scaled) must give exactly the weights of
// the fixture GGUFs (all were rounded onto the BF16/FP8 grids, so conversion is
// lossless); bad checkpoints fail with one line naming file and tensor.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "common/progress.h"
#include "convert/gen_random.h"
#include "convert/hf_convert.h"
#include "format/gguf.h"
#include "hf_checkpoint.h"
#include "test_paths.h"

namespace mlamoe {
namespace {

namespace fs = std::filesystem;
const char* kFixtures[] = {"v2lite", "v2", "v2-legacy-kvb", "v3"};

std::string fixture(const std::string& name, const std::string& file = "") {
  return test::shared_dir() + "/fixtures/" + name + (file.empty() ? "" : "/" + file);
}

std::string convert(const std::string& dir, const std::string& out_name, const std::string& type = "f32") {
  Progress::set_quiet(true);
  ConvertOptions o;
  o.hf_dir = dir;
  o.out_path = test::temp_dir() + "/" + out_name;
  o.recipe = parse_recipe(type);
  convert_hf(o);
  return o.out_path;
}

const float* f32(const GgufTensor& t) { return reinterpret_cast<const float*>(t.data); }

// Every tensor of `got` equals the fixture's, exactly (as numbers). A legacy fixture stores W_UK
// and W_UV as one attn_kv_b; the converter writes the split form, checked element-wise.
void expect_same_weights(const GgufFile& got, const GgufFile& ref) {
  ModelConfig c = ModelConfig::from_gguf(ref);
  size_t matched = 0;
  for (const GgufTensor& t : got.tensors()) {
    SCOPED_TRACE(t.name);
    ASSERT_EQ(t.type, GgmlType::F32);
    if (const GgufTensor* r = ref.tensor(t.name)) {
      ASSERT_EQ(t.ne, r->ne);
      // Equal as numbers (FP8 and BF16 sources may carry -0 where the fixture has +0).
      int64_t mismatches = 0;
      for (int64_t i = 0; i < t.n_elements(); ++i) mismatches += f32(t)[i] != f32(*r)[i];
      EXPECT_EQ(mismatches, 0);
      ++matched;
      continue;
    }
    std::string layer = t.name.substr(4, t.name.find('.', 4) - 4);
    const GgufTensor* kv_b = ref.tensor("blk." + layer + ".attn_kv_b.weight");
    ASSERT_TRUE(kv_b) << "tensor not in the fixture";
    const int64_t dn = c.qk_nope_head_dim, dv = c.v_head_dim, dc = c.kv_lora_rank;
    const bool is_k = t.name.find("attn_k_b") != std::string::npos;
    int64_t mismatches = 0;
    for (int64_t h = 0; h < c.n_heads; ++h)
      for (int64_t a = 0; a < (is_k ? dc : dv); ++a)
        for (int64_t b = 0; b < (is_k ? dn : dc); ++b) {
          float want = is_k ? f32(*kv_b)[(h * (dn + dv) + b) * dc + a] : f32(*kv_b)[(h * (dn + dv) + dn + a) * dc + b];
          float have = f32(t)[(h * (is_k ? dc : dv) + a) * (is_k ? dn : dc) + b];
          mismatches += want != have;
        }
    EXPECT_EQ(mismatches, 0);
    ++matched;
  }
  EXPECT_EQ(matched, got.tensors().size());
  EXPECT_GE(got.tensors().size(), ref.tensors().size());
}

TEST(HfConvert, SharedCheckpointsGiveTheFixtureWeightsExactly) {
  for (const char* name : kFixtures)
    for (const char* dtype : {"f32", "bf16", "fp8"}) {
      SCOPED_TRACE(std::string(name) + " " + dtype);
      auto got = GgufFile::open(convert(fixture(name, std::string("hf-") + dtype), std::string("shared_") + name + dtype + ".gguf"));
      auto ref = GgufFile::open(fixture(name, "model.gguf"));
      expect_same_weights(*got, *ref);
      ModelConfig a = ModelConfig::from_gguf(*got), b = ModelConfig::from_gguf(*ref);
      EXPECT_EQ(a.params_total(), b.params_total());
      EXPECT_EQ(a.has_routing_bias, b.has_routing_bias);
      EXPECT_EQ(a.softmax_scale(), b.softmax_scale());
    }
}

TEST(HfConvert, ShardedBf16AndFp8CheckpointsWrittenHereConvertExactly) {
  for (const char* name : kFixtures)
    for (const char* dtype : {"BF16", "F8_E4M3"}) {
      SCOPED_TRACE(std::string(name) + " " + dtype);
      auto ref = GgufFile::open(fixture(name, "model.gguf"));
      std::string dir = test::temp_dir() + "/hf_" + name + "_" + dtype;
      ASSERT_TRUE(test::write_hf_checkpoint(*ref, fixture(name, "config.json"), dir, dtype, 3))
          << "fixture weights are not on the " << dtype << " grid";
      auto got = GgufFile::open(convert(dir, std::string("written_") + name + dtype + ".gguf"));
      expect_same_weights(*got, *ref);
    }
}

// V3's MTP module: kept as block n_layers with its nextn.* tensors, or dropped.
TEST(HfConvert, MtpModulesAreKeptUnlessNoMtp) {
  Progress::set_quiet(true);
  auto cfg = nlohmann::json::parse(read_file(fixture("v3", "config.json")));
  cfg["num_nextn_predict_layers"] = 1;
  const std::string cfg_path = test::temp_dir() + "/mtp_config.json";
  write_file_atomic(cfg_path, cfg.dump());
  GenRandomOptions g;
  g.config_path = cfg_path;
  g.out_path = test::temp_dir() + "/mtp_random.gguf";
  g.seed = 9;
  gen_random(g);
  auto ref = GgufFile::open(g.out_path);
  EXPECT_EQ(ref->get_int("deepseek2.nextn_predict_layers", 0), 1);
  EXPECT_TRUE(ref->tensor("blk.4.nextn.eh_proj.weight"));
  EXPECT_TRUE(ref->tensor("blk.4.ffn_gate_exps.weight"));
  const std::string dir = test::temp_dir() + "/hf_mtp";
  ASSERT_TRUE(test::write_hf_checkpoint(*ref, cfg_path, dir, "F32", 2));
  auto got = GgufFile::open(convert(dir, "mtp.gguf"));
  expect_same_weights(*got, *ref);
  EXPECT_EQ(got->tensors().size(), ref->tensors().size());
  EXPECT_EQ(got->get_int("deepseek2.nextn_predict_layers", 0), 1);
  ConvertOptions o;
  o.hf_dir = dir;
  o.out_path = test::temp_dir() + "/no_mtp.gguf";
  o.no_mtp = true;
  convert_hf(o);
  auto cut = GgufFile::open(o.out_path);
  EXPECT_FALSE(cut->has("deepseek2.nextn_predict_layers"));
  for (const auto& t : cut->tensors()) EXPECT_EQ(t.name.rfind("blk.4.", 0), std::string::npos) << t.name;
  EXPECT_EQ(ModelConfig::from_gguf(*cut).params_total(), ModelConfig::from_gguf(*ref).params_total());
}

// ---- bad checkpoints ----

std::string bad_dir(const std::string& tag) {
  std::string dir = test::temp_dir() + "/bad_" + tag;
  fs::remove_all(dir);
  auto ref = GgufFile::open(fixture("v3", "model.gguf"));
  test::write_hf_checkpoint(*ref, fixture("v3", "config.json"), dir, "BF16", 2);
  return dir;
}

void expect_convert_error(const std::string& dir, const std::vector<std::string>& needles) {
  std::string out = test::temp_dir() + "/bad_out.gguf";
  try {
    convert(dir, "bad_out.gguf");
    ADD_FAILURE() << "conversion of " << dir << " succeeded";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  }
  EXPECT_FALSE(fs::exists(out));
}

TEST(HfConvert, MissingShard) {
  std::string dir = bad_dir("missing_shard");
  fs::remove(dir + "/model-2-of-2.safetensors");
  expect_convert_error(dir, {"model.safetensors.index.json", "model-2-of-2.safetensors", "does not exist"});
}

TEST(HfConvert, IndexNamesATensorTheShardLacks) {
  std::string dir = bad_dir("index_lies");
  std::string idx = read_file(dir + "/model.safetensors.index.json");
  auto j = nlohmann::json::parse(idx);
  j["weight_map"]["model.layers.1.mlp.gate.weight"] = "model-2-of-2.safetensors";  // it is in shard 1
  std::string owner = j["weight_map"]["model.norm.weight"];
  write_file_atomic(dir + "/model.safetensors.index.json", j.dump());
  expect_convert_error(dir, {"model.layers.1.mlp.gate.weight"});
  (void)owner;
}

TEST(HfConvert, TensorMissingFromTheCheckpoint) {
  std::string dir = bad_dir("missing_tensor");
  auto j = nlohmann::json::parse(read_file(dir + "/model.safetensors.index.json"));
  j["weight_map"].erase("model.layers.2.mlp.experts.7.up_proj.weight");
  write_file_atomic(dir + "/model.safetensors.index.json", j.dump());
  expect_convert_error(dir, {"model.safetensors.index.json", "model.layers.2.mlp.experts.7.up_proj.weight"});
}

TEST(HfConvert, WrongShapeAndWrongDtype) {
  auto ref = GgufFile::open(fixture("v3", "model.gguf"));
  for (const char* what : {"shape", "dtype"}) {
    SCOPED_TRACE(what);
    std::string dir = test::temp_dir() + "/bad_" + what;
    fs::create_directories(dir);
    write_file_atomic(dir + "/config.json", read_file(fixture("v3", "config.json")));
    std::vector<StTensorData> tensors;
    bool exact = true;
    for (auto& t : test::hf_tensors_of(*ref)) {
      auto enc = test::encode(t, "F32", &exact);
      if (t.name == "model.layers.0.self_attn.o_proj.weight") {
        if (std::string(what) == "shape") enc[0].shape = {enc[0].shape[1] / 2, enc[0].shape[0] * 2};
        else enc[0].dtype = "I32";
      }
      tensors.insert(tensors.end(), enc.begin(), enc.end());
    }
    write_safetensors(dir + "/model.safetensors", tensors);
    expect_convert_error(dir, {dir + "/model.safetensors", "model.layers.0.self_attn.o_proj.weight",
                               std::string(what) == "shape" ? "expected [64, 64]" : "I32"});
  }
}

TEST(HfConvert, UnsupportedArchitecture) {
  std::string dir = bad_dir("arch");
  auto j = nlohmann::json::parse(read_file(dir + "/config.json"));
  j["architectures"] = {"LlamaForCausalLM"};
  write_file_atomic(dir + "/config.json", j.dump());
  expect_convert_error(dir, {dir + "/config.json", "LlamaForCausalLM"});
  j["architectures"] = {"DeepseekV3ForCausalLM"};
  j["model_type"] = "llama";
  write_file_atomic(dir + "/config.json", j.dump());
  expect_convert_error(dir, {dir + "/config.json", "llama"});
}

TEST(HfConvert, NotACheckpoint) {
  std::string dir = test::temp_dir() + "/empty_dir";
  fs::create_directories(dir);
  expect_convert_error(dir, {dir, "config.json"});
  write_file_atomic(dir + "/config.json", read_file(fixture("v3", "config.json")));
  expect_convert_error(dir, {dir, "safetensors"});
}

}  // namespace
}  // namespace mlamoe
