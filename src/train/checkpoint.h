// Checkpoint directories (see train.h) from the libtorch side. Include from train/*.cpp only.
#pragma once
#include <string>

#include "train/deepseek.h"

namespace mlamoe::train {

// config.json + model.safetensors -> model; the config text is returned for re-saving.
DeepSeek load_model_dir(const std::string& dir, std::string* config_text = nullptr);
// Writes config.json and model.safetensors atomically (each file).
void save_model_dir(DeepSeek& model, const std::string& config_text, const std::string& dir);
// Optimizer state through torch's archive, written atomically.
void save_optimizer(torch::optim::Optimizer& opt, const std::string& path);
void load_optimizer(torch::optim::Optimizer& opt, const std::string& path);

// Linear warmup to `peak`, then cosine decay to peak * min_ratio at `total`.
double lr_at(int64_t step, int64_t warmup, int64_t total, double peak, double min_ratio);
// Sets the learning rate of every parameter group of an AdamW optimizer.
void set_lr(torch::optim::AdamW& opt, double lr);

}  // namespace mlamoe::train
