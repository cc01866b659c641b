// What a tile-cache fuzz input goes through, shared by fuzz/tile_cache_fuzz.cpp and the
// ctest replay (tests/model/tile_cache_test.cpp, FuzzReplay.TileCacheCorpus). The cache
// expected is a fixed two-matrix layout and fingerprint, and its head (header, table,
// checksum) comes from a cache TileCache::write makes, so only the head's length is
// restated here. The input's first byte holds flags that repair what a mutation almost
// never gets right by chance: bit 0 the head's fields before the checksum, bit 1 the
// checksum, bit 2 the tiles' length. The rest is the head's bytes, then the tiles, which
// go at the format's 2 MiB-aligned tile offset (a hole in between), so a small input
// makes a whole cache. TileCache::open must refuse with a reason, or accept only a
// complete file whose tiles then read in and hold exactly the bytes written.
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/progress.h"
#include "model/tile_cache.h"

namespace mlamoe::test {

inline void check_tile_cache(bool ok) {
  if (!ok) __builtin_trap();
}

constexpr uint64_t kFuzzFingerprint = 0x6d6c616d6f655449ull;
// src/model/tile_cache.cpp: Header (48 bytes), one Entry (40) per matrix, the checksum (8).
constexpr size_t kTileCacheHeadBytes = 48 + 2 * 40 + 8;

inline const std::vector<TiledMatrix>& fuzz_tile_layout() {
  static const std::vector<TiledMatrix> layout = {{GgmlType::Q8_0, 16, 64, 0, 1088}, {GgmlType::Q4_0, 32, 32, 1088, 576}};
  return layout;
}

struct ValidTileCache {
  std::string head;  // kTileCacheHeadBytes
  uint64_t tiles_offset = 0, tile_bytes = 0;
};

// A valid cache of fuzz_tile_layout(), written once through `scratch`.
inline const ValidTileCache& valid_tile_cache(const std::string& scratch) {
  static const ValidTileCache v = [&] {
    const std::vector<TiledMatrix>& layout = fuzz_tile_layout();
    ValidTileCache c;
    c.tile_bytes = tiled_total_bytes(layout);
    const std::vector<uint8_t> tiles(c.tile_bytes, 0x5A);
    TileCache::write(scratch, kFuzzFingerprint, layout, tiles.data());
    std::ifstream in(scratch, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    check_tile_cache(bytes.size() > c.tile_bytes + kTileCacheHeadBytes);
    c.tiles_offset = bytes.size() - c.tile_bytes;
    c.head = bytes.substr(0, kTileCacheHeadBytes);
    // The head's length above must be the format's: it ends with the checksum (never 8
    // zero bytes in practice), and only padding follows it.
    const auto zero = [](char b) { return b == 0; };
    check_tile_cache(!std::all_of(bytes.begin() + kTileCacheHeadBytes - 8, bytes.begin() + kTileCacheHeadBytes, zero));
    check_tile_cache(std::all_of(bytes.begin() + kTileCacheHeadBytes, bytes.begin() + static_cast<std::ptrdiff_t>(c.tiles_offset), zero));
    return c;
  }();
  return v;
}

inline void exercise_tile_cache(const uint8_t* data, size_t size, const std::string& path) {
  Progress::set_quiet(true);
  const ValidTileCache& valid = valid_tile_cache(path + ".valid");
  if (size == 0) return;
  const uint8_t flags = data[0];
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string head = body.substr(0, kTileCacheHeadBytes);
  std::string tiles = body.size() > kTileCacheHeadBytes ? body.substr(kTileCacheHeadBytes) : std::string();
  const size_t fields = kTileCacheHeadBytes - 8;
  if (flags & 1) {
    head.resize(std::max(head.size(), fields));
    head.replace(0, fields, valid.head, 0, fields);
  }
  if (flags & 2) {
    head.resize(kTileCacheHeadBytes);
    head.replace(fields, 8, valid.head, fields, 8);
  }
  if (flags & 4) tiles.resize(valid.tile_bytes, '\x5A');
  const int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644);
  check_tile_cache(fd >= 0);
  bool written = ::write(fd, head.data(), head.size()) == static_cast<ssize_t>(head.size());
  if (!tiles.empty())
    written = written && ::pwrite(fd, tiles.data(), tiles.size(), static_cast<off_t>(valid.tiles_offset)) ==
                             static_cast<ssize_t>(tiles.size());
  ::close(fd);
  check_tile_cache(written);

  std::string why;
  const TileCache cache = TileCache::open(path, kFuzzFingerprint, fuzz_tile_layout(), &why);
  check_tile_cache(cache.is_open() == why.empty());
  if (!cache.is_open()) return;
  check_tile_cache(std::filesystem::file_size(path) == valid.tiles_offset + valid.tile_bytes);
  check_tile_cache(head == valid.head && tiles.size() == valid.tile_bytes);
  cache.read_in();
  check_tile_cache(std::memcmp(cache.tiles(), tiles.data(), tiles.size()) == 0);
}

}  // namespace mlamoe::test
