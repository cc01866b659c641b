// The committed fuzz inputs of one target: its seed corpus (fuzz/corpus/<target>) and
// the inputs that once broke it (tests/<area>/regressions/<target>), each handed over as
// an exact-size heap copy so a sanitizer build catches any read past its end. Used by
// the tests/*/fuzz_replay*_test.cpp replays that keep every corpus fixed in plain ctest.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "test_paths.h"

namespace mlamoe::test {

template <typename Exercise>
void replay_fuzz_inputs(const std::string& target, const std::string& area, size_t min_corpus, Exercise exercise) {
  const std::string root = source_dir();
  std::vector<std::string> files;
  size_t corpus = 0;
  for (const std::string& dir : {root + "/fuzz/corpus/" + target, root + "/tests/" + area + "/regressions/" + target}) {
    if (!std::filesystem::is_directory(dir)) continue;
    for (const auto& e : std::filesystem::directory_iterator(dir))
      if (e.is_regular_file()) files.push_back(e.path().string());
    if (corpus == 0) corpus = files.size();
  }
  ASSERT_GE(corpus, min_corpus) << "the committed corpus of " << target << " is missing";
  for (const auto& path : files) {
    SCOPED_TRACE(path);
    std::ifstream in(path, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::unique_ptr<uint8_t[]> copy(new uint8_t[bytes.size() + !bytes.size()]);
    std::memcpy(copy.get(), bytes.data(), bytes.size());
    exercise(copy.get(), bytes.size());
  }
}

}  // namespace mlamoe::test
