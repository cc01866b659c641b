// Replays the model-config fuzz corpora and the inputs that once crashed, hung or hit
// undefined behaviour in ModelConfig (tests/format/regressions/config_*/, see
// docs/reliability.md) through the fuzz targets' own code, so plain ctest keeps them fixed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/error.h"
#include "format/config_exercise.h"
#include "test_paths.h"

namespace mlamoe {
namespace {

std::vector<std::vector<uint8_t>> read_all(const std::vector<std::string>& dirs, size_t* count) {
  std::vector<std::vector<uint8_t>> out;
  for (const auto& dir : dirs) {
    if (!std::filesystem::is_directory(dir)) continue;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      std::ifstream in(e.path(), std::ios::binary);
      out.emplace_back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    }
  }
  *count = out.size();
  return out;
}

TEST(ConfigFuzzReplay, GgufMetadata) {
  const std::string root = test::source_dir();
  size_t n = 0;
  for (const auto& bytes : read_all({root + "/fuzz/corpus/config_gguf", root + "/tests/format/regressions/config_gguf"}, &n))
    test::exercise_config_gguf(bytes.data(), bytes.size());
  EXPECT_GE(n, 5u);
}

TEST(ConfigFuzzReplay, HfJson) {
  const std::string root = test::source_dir();
  size_t n = 0;
  for (const auto& bytes : read_all({root + "/fuzz/corpus/config_json", root + "/tests/format/regressions/config_json"}, &n))
    test::exercise_config_json(bytes.data(), bytes.size());
  EXPECT_GE(n, 10u);
}

TEST(ConfigFuzzReplay, RegressionsAreRefusedWithOneLine) {
  // Each of these once crashed or hung; now each is a clean Error.
  const std::string dir = test::source_dir() + "/tests/format/regressions/config_json";
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    SCOPED_TRACE(e.path().string());
    std::ifstream in(e.path());
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    try {
      ModelConfig::from_hf_json_text(text, e.path().filename().string());
      ADD_FAILURE() << "accepted";
    } catch (const Error& err) {
      EXPECT_EQ(std::string(err.what()).find('\n'), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace mlamoe
