// The prefix-cache file of serve --session (session format version 2, several
// sequences): a file that cannot be used (another model, truncated, corrupt) is
// refused before anything is published; version-1 session files (run, chat) restore
// as one cached sequence, and run's loader reads version 2.
#include <gtest/gtest.h>

#include <span>

#include "common/error.h"
#include "common/files.h"
#include "model/engine.h"
#include "runtime/session.h"
#include "test_paths.h"

using namespace mlamoe;

namespace {

const Model& fixture_model() {
  static std::unique_ptr<Model> m = Model::load(test::shared_dir() + "/fixtures/v3/model.gguf");
  return *m;
}

std::shared_ptr<PagedKvCache> make_kv() {
  const ModelConfig& c = fixture_model().config();
  PagedKvOptions o;
  o.block_tokens = 8;
  return std::make_shared<PagedKvCache>(c.n_layers, c.kv_lora_rank, c.qk_rope_head_dim, o);
}

// Computes `tokens` in sequence `seq` and publishes them.
void prefill(Engine& e, PagedKvCache& kv, int32_t seq, const std::vector<int32_t>& tokens) {
  Batch b;
  for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], static_cast<int32_t>(i), seq, i + 1 == tokens.size());
  e.forward(b);
  kv.publish(seq, tokens);
}

std::vector<int32_t> ids(const std::string& s) { return {s.begin(), s.end()}; }

// The raw KV rows (storage type, every layer) of positions [0, n) of `seq`.
std::string raw_rows(const PagedKvCache& kv, int32_t seq, int64_t n) {
  std::string rows;
  for (int64_t l = 0; l < kv.n_layers(); ++l)
    kv.for_each_raw_run(seq, l, n, [&](int64_t, int64_t cnt, const uint8_t* c, const uint8_t* r) {
      rows.append(reinterpret_cast<const char*>(c), static_cast<size_t>(cnt) * kv.c_kv_row_bytes());
      rows.append(reinterpret_cast<const char*>(r), static_cast<size_t>(cnt) * kv.k_rope_row_bytes());
    });
  return rows;
}

}  // namespace

TEST(PrefixCacheFile, UnusableFilesAreRefusedBeforeAnythingIsPublished) {
  auto kv = make_kv();
  Engine e(fixture_model(), EngineOptions{128}, kv);
  const auto a = ids("The same system prompt, then question A"), b = ids("The same system prompt, then another one");
  prefill(e, *kv, 0, a);
  kv->release(0);
  prefill(e, *kv, 1, b);  // kept in seq 1 for a version-1 session below
  const uint64_t id = model_identity(fixture_model());
  const std::string dir = test::temp_dir(), good = dir + "/good.session";
  const PrefixCacheFile w = save_prefix_cache(good, *kv, 7, id);
  EXPECT_EQ(w.sequences, 2u);
  EXPECT_EQ(w.tokens, a.size() + b.size());
  EXPECT_EQ(w.stored_tokens, a.size() + b.size() - 24) << "three whole 8-token blocks are shared";
  const std::string bytes = read_file(good);
  EXPECT_EQ(w.bytes, bytes.size());

  auto refused = [&](const std::string& path, uint64_t with_id, const std::string& needle) {
    auto fresh = make_kv();
    try {
      restore_prefix_cache(path, *fresh, 7, with_id);
      ADD_FAILURE() << path << " was accepted";
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find(needle), std::string::npos) << err.what();
      EXPECT_NE(std::string(err.what()).find(path), std::string::npos) << err.what();
    }
    EXPECT_TRUE(fresh->cached_sequences().empty());
    EXPECT_EQ(fresh->stats().blocks_live, 0u);
  };
  refused(good, id ^ 1, "different model");
  write_file_atomic(dir + "/short.session", bytes.substr(0, bytes.size() - 100));
  refused(dir + "/short.session", id, "truncated");
  write_file_atomic(dir + "/header.session", bytes.substr(0, 20));
  refused(dir + "/header.session", id, "truncated");
  for (size_t at : {size_t(60), bytes.size() / 2, bytes.size() - 9}) {  // a sequence header, rows, the last row byte
    std::string flipped = bytes;
    flipped[at] ^= 0x01;
    write_file_atomic(dir + "/flipped.session", flipped);
    refused(dir + "/flipped.session", id, "checksum");
  }

  // Version 1 (one conversation) restores as one cached sequence ...
  save_session(dir + "/v1.session", *kv, 1, id);
  auto from_v1 = make_kv();
  EXPECT_EQ(restore_prefix_cache(dir + "/v1.session", *from_v1, 7, id).sequences, 1u);
  EXPECT_EQ(from_v1->cached_sequences(), std::vector<std::vector<int32_t>>{b});
  // ... and run's loader takes the most recently used sequence of a version-2 file.
  auto run_kv = make_kv();
  EXPECT_EQ(load_session(good, *run_kv, 0, id), b);
  EXPECT_EQ(run_kv->length(0), static_cast<int64_t>(b.size()));
  // Its first blocks are stored under the older sequence it shares them with.
  const auto n = static_cast<int64_t>(b.size());
  EXPECT_TRUE(raw_rows(*run_kv, 0, n) == raw_rows(*kv, 1, n)) << "the restored rows differ";
  EXPECT_EQ(raw_rows(*from_v1, 7, 0), "");  // the scratch sequence is left empty
}
