// The tile cache (model/tile_cache.h): a second load maps the first load's tiles and
// computes the same logits bit for bit; a cache that is stale, foreign, truncated or
// corrupt is refused with a reason, the weights are laid out again (same logits) and the
// cache is rewritten. Needs the int8 tiled kernels (AVX2 or AVX-512); skipped without them.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "common/progress.h"
#include "convert/gen_random.h"
#include "model/engine.h"
#include "model/tile_cache.h"
#include "fuzz_inputs.h"
#include "test_paths.h"
#include "tile_cache_exercise.h"

using namespace mlamoe;

namespace {

// A V2-Lite-shaped fixture model at Q4_0 with the legacy attn_kv_b (so the derived,
// transposed W_UK^T is among the cached tiles).
std::string small_model(uint64_t seed) {
  Progress::set_quiet(true);
  GenRandomOptions o;
  o.config_path = test::shared_dir() + "/fixtures/v2lite/config.json";
  o.out_path = test::temp_dir() + "/tile_cache_" + std::to_string(seed) + ".gguf";
  o.recipe = parse_recipe("q4_0");
  o.seed = seed;
  o.legacy_kv_b = true;
  if (!std::filesystem::exists(o.out_path)) gen_random(o);
  return o.out_path;
}

std::unique_ptr<Model> load(const std::string& model, const std::string& cache) {
  Model::LoadOptions o;
  o.tile_cache = cache;
  return Model::load(model, o);
}

std::vector<float> logits(const Model& m) {
  Engine e(m, {64, AttentionMode::Absorbed});
  Batch b;
  for (int32_t i = 0; i < 12; ++i) b.add((i * 37 + 5) % static_cast<int32_t>(m.config().vocab_size), i, 0);
  return e.forward(b);
}

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

class TileCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = small_model(7);
    reference_ = load(model_, "");
    if (reference_->tiled_weight_bytes() == 0) GTEST_SKIP() << "no tiled int8 kernels on this CPU";
    expected_ = logits(*reference_);
    cache_ = test::temp_dir() + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".tiles";
    std::filesystem::remove(cache_);
  }
  std::string model_, cache_;
  std::unique_ptr<Model> reference_;
  std::vector<float> expected_;
};

}  // namespace

TEST_F(TileCacheTest, SecondLoadMapsTheFirstLoadsTiles) {
  auto first = load(model_, cache_);
  EXPECT_FALSE(first->tiles_from_cache());
  ASSERT_TRUE(std::filesystem::exists(cache_));
  EXPECT_EQ(logits(*first), expected_);

  auto second = load(model_, cache_);
  EXPECT_TRUE(second->tiles_from_cache());
  EXPECT_EQ(second->tiled_weight_bytes(), 0u);  // nothing laid out at this load
  EXPECT_EQ(logits(*second), expected_);
}

// Each way a cache can be wrong: refused, laid out again with the right logits, and the
// cache rewritten so that the next load maps it.
TEST_F(TileCacheTest, WrongCacheIsRefusedAndRewritten) {
  load(model_, cache_);
  const std::vector<char> good = read_bytes(cache_);
  ASSERT_GT(good.size(), size_t{2} << 20);
  const std::string other_model = small_model(8);
  std::mt19937 rng(3);
  std::vector<char> garbage(good.size());
  for (char& c : garbage) c = static_cast<char>(rng());

  struct Case {
    const char* what;
    std::vector<char> bytes;
  };
  std::vector<Case> cases;
  cases.push_back({"truncated tiles", std::vector<char>(good.begin(), good.end() - 4096)});
  cases.push_back({"truncated table", std::vector<char>(good.begin(), good.begin() + 100)});
  cases.push_back({"empty", {}});
  cases.push_back({"random bytes", garbage});
  std::vector<char> other_format = good;
  other_format[12] ^= 1;  // Header::tile_format
  cases.push_back({"another tile format", other_format});
  std::vector<char> bad_table = good;
  bad_table[48 + 8] ^= 1;  // entry 0's rows (the table starts after the 48-byte header)
  cases.push_back({"edited table", bad_table});
  std::vector<char> bad_tiles = good;
  bad_tiles[size_t{2} << 20] ^= 0x5a;  // the first tile of matrix 0, one of the re-laid-out samples
  cases.push_back({"edited tiles", bad_tiles});
  {  // a valid cache of another model file with the same shapes
    const std::string other_cache = cache_ + ".other";
    load(other_model, other_cache);
    cases.push_back({"another model's cache", read_bytes(other_cache)});
  }

  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    write_bytes(cache_, c.bytes);
    auto m = load(model_, cache_);
    EXPECT_FALSE(m->tiles_from_cache());
    EXPECT_EQ(logits(*m), expected_);
    auto again = load(model_, cache_);
    EXPECT_TRUE(again->tiles_from_cache());
    EXPECT_EQ(read_bytes(cache_), good);
  }
}

// The reasons TileCache::open gives, one per check, and none for a missing file.
TEST_F(TileCacheTest, OpenSaysWhyNot) {
  load(model_, cache_);
  auto gguf = GgufFile::open(model_);
  const uint64_t fp = gguf_fingerprint(*gguf);
  std::vector<TiledMatrix> layout = {{GgmlType::Q4_0, 16, 64, 0, 64}};
  std::string why;
  EXPECT_FALSE(TileCache::open(cache_ + ".missing", fp, layout, &why).is_open());
  EXPECT_EQ(why, "");
  EXPECT_FALSE(TileCache::open(cache_, fp, layout, &why).is_open());
  EXPECT_EQ(why, "its matrices are not the ones this build lays out");
  EXPECT_FALSE(TileCache::open(cache_, fp + 1, layout, &why).is_open());
  EXPECT_EQ(why, "made from another model file");
  write_bytes(cache_, {'G', 'G', 'U', 'F'});
  EXPECT_FALSE(TileCache::open(cache_, fp, layout, &why).is_open());
  EXPECT_EQ(why, "not an mlamoe tile cache (too short)");
  // Fingerprints differ between files that differ only in tensor data.
  EXPECT_NE(fp, gguf_fingerprint(*GgufFile::open(small_model(8))));
}

// Every truncation of the table region is refused without a crash.
TEST_F(TileCacheTest, EveryShortPrefixIsRefused) {
  load(model_, cache_);
  const std::vector<char> good = read_bytes(cache_);
  auto gguf = GgufFile::open(model_);
  const uint64_t fp = gguf_fingerprint(*gguf);
  const std::string path = cache_ + ".prefix";
  // The real layout is only known inside Model; any layout must refuse a prefix.
  std::vector<TiledMatrix> layout = {{GgmlType::Q4_0, 16, 64, 0, 64}};
  for (size_t n = 0; n < 4096; n += 7) {
    write_bytes(path, std::vector<char>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)));
    std::string why;
    EXPECT_FALSE(TileCache::open(path, fp, layout, &why).is_open()) << n;
    EXPECT_FALSE(why.empty()) << n;
  }
}

// The tile-cache fuzz corpus (and any crash regressions) through the fuzz target's own
// code, so plain ctest keeps them fixed without clang; the valid seeds must be accepted.
TEST(FuzzReplay, TileCacheCorpus) {
  const std::string path = test::temp_dir() + "/fuzz.tiles";
  test::replay_fuzz_inputs("tile_cache", "model", 7,
                           [&](const uint8_t* data, size_t size) { test::exercise_tile_cache(data, size, path); });
  for (const char* seed : {"valid-repaired.raw", "valid-exact-tiles.raw"}) {
    std::ifstream in(test::source_dir() + "/fuzz/corpus/tile_cache/" + seed, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    test::exercise_tile_cache(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
    std::string why;
    EXPECT_TRUE(TileCache::open(path, test::kFuzzFingerprint, test::fuzz_tile_layout(), &why).is_open()) << seed << ": " << why;
  }
}
