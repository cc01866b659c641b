// The trainer end to end at CI scale (seconds): loss goes down, checkpoints resume
// exactly, auxiliary-loss-free balancing steers routing, and the exported GGUF runs
// in the engine with libtorch's logits.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/files.h"
#include "format/gguf.h"
#include "model/engine.h"
#include "model/model.h"
#include "test_paths.h"
#include "tokenizer/tokenizer.h"
#include "train/chat_vocab.h"
#include "train/checkpoint.h"
#include "train/train.h"

using namespace mlamoe;
using namespace mlamoe::train;

namespace {

// A miniature of the shipped model: MLA with q compression, 1 dense + 2 MoE layers,
// sigmoid routing over 4 experts in 2 groups.
const char* kTinyConfig = R"({
 "model_type": "deepseek_v3", "vocab_size": 263, "hidden_size": 32, "intermediate_size": 64,
 "moe_intermediate_size": 16, "num_hidden_layers": 3, "first_k_dense_replace": 1,
 "num_attention_heads": 2, "n_routed_experts": 4, "n_shared_experts": 1, "num_experts_per_tok": 2,
 "n_group": 2, "topk_group": 1, "scoring_func": "sigmoid", "routed_scaling_factor": 1.5,
 "topk_method": "noaux_tc", "norm_topk_prob": true, "q_lora_rank": 24, "kv_lora_rank": 16,
 "qk_nope_head_dim": 8, "qk_rope_head_dim": 8, "v_head_dim": 8, "rms_norm_eps": 1e-6,
 "rope_theta": 10000.0, "max_position_embeddings": 96})";

std::string tiny_config_path() {
  static std::string path = [] {
    std::string p = test::temp_dir() + "/tiny-config.json";
    write_file_atomic(p, kTinyConfig);
    return p;
  }();
  return path;
}

TrainOptions tiny_options(const std::string& out) {
  TrainOptions o;
  o.config = tiny_config_path();
  o.data = "arith";
  o.out_dir = out;
  o.steps = 40;
  o.batch = 8;
  o.seq_len = 64;
  o.warmup = 5;
  o.lr = 3e-3;
  o.gamma = 0.01;
  o.eval_every = 20;
  o.save_every = 20;
  o.val_batches = 2;
  o.threads = 1;
  o.export_gguf = false;
  return o;
}

std::vector<double> losses(const std::string& dir) {
  auto st = nlohmann::json::parse(read_file(dir + "/trainer_state.json"));
  return st["history"]["loss"].get<std::vector<double>>();
}

double mean(const std::vector<double>& v, size_t from, size_t to) {
  double s = 0;
  for (size_t i = from; i < to; ++i) s += v[i];
  return s / double(to - from);
}

TEST(Trainer, LossGoesDown) {
  auto dir = test::temp_dir() + "/loss";
  auto s = run_training(tiny_options(dir));
  auto l = losses(dir);
  ASSERT_EQ(l.size(), 40u);
  EXPECT_LT(mean(l, 35, 40), mean(l, 0, 5) - 1.0);  // from ~ln(263) = 5.6 to well below
  EXPECT_TRUE(std::isfinite(s.val_loss));
  EXPECT_LT(s.val_loss, 5.0);
  for (const char* f : {"config.json", "model.safetensors", "optimizer.pt", "loss.svg", "expert_load.svg", "expert_load.jsonl"})
    EXPECT_TRUE(std::filesystem::exists(dir + "/" + f)) << f;
  EXPECT_NE(read_file(dir + "/loss.svg").find("<polyline"), std::string::npos);
}

TEST(Trainer, ResumeContinuesExactlyWhereItStopped) {
  auto straight = test::temp_dir() + "/straight", interrupted = test::temp_dir() + "/interrupted";
  auto o = tiny_options(straight);
  o.steps = 24;
  run_training(o);
  o.out_dir = interrupted;
  o.stop_at = 11;
  run_training(o);
  EXPECT_EQ(losses(interrupted).size(), 11u);
  o.stop_at = 0;
  run_training(o);  // resumes from step 11
  // Weights, routing biases, optimizer moments and the data stream are restored, and
  // every parameter has a (zero) gradient from the start, so an expert that receives no
  // tokens right after the resume is stepped exactly as in the uninterrupted run: the
  // two runs are bit-identical.
  auto la = losses(straight), lb = losses(interrupted);
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) EXPECT_EQ(la[i], lb[i]) << i;
  auto a = read_safetensors(straight + "/model.safetensors"), b = read_safetensors(interrupted + "/model.safetensors");
  ASSERT_EQ(a.size(), b.size());
  for (auto& [name, t] : a) EXPECT_EQ(t.data, b.at(name).data) << name;
}

TEST(Trainer, AuxLossVariantHasNoRoutingBias) {
  auto dir = test::temp_dir() + "/auxloss";
  auto o = tiny_options(dir);
  o.balance = Balance::AuxLoss;
  o.steps = 10;
  run_training(o);
  auto cfg = ModelConfig::from_hf_json(dir + "/config.json");
  EXPECT_FALSE(cfg.has_routing_bias);
  for (auto& [name, t] : read_safetensors(dir + "/model.safetensors"))
    EXPECT_EQ(name.find("e_score_correction_bias"), std::string::npos);
}

TEST(Balancing, BiasRisesForUnderloadedExpertsAndFallsForOverloaded) {
  auto bias = torch::zeros({4});
  update_routing_bias(bias, torch::tensor({10.f, 2.f, 4.f, 0.f}), 0.5);  // mean 4
  EXPECT_FLOAT_EQ(bias[0].item<float>(), -0.5f);
  EXPECT_FLOAT_EQ(bias[1].item<float>(), 0.5f);
  EXPECT_FLOAT_EQ(bias[2].item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(bias[3].item<float>(), 0.5f);
}

// Routing with the bias changes which experts are chosen, never the weights' source:
// the gate weights of the chosen experts come from the unbiased scores.
TEST(Balancing, BiasSteersSelectionOnly) {
  ModelConfig c = ModelConfig::from_hf_json(tiny_config_path());
  c.n_group = 1, c.topk_group = 1;
  Gate gate(c);
  torch::manual_seed(3);
  gate->weight.data().normal_(0, 1);
  auto x = torch::randn({64, c.hidden_size});
  torch::Tensor scores;
  auto [w0, i0] = gate->forward(x, &scores);
  gate->e_score_correction_bias.fill_(0).index_put_({0}, 10.0);  // expert 0 always chosen
  auto [w1, i1] = gate->forward(x, &scores);
  EXPECT_TRUE((i1 == 0).any(1).all().item<bool>());
  auto picked = scores.gather(1, i1);
  EXPECT_TRUE(torch::allclose(w1, picked / picked.sum(-1, true) * c.routed_scaling_factor));
}

TEST(Export, EngineLogitsMatchLibtorch) {
  auto dir = test::temp_dir() + "/export";
  auto o = tiny_options(dir);
  o.steps = 15;
  run_training(o);
  export_gguf(dir, dir + "/model.gguf");

  auto model = load_model_dir(dir);
  model->eval();
  auto ids = ChatVocab::chat_prompt("What is 123+45?");
  for (int32_t t : ChatVocab::encode("<think>3+5=8,2+4=6,1=1</think>168")) ids.push_back(t);
  torch::NoGradGuard no_grad;
  auto want = model->forward(torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0)).squeeze(0);

  auto gguf_model = Model::load(dir + "/model.gguf");
  EXPECT_EQ(gguf_model->config().vocab_size, ChatVocab::kSize);
  EXPECT_TRUE(gguf_model->config().has_routing_bias);
  for (AttentionMode mode : {AttentionMode::Absorbed, AttentionMode::Naive}) {
    EngineOptions eo;
    eo.attention = mode;
    Engine engine(*gguf_model, eo);
    Batch b;
    for (size_t i = 0; i < ids.size(); ++i) b.add(ids[i], int32_t(i), 0);
    auto got_v = engine.forward(b);
    auto got = torch::from_blob(got_v.data(), {int64_t(ids.size()), ChatVocab::kSize}, torch::kFloat32);
    double rel = ((got - want).abs().max() / want.abs().max()).item<double>();
    EXPECT_LT(rel, 1e-4) << (mode == AttentionMode::Absorbed ? "absorbed" : "naive");
  }
}

TEST(Export, VocabularyIsReadByTheProjectTokenizer) {
  auto dir = test::temp_dir() + "/export-vocab";
  auto o = tiny_options(dir);
  o.steps = 1;
  run_training(o);
  export_gguf(dir, dir + "/model.gguf");
  auto tok = Tokenizer::from_file(dir + "/model.gguf");
  std::string text = "<｜User｜>What is 907-18?<｜Assistant｜><think>17-8=9</think> é\n";
  auto expected = ChatVocab::encode(text);
  expected.insert(expected.begin(), ChatVocab::kBos);
  EXPECT_EQ(tok->encode(text), expected);
  EXPECT_EQ(tok->bos(), ChatVocab::kBos);
  EXPECT_EQ(tok->eos(), ChatVocab::kEos);
  EXPECT_TRUE(tok->is_end_of_generation(ChatVocab::kEos));
  EXPECT_FALSE(tok->chat_template().empty());
}

}  // namespace
