// libFuzzer target: the tile-cache reader (TileCache::open, then read_in and every tile
// byte compared with what was written); tests/model/tile_cache_exercise.h.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_paths.h"
#include "model/tile_cache_exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = mlamoe::fuzz::scratch_dir("tile-cache") + "/cache";
  mlamoe::test::exercise_tile_cache(data, size, path);
  return 0;
}
