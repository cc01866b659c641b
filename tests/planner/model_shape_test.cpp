// ModelShape from a dense (Llama-style) config.json: hostile or malformed fields are one
// Error line naming the file and the field.
#include "planner/model_shape.h"

#include <gtest/gtest.h>

#include <string>

#include "common/error.h"

namespace mlamoe::planner {
namespace {

std::string error_of(const std::string& json) {
  try {
    ModelShape::from_dense_json_text(json, "dense.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

const std::string kFields =
    R"("vocab_size": 32000, "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,)"
    R"( "num_key_value_heads": 8, "intermediate_size": 11008)";

TEST(DenseModelShape, ReadsTheFields) {
  ModelShape m = ModelShape::from_dense_json_text("{" + kFields + R"(, "model_type": "llama"})", "dense.json");
  EXPECT_EQ(m.name, "llama");
  EXPECT_EQ(m.d_model, 4096);
  EXPECT_EQ(m.kv_heads, 8);
  EXPECT_EQ(m.head_dim, 128);
  EXPECT_EQ(ModelShape::from_dense_json_text("{" + kFields + R"(, "model_type": null})", "dense.json").name, "dense");
}

TEST(DenseModelShape, MalformedInputIsOneLineNamingTheField) {
  const std::pair<std::string, std::string> cases[] = {
      {"{", "dense.json: invalid JSON"},
      {"[1, 2]", "dense.json: expected a JSON object"},
      {R"({"hidden_size": 4096})", "dense.json: missing field vocab_size"},
      {"{" + kFields + R"(, "model_type": 7})", "dense.json: field model_type must be a string"},
      {R"({"vocab_size": -1})", "dense.json: field vocab_size must be a positive integer"},
  };
  for (const auto& [json, expected] : cases) {
    std::string msg = error_of(json);
    EXPECT_NE(msg.find(expected), std::string::npos) << json << " -> " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace mlamoe::planner
