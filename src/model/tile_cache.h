// The tile cache: the weights as the int8 kernels read them (Model::tile_weights), kept
// in a file so that later loads map them instead of laying them out again. Laying out
// 8.7 GB means writing 8.7 GB of fresh memory, which on a VM whose host backs memory
// lazily took 6-42 s; mapping the cache costs reading it (the page cache makes that
// about a second when warm).
//
// File: a Header, one TiledMatrix per matrix, the FNV-1a checksum of both, then the tiles
// from a 2 MiB-aligned offset (so the page cache can map them as huge pages). A cache is
// used only when it was made from this model file (its fingerprint) in this tile format
// (kernels::kTileFormatVersion) and lists exactly the matrices this build lays out, at
// the same offsets; Model also lays out a few matrices again and compares their bytes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/mapped_file.h"
#include "format/ggml_types.h"
#include "format/gguf.h"

namespace mlamoe {

// One laid-out matrix: the source's type and shape and where its tiles start.
struct TiledMatrix {
  GgmlType type = GgmlType::F32;
  int64_t rows = 0, cols = 0;
  uint64_t offset = 0, bytes = 0;  // within the tiles
  bool operator==(const TiledMatrix&) const = default;
};

// Bytes of the tiles of `layout` (0 for none).
uint64_t tiled_total_bytes(const std::vector<TiledMatrix>& layout);

// Identifies a model file's contents without reading all of it: its size, its header
// (metadata and tensor table) and the first and last 4 KiB of every tensor's data.
uint64_t gguf_fingerprint(const GgufFile& f);

class TileCache {
 public:
  // Maps `path` if it holds `layout` for the model file with `fingerprint`; otherwise
  // returns a cache that is not open() and says why in *why_not ("" when the file does
  // not exist). Never throws for a bad or foreign file.
  static TileCache open(const std::string& path, uint64_t fingerprint, const std::vector<TiledMatrix>& layout,
                        std::string* why_not);
  // Writes `tiles` (layout.back().offset + bytes of them) atomically, with progress.
  static void write(const std::string& path, uint64_t fingerprint, const std::vector<TiledMatrix>& layout,
                    const uint8_t* tiles);

  bool is_open() const { return tiles_ != nullptr; }
  const uint8_t* tiles() const { return tiles_; }
  // Faults every page of the tiles in (huge pages where the page cache has them), with
  // progress, so decode does not pay for it.
  void read_in() const;

 private:
  MappedFile file_;
  const uint8_t* tiles_ = nullptr;
  size_t tile_bytes_ = 0;
};

}  // namespace mlamoe
