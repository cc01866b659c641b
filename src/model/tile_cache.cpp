#include "model/tile_cache.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "common/files.h"
#include "common/fnv1a.h"
#include "common/progress.h"
#include "kernels/kernels.h"

namespace mlamoe {

namespace {

constexpr char kMagic[8] = {'M', 'L', 'A', 'T', 'I', 'L', 'E', 'S'};
constexpr uint32_t kFileVersion = 1;
constexpr uint64_t kTilesAlignment = uint64_t{2} << 20;

struct Header {
  char magic[8];
  uint32_t file_version;
  uint32_t tile_format;  // kernels::kTileFormatVersion
  uint64_t fingerprint;  // of the model file
  uint64_t n_matrices;
  uint64_t tiles_offset;
  uint64_t tile_bytes;
};

struct Entry {  // TiledMatrix on disk
  uint32_t type, reserved;
  int64_t rows, cols;
  uint64_t offset, bytes;
};

uint64_t tiles_offset_for(size_t n_matrices) {
  const uint64_t table = sizeof(Header) + n_matrices * sizeof(Entry) + sizeof(uint64_t);
  return (table + kTilesAlignment - 1) / kTilesAlignment * kTilesAlignment;
}

Header header_for(uint64_t fingerprint, const std::vector<TiledMatrix>& layout) {
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.file_version = kFileVersion;
  h.tile_format = kernels::kTileFormatVersion;
  h.fingerprint = fingerprint;
  h.n_matrices = layout.size();
  h.tiles_offset = tiles_offset_for(layout.size());
  h.tile_bytes = tiled_total_bytes(layout);
  return h;
}

std::vector<Entry> entries_for(const std::vector<TiledMatrix>& layout) {
  std::vector<Entry> e(layout.size());
  for (size_t i = 0; i < layout.size(); ++i)
    e[i] = {static_cast<uint32_t>(layout[i].type), 0, layout[i].rows, layout[i].cols, layout[i].offset, layout[i].bytes};
  return e;
}

uint64_t table_checksum(const Header& h, const std::vector<Entry>& entries) {
  Fnv1a sum;
  sum.add(&h, sizeof h);
  sum.add(entries.data(), entries.size() * sizeof(Entry));
  return sum.h;
}

// Why the cache file `f` is not `want` and its entries ("" when it is).
std::string mismatch(const MappedFile& f, const Header& want, const std::vector<Entry>& want_entries) {
  const uint8_t* p = f.data();
  Header have{};
  if (f.size() < sizeof have) return "not an mlamoe tile cache (too short)";
  std::memcpy(&have, p, sizeof have);
  if (std::memcmp(have.magic, kMagic, sizeof kMagic) != 0) return "not an mlamoe tile cache";
  if (have.file_version != kFileVersion || have.tile_format != kernels::kTileFormatVersion)
    return "made by another mlamoe version (tile format " + std::to_string(have.tile_format) + ", this build's is " +
           std::to_string(kernels::kTileFormatVersion) + ")";
  if (have.fingerprint != want.fingerprint) return "made from another model file";
  const size_t entry_bytes = want_entries.size() * sizeof(Entry), table_bytes = sizeof have + entry_bytes + sizeof(uint64_t);
  if (std::memcmp(&have, &want, sizeof have) != 0 || f.size() < table_bytes ||
      std::memcmp(p + sizeof have, want_entries.data(), entry_bytes) != 0)
    return "its matrices are not the ones this build lays out";
  uint64_t stored = 0;
  std::memcpy(&stored, p + sizeof have + entry_bytes, sizeof stored);
  if (stored != table_checksum(want, want_entries)) return "its table checksum does not match (the file is corrupt)";
  if (f.size() != want.tiles_offset + want.tile_bytes)
    return "it is " + std::to_string(f.size()) + " bytes, expected " + std::to_string(want.tiles_offset + want.tile_bytes) +
           " (truncated?)";
  return "";
}

}  // namespace

uint64_t tiled_total_bytes(const std::vector<TiledMatrix>& layout) {
  return layout.empty() ? 0 : layout.back().offset + layout.back().bytes;
}

uint64_t gguf_fingerprint(const GgufFile& f) {
  Fnv1a sum;
  sum.add_value(static_cast<uint64_t>(f.file_size()));
  sum.add(f.bytes(), std::min<size_t>(f.data_offset(), f.file_size()));
  constexpr size_t kSample = 4096;
  for (const GgufTensor& t : f.tensors()) {
    sum.add(t.data, std::min(t.nbytes, kSample));
    if (t.nbytes > kSample) sum.add(t.data + t.nbytes - kSample, kSample);
  }
  return sum.h;
}

TileCache TileCache::open(const std::string& path, uint64_t fingerprint, const std::vector<TiledMatrix>& layout,
                          std::string* why_not) {
  why_not->clear();
  TileCache c;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return c;
  try {
    c.file_ = MappedFile(path);
  } catch (const Error& e) {
    *why_not = e.what();
    return c;
  }
  const Header want = header_for(fingerprint, layout);
  *why_not = mismatch(c.file_, want, entries_for(layout));
  if (!why_not->empty()) {
    c.file_ = MappedFile();
    return c;
  }
  c.tiles_ = c.file_.data() + want.tiles_offset;
  c.tile_bytes_ = want.tile_bytes;
  return c;
}

void TileCache::read_in() const {
  if (!tiles_ || !tile_bytes_) return;
  auto* base = const_cast<uint8_t*>(tiles_);
  ::madvise(base, tile_bytes_, MADV_HUGEPAGE);
  Progress progress("reading tile cache", tile_bytes_);
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE)), chunk = size_t{256} << 20;
  volatile uint8_t sink = 0;
  for (size_t at = 0; at < tile_bytes_; at += chunk) {
    const size_t n = std::min(chunk, tile_bytes_ - at);
    if (::madvise(base + at, n, MADV_POPULATE_READ) != 0)  // before Linux 5.14: touch each page
      for (size_t i = 0; i < n; i += page) sink = sink + base[at + i];
    progress.update(at + n);
  }
  progress.finish();
}

void TileCache::write(const std::string& path, uint64_t fingerprint, const std::vector<TiledMatrix>& layout,
                      const uint8_t* tiles) {
  const Header h = header_for(fingerprint, layout);
  const std::vector<Entry> entries = entries_for(layout);
  const uint64_t checksum = table_checksum(h, entries);
  AtomicFile f(path);
  f.write(&h, sizeof h);
  f.write(entries.data(), entries.size() * sizeof(Entry));
  f.write(&checksum, sizeof checksum);
  const std::vector<uint8_t> pad(h.tiles_offset - f.written(), 0);
  f.write(pad.data(), pad.size());
  Progress progress("writing tile cache " + path, h.tile_bytes);
  const size_t chunk = size_t{64} << 20;
  for (uint64_t at = 0; at < h.tile_bytes; at += chunk) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(chunk, h.tile_bytes - at));
    f.write(tiles + at, n);
    progress.update(at + n);
  }
  f.commit();
  progress.finish();
}

}  // namespace mlamoe
