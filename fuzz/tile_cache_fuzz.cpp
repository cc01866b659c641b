// libFuzzer target: the tile-cache reader (TileCache::open, then read_in and every tile
// byte compared with what was written); tests/model/tile_cache_exercise.h.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "model/tile_cache_exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path =
      (std::filesystem::temp_directory_path() / ("mlamoe-fuzz-tile-cache-" + std::to_string(getpid()))).string();
  mlamoe::test::exercise_tile_cache(data, size, path);
  return 0;
}
