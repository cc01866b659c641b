// What a model-config fuzz input goes through: ModelConfig from a GGUF file's metadata or
// from HF config.json text, then every number `mlamoe info` derives from an accepted
// config. Shared by fuzz/config_{gguf,json}_fuzz.cpp and the ctest replay of their corpus
// and crash regressions (tests/model/config_regressions_test.cpp). Error is the only
// acceptable failure.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/error.h"
#include "format/gguf.h"
#include "model/config.h"

namespace mlamoe::test {

inline void exercise_model_config(const ModelConfig& c) {
  (void)c.params_total();
  (void)c.params_active();
  (void)c.params_mtp();
  (void)c.kv_values_per_token_layer();
  (void)c.mha_values_per_token_layer();
  (void)c.softmax_scale();
}

inline void exercise_config_gguf(const uint8_t* data, size_t size) {
  try {
    auto f = GgufFile::from_memory(data, size, "fuzz.gguf");
    exercise_model_config(ModelConfig::from_gguf(*f));
  } catch (const Error&) {
  }
}

inline void exercise_config_json(const uint8_t* data, size_t size) {
  try {
    exercise_model_config(
        ModelConfig::from_hf_json_text(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json"));
  } catch (const Error&) {
  }
}

}  // namespace mlamoe::test
