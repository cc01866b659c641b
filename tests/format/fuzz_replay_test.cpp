// Replays the GGUF fuzz corpus and every input that once broke the reader through the
// fuzz target's own code (gguf_exercise.h), so plain ctest (no clang needed) keeps them
// fixed. Each input runs from an exact-size heap copy, so the sanitizer build catches
// any read past its end.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "gguf_exercise.h"
#include "test_paths.h"

namespace mlamoe {
namespace {

std::vector<std::string> inputs_in(const std::vector<std::string>& dirs) {
  std::vector<std::string> files;
  for (const auto& dir : dirs) {
    if (!std::filesystem::is_directory(dir)) continue;
    for (const auto& e : std::filesystem::directory_iterator(dir))
      if (e.is_regular_file()) files.push_back(e.path().string());
  }
  return files;
}

TEST(FuzzReplay, GgufCorpusAndRegressions) {
  const std::string root = test::source_dir();
  auto files = inputs_in({root + "/fuzz/corpus/gguf", root + "/tests/format/regressions/gguf"});
  ASSERT_GE(files.size(), 10u) << "the committed corpus is missing";
  for (const auto& path : files) {
    SCOPED_TRACE(path);
    std::ifstream in(path, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::unique_ptr<uint8_t[]> copy(new uint8_t[bytes.size() + !bytes.size()]);
    std::memcpy(copy.get(), bytes.data(), bytes.size());
    test::exercise_gguf(copy.get(), bytes.size());
  }
}

}  // namespace
}  // namespace mlamoe
