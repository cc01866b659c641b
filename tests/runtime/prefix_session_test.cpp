// Prefix reuse through the radix tree (shared blocks, copy-on-write at the divergent
// block, generate() reusing a prompt automatically) and persistent sessions (refusing
// foreign, truncated and corrupt files; surviving a real SIGKILL mid-save).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "common/error.h"
#include "common/files.h"
#include "runtime/generate.h"
#include "runtime/prefix_tree.h"
#include "runtime/session.h"
#include "runtime_fixture.h"

using namespace mlamoe;
using namespace mlamoe::test;

namespace {

constexpr double kTolerance = 1e-4;

std::vector<float> prefill_seq(Engine& e, int32_t seq, const std::vector<int32_t>& tokens, size_t from, size_t to) {
  Batch b;
  for (size_t i = from; i < to; ++i) b.add(tokens[i], int32_t(i), seq, i + 1 == to);
  return e.forward(b);
}

// Decodes tokens [from, to) one at a time for `seq`, checking each row against the reference.
void decode_and_check(Engine& e, const RefFixture& f, int32_t seq, size_t from, size_t to, const std::string& what) {
  for (size_t i = from; i < to; ++i) {
    Batch b;
    b.add(f.tokens[i], int32_t(i), seq);
    EXPECT_LT(rel_error(f, e.forward(b), i), kTolerance) << what << " position " << i;
  }
}

TEST(PrefixTree, LongestPrefixFullBlocksThenPartial) {
  PrefixTree t(4);
  std::vector<int32_t> a = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, blocks = {100, 101, 102};
  std::vector<int32_t> held, dropped;
  t.insert(a, blocks, held, dropped);
  EXPECT_EQ(held, blocks);
  EXPECT_TRUE(dropped.empty());
  auto m = t.lookup(std::vector<int32_t>{1, 2, 3, 4, 5, 6, 99});
  EXPECT_EQ(m.full_blocks, std::vector<int32_t>{100});
  EXPECT_EQ(m.partial_block, 101);
  EXPECT_EQ(m.partial_tokens, 2);
  EXPECT_EQ(m.tokens(), 6);
  EXPECT_EQ(t.lookup(std::vector<int32_t>{7, 1}).tokens(), 0);
  // A longer tail supersedes the shorter partial one.
  held.clear();
  t.insert(std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, std::vector<int32_t>{100, 101, 103}, held, dropped);
  EXPECT_EQ(held, std::vector<int32_t>{103});
  EXPECT_EQ(dropped, std::vector<int32_t>{102});
  EXPECT_EQ(t.n_blocks(), 3u);
  dropped.clear();
  t.trim(1, [](int32_t) { return true; }, dropped);
  EXPECT_EQ(t.n_blocks(), 1u);
  EXPECT_EQ(dropped, (std::vector<int32_t>{103, 101}));
}

// A shorter tail that is a prefix of a cached one adds nothing: the longer block already
// holds its positions (and lookups find it), so the tree does not hold a second block.
TEST(PrefixTree, ShorterTailCoveredByALongerOneIsNotHeldTwice) {
  PrefixTree t(4);
  std::vector<int32_t> held, dropped;
  t.insert(std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7}, std::vector<int32_t>{100, 101}, held, dropped);
  held.clear();
  t.insert(std::vector<int32_t>{1, 2, 3, 4, 5, 6}, std::vector<int32_t>{100, 102}, held, dropped);
  EXPECT_TRUE(held.empty()) << "block 102 would duplicate positions 4-5 of block 101";
  EXPECT_TRUE(dropped.empty());
  EXPECT_EQ(t.n_blocks(), 2u);
  EXPECT_EQ(t.sequences(), (std::vector<std::vector<int32_t>>{{1, 2, 3, 4, 5, 6, 7}}));
  auto m = t.lookup(std::vector<int32_t>{1, 2, 3, 4, 5, 6});
  EXPECT_EQ(m.partial_block, 101);
  EXPECT_EQ(m.tokens(), 6);
  // A full block equal to a sibling's first tokens is no prefix of it: a full child of its own.
  t.insert(std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 8}, std::vector<int32_t>{100, 103}, held, dropped);
  EXPECT_EQ(held, std::vector<int32_t>{103});
  EXPECT_EQ(dropped, std::vector<int32_t>{101});
}

// Seq 0 prefills, seq 1 borrows its prefix (shared blocks), seq 2 diverges inside a
// block (copy-on-write); each still matches the reference, and seq 0 is untouched.
TEST(PrefixReuse, SharedBlocksAndCopyOnWriteKeepEverySequenceExact) {
  for (bool disk : {false, true}) {
    RefFixture f = load_ref_fixture("v2");
    PagedKvOptions o;
    o.block_tokens = 8;
    if (disk) {
      o.ram_budget = 2048;
      o.disk_dir = temp_dir() + "/prefix-disk";
    }
    auto kv = paged_for(*f.model, o);
    Engine e(*f.model, {0, AttentionMode::Absorbed}, kv);
    const size_t n = f.tokens.size(), split = 36;
    EXPECT_LT(rel_error(f, prefill_seq(e, 0, f.tokens, 0, split), split - 1), kTolerance);
    kv->publish(0, std::span<const int32_t>(f.tokens.data(), split));
    const uint64_t one_seq = kv->bytes_used();

    EXPECT_EQ(kv->attach_prefix(1, std::span<const int32_t>(f.tokens.data(), split)), int64_t(split));
    EXPECT_EQ(kv->length(1), int64_t(split));
    // 4 full blocks shared; only the partial tail block (4 of 8 positions) was copied.
    EXPECT_EQ(kv->bytes_used(), one_seq + kv->stats().block_bytes);
    decode_and_check(e, f, 1, split, n, "borrowed prefix");

    std::vector<int32_t> other(f.tokens.begin(), f.tokens.begin() + 20);
    other.push_back((f.tokens[20] + 1) % int32_t(f.vocab()));
    EXPECT_EQ(kv->attach_prefix(2, other), 20);
    EXPECT_GE(kv->stats().cow_copies, 2u);
    Batch b;
    b.add(other[20], 20, 2);
    e.forward(b);  // writes into seq 2's private copy of block 2

    decode_and_check(e, f, 0, split, n, "original after others wrote");
    KvStats s = kv->stats();
    EXPECT_EQ(s.prefix_lookups, 2u);
    EXPECT_EQ(s.prefix_hits, 2u);
    EXPECT_EQ(s.prefix_tokens_reused, split + 20);
    kv->release(1);
    kv->release(2);
    kv->release(0);
    EXPECT_GT(kv->stats().blocks_in_prefix_tree, 0u);
    kv->trim_prefix_cache(0);
    EXPECT_EQ(kv->stats().blocks_live, 0u);
    EXPECT_EQ(kv->bytes_used(), 0u);
  }
}

TEST(PrefixReuse, GenerateReusesAPublishedPromptAutomatically) {
  RefFixture f = load_ref_fixture("v3");
  PagedKvOptions o;
  o.block_tokens = 8;
  auto kv = paged_for(*f.model, o);
  Engine e(*f.model, {0, AttentionMode::Absorbed}, kv);
  GenerateOptions g;
  g.n_predict = 5;
  g.sampling.temperature = 0;
  std::vector<int32_t> prompt(f.tokens.begin(), f.tokens.begin() + 30);
  std::vector<int32_t> a = prompt, b = prompt;
  auto sa = generate(e, 0, a, g, [](int32_t) { return true; });
  EXPECT_EQ(sa.reused_tokens, 0);
  auto sb = generate(e, 1, b, g, [](int32_t) { return true; });
  EXPECT_EQ(sb.reused_tokens, 29);  // all but the last prompt token, whose logits are needed
  EXPECT_EQ(sb.prompt_tokens, 1);
  EXPECT_EQ(a, b);  // the same greedy continuation
  // A follow-up turn on seq 0 reuses the whole conversation so far.
  std::vector<int32_t> turn = a;
  turn.push_back(7);
  turn.push_back(9);
  auto st = generate(e, 0, turn, g, [](int32_t) { return true; });
  EXPECT_EQ(st.reused_tokens, int64_t(a.size()) - 1);
  // Against a cold cache, the same turn gives the same tokens.
  Engine cold(*f.model, {0, AttentionMode::Absorbed}, paged_for(*f.model, o));
  std::vector<int32_t> turn_cold = a;
  turn_cold.push_back(7);
  turn_cold.push_back(9);
  generate(cold, 0, turn_cold, g, [](int32_t) { return true; });
  EXPECT_EQ(turn, turn_cold);
}

// --- sessions -----------------------------------------------------------------------

TEST(Session, RoundTripContinuesExactly) {
  RefFixture f = load_ref_fixture("v2lite");
  const uint64_t id = model_identity(*f.model);
  const std::string path = temp_dir() + "/s.session";
  const size_t split = 30;
  for (GgmlType type : {GgmlType::F32, GgmlType::Q8_0}) {
    PagedKvOptions o;
    o.block_tokens = 8;
    o.type = type;
    {
      auto kv = paged_for(*f.model, o);
      Engine e(*f.model, {0, AttentionMode::Absorbed}, kv);
      prefill_seq(e, 0, f.tokens, 0, split);
      kv->publish(0, std::span<const int32_t>(f.tokens.data(), split));
      save_session(path, *kv, 0, id);
    }
    auto kv = paged_for(*f.model, o);
    Engine e(*f.model, {0, AttentionMode::Absorbed}, kv);
    std::vector<int32_t> got = load_session(path, *kv, 0, id);
    EXPECT_EQ(got, std::vector<int32_t>(f.tokens.begin(), f.tokens.begin() + split));
    EXPECT_EQ(kv->length(0), int64_t(split));
    if (type == GgmlType::F32) decode_and_check(e, f, 0, split, f.tokens.size(), "after session load");
  }
  // A session saved as q8_0 loads into an f32 cache (converted), and the reverse.
  PagedKvOptions o;
  o.type = GgmlType::F32;
  auto kv = paged_for(*f.model, o);
  EXPECT_EQ(load_session(path, *kv, 0, id).size(), split);
}

TEST(Session, RefusesForeignTruncatedAndCorruptFiles) {
  RefFixture f = load_ref_fixture("v2lite"), g = load_ref_fixture("v3");
  const uint64_t id = model_identity(*f.model);
  EXPECT_NE(id, model_identity(*g.model));
  PagedKvOptions o;
  auto kv = paged_for(*f.model, o);
  Engine e(*f.model, {0, AttentionMode::Absorbed}, kv);
  prefill_seq(e, 0, f.tokens, 0, 20);
  kv->publish(0, std::span<const int32_t>(f.tokens.data(), 20));
  const std::string dir = temp_dir(), good = dir + "/good.session";
  save_session(good, *kv, 0, id);
  const std::string bytes = read_file(good);

  auto expect_refused = [&](const std::string& path, const std::string& needle, uint64_t with_id) {
    auto fresh = paged_for(*f.model, o);
    try {
      load_session(path, *fresh, 0, with_id);
      ADD_FAILURE() << path << " was accepted";
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find(needle), std::string::npos) << err.what();
      EXPECT_NE(std::string(err.what()).find(path), std::string::npos) << err.what();
    }
    EXPECT_EQ(fresh->length(0), 0);
  };
  expect_refused(good, "different model", model_identity(*g.model));
  write_file_atomic(dir + "/short.session", bytes.substr(0, bytes.size() - 100));
  expect_refused(dir + "/short.session", "truncated", id);
  write_file_atomic(dir + "/tiny.session", bytes.substr(0, 10));
  expect_refused(dir + "/tiny.session", "truncated", id);
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x10;
  write_file_atomic(dir + "/flipped.session", flipped);
  expect_refused(dir + "/flipped.session", "checksum", id);
  write_file_atomic(dir + "/text.session", std::string(200, 'x'));
  expect_refused(dir + "/text.session", "not an mlamoe session", id);
  expect_refused(dir + "/missing.session", "cannot open", id);
}

// A child process saves two different sessions in turn, as fast as it can; it is
// SIGKILLed at random moments. Whatever is on disk afterwards must load and be one of
// the two, never a torn mix.
TEST(Session, SurvivesSigkillAtRandomMomentsDuringSave) {
  const int64_t L = 4, dc = 64, dr = 32;
  PagedKvOptions o;
  o.block_tokens = 16;
  auto make = [&](int n_tokens, uint32_t seed) {
    auto kv = std::make_shared<PagedKvCache>(L, dc, dr, o);
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<float> c(static_cast<size_t>(dc)), r(static_cast<size_t>(dr));
    std::vector<int32_t> tokens;
    kv->reserve(0, n_tokens);
    for (int p = 0; p < n_tokens; ++p) {
      tokens.push_back(int32_t(rng() % 1000));
      for (int64_t l = 0; l < L; ++l) {
        for (auto& v : c) v = u(rng);
        for (auto& v : r) v = u(rng);
        kv->store(0, l, p, c.data(), r.data());
      }
    }
    kv->set_length(0, n_tokens);
    kv->publish(0, tokens);
    return std::make_pair(kv, tokens);
  };
  auto [kv_a, tokens_a] = make(700, 1);
  auto [kv_b, tokens_b] = make(1500, 2);
  const uint64_t id = 0x1234;
  const std::string dir = temp_dir() + "/kill";
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/killed.session";
  std::mt19937 rng(42);
  int loaded_a = 0, loaded_b = 0, absent = 0;
  for (int round = 0; round < 25; ++round) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      try {
        for (uint64_t i = uint64_t(round);; ++i) save_session(path, i % 2 ? *kv_b : *kv_a, 0, id);
      } catch (...) {
        ::_exit(3);  // never fall back into the test runner
      }
    }
    ::usleep(1000 + rng() % 100000);
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));
    if (!std::filesystem::exists(path)) {
      ++absent;
      continue;
    }
    PagedKvCache fresh(L, dc, dr, o);
    std::vector<int32_t> got = load_session(path, fresh, 0, id);  // throws if torn
    ASSERT_TRUE(got == tokens_a || got == tokens_b);
    const PagedKvCache& want = got == tokens_a ? *kv_a : *kv_b;
    (got == tokens_a ? loaded_a : loaded_b)++;
    for (int64_t l = 0; l < L; ++l) {
      std::vector<float> x, y;
      want.for_each_run(0, l, int64_t(got.size()), [&](int64_t, int64_t n, const float* c, const float*) { x.insert(x.end(), c, c + n * dc); });
      fresh.for_each_run(0, l, int64_t(got.size()), [&](int64_t, int64_t n, const float* c, const float*) { y.insert(y.end(), c, c + n * dc); });
      ASSERT_EQ(x, y);
    }
  }
  std::printf("after 25 kills: loaded A %d times, B %d times, no file yet %d times\n", loaded_a, loaded_b, absent);
  EXPECT_GT(loaded_a + loaded_b, 0);
  // Leftover temp files from killed writers are never mistaken for the session.
  for (auto& entry : std::filesystem::directory_iterator(dir))
    if (entry.path() != path) {
      EXPECT_NE(entry.path().filename().string().find(".tmp."), std::string::npos);
    }
}

}  // namespace
