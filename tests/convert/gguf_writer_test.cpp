// The GGUF writer, checked through the independent reader (src/format/gguf.h).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "common/error.h"
#include "common/files.h"
#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "test_paths.h"

namespace mlamoe {
namespace {

std::string tmp(const std::string& name) { return test::temp_dir() + "/" + name; }

bool any_temp_file_left(const std::string& final_path) {
  auto dir = std::filesystem::path(final_path).parent_path();
  auto stem = std::filesystem::path(final_path).filename().string() + ".tmp.";
  for (auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename().string().rfind(stem, 0) == 0) return true;
  return false;
}

TEST(GgufWriter, EveryMetadataTypeRoundTrips) {
  std::string path = tmp("meta.gguf");
  {
    GgufWriter w(path);
    w.set_u8("t.u8", 200);
    w.set_i8("t.i8", -100);
    w.set_u16("t.u16", 60000);
    w.set_i16("t.i16", -30000);
    w.set_u32("t.u32", 4000000000u);
    w.set_i32("t.i32", -2000000000);
    w.set_u64("t.u64", 1ull << 40);
    w.set_i64("t.i64", -(1ll << 40));
    w.set_f32("t.f32", 0.1f);
    w.set_f64("t.f64", 0.1);
    w.set_bool("t.bool", true);
    w.set_string("t.str", "deepseek2 ✓");
    int32_t ints[] = {1, -2, 3};
    w.set_array("t.arr_i32", GgufType::INT32, ints, 3);
    float floats[] = {0.5f, -1.25f};
    w.set_array("t.arr_f32", GgufType::FLOAT32, floats, 2);
    w.set_array("t.arr_empty", GgufType::UINT8, nullptr, 0);
    w.set_string_array("t.arr_str", std::vector<std::string>{"a", "", "ccc"});
    w.set_u32("t.replaced", 1);
    w.set_u32("t.replaced", 2);
    w.finish();
  }
  auto f = GgufFile::open(path);
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->metadata().size(), 17u);
  EXPECT_EQ(f->find("t.u8")->type, GgufType::UINT8);
  EXPECT_EQ(f->get_int("t.u8", 0), 200);
  EXPECT_EQ(f->get_int("t.i8", 0), -100);
  EXPECT_EQ(f->get_int("t.u16", 0), 60000);
  EXPECT_EQ(f->get_int("t.i16", 0), -30000);
  EXPECT_EQ(f->get_int("t.u32", 0), 4000000000ll);
  EXPECT_EQ(f->get_int("t.i32", 0), -2000000000);
  EXPECT_EQ(f->find("t.u64")->as_uint(), 1ull << 40);
  EXPECT_EQ(f->get_int("t.i64", 0), -(1ll << 40));
  EXPECT_EQ(f->get_float("t.f32", 0), double(0.1f));
  EXPECT_EQ(f->get_float("t.f64", 0), 0.1);
  EXPECT_EQ(f->find("t.bool")->type, GgufType::BOOL);
  EXPECT_TRUE(f->get_bool("t.bool", false));
  EXPECT_EQ(f->get_string("t.str"), "deepseek2 ✓");
  EXPECT_EQ(f->find("t.arr_i32")->elem_type, GgufType::INT32);
  EXPECT_EQ(f->find("t.arr_i32")->as_int_array(), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(f->find("t.arr_f32")->as_float_array(), (std::vector<float>{0.5f, -1.25f}));
  EXPECT_EQ(f->find("t.arr_empty")->array_size(), 0u);
  auto strs = f->find("t.arr_str")->as_string_array();
  ASSERT_EQ(strs.size(), 3u);
  EXPECT_EQ(strs[0], "a");
  EXPECT_EQ(strs[1], "");
  EXPECT_EQ(strs[2], "ccc");
  EXPECT_EQ(f->get_int("t.replaced", 0), 2);
  EXPECT_TRUE(f->tensors().empty());
}

TEST(GgufWriter, CopiedValuesKeepTheirTypes) {
  std::string src = tmp("copy_src.gguf"), dst = tmp("copy_dst.gguf");
  {
    GgufWriter w(src);
    w.set_u16("a", 7);
    w.set_f64("b", 2.5);
    w.set_bool("c", false);
    int16_t v[] = {-1, 2};
    w.set_array("d", GgufType::INT16, v, 2);
    w.set_string_array("e", std::vector<std::string>{"x", "yz"});
    uint8_t bools[] = {1, 0, 1};
    w.set_array("f", GgufType::BOOL, bools, 3);
    w.finish();
  }
  auto a = GgufFile::open(src);
  {
    GgufWriter w(dst);
    for (auto& [k, v] : a->metadata()) w.set_value(k, v);
    w.finish();
  }
  // Same metadata, same encoding: the two files are byte-identical.
  EXPECT_EQ(read_file(src), read_file(dst));
}

TEST(GgufWriter, TensorsStreamedInChunksRoundTrip) {
  for (uint32_t alignment : {0u, 64u, 4096u}) {
    std::string path = tmp("tensors" + std::to_string(alignment) + ".gguf");
    std::vector<float> a(7 * 3), b(5);
    std::iota(a.begin(), a.end(), 1.0f);
    std::iota(b.begin(), b.end(), -2.0f);
    std::vector<uint8_t> q(2 * 34);  // two Q8_0 blocks
    for (size_t i = 0; i < q.size(); ++i) q[i] = static_cast<uint8_t>(i * 7);
    {
      GgufWriter w(path);
      if (alignment) w.set_u32("general.alignment", alignment);
      w.set_string("general.architecture", "test");
      EXPECT_EQ(w.add_tensor("a", {7, 3}, GgmlType::F32), 84u);
      EXPECT_EQ(w.add_tensor("q", {32, 1, 2}, GgmlType::Q8_0), 68u);
      EXPECT_EQ(w.add_tensor("b", {5}, GgmlType::F32), 20u);
      w.begin();
      EXPECT_EQ(w.next_tensor(), "a");
      // a in three uneven chunks
      w.write_data(a.data(), 10);
      w.write_data(reinterpret_cast<const uint8_t*>(a.data()) + 10, 50);
      w.write_data(reinterpret_cast<const uint8_t*>(a.data()) + 60, 24);
      w.write_tensor("q", q.data(), q.size());
      w.write_tensor("b", b.data(), b.size() * 4);
      EXPECT_EQ(w.next_tensor(), "");
      w.finish();
    }
    auto f = GgufFile::open(path);
    EXPECT_EQ(f->alignment(), alignment ? alignment : 32u);
    EXPECT_EQ(f->data_offset() % f->alignment(), 0u);
    ASSERT_EQ(f->tensors().size(), 3u);
    const GgufTensor* ta = f->tensor("a");
    ASSERT_TRUE(ta);
    EXPECT_EQ(ta->ne, (std::vector<int64_t>{7, 3}));
    EXPECT_EQ(0, std::memcmp(ta->data, a.data(), 84));
    const GgufTensor* tq = f->tensor("q");
    EXPECT_EQ(tq->type, GgmlType::Q8_0);
    EXPECT_EQ(tq->ne, (std::vector<int64_t>{32, 1, 2}));
    EXPECT_EQ(tq->offset % f->alignment(), 0u);
    EXPECT_EQ(0, std::memcmp(tq->data, q.data(), q.size()));
    EXPECT_EQ(0, std::memcmp(f->tensor("b")->data, b.data(), 20));
    // The file ends right after the last tensor's padding, nothing dangling.
    EXPECT_LE(f->file_size(), f->data_offset() + f->tensor("b")->offset + 20 + f->alignment());
  }
}

TEST(GgufWriter, MisuseIsRefused) {
  std::string path = tmp("misuse.gguf");
  GgufWriter w(path);
  EXPECT_THROW(w.add_tensor("bad_row", {33}, GgmlType::Q8_0), Error);
  EXPECT_THROW(w.add_tensor("zero", {0, 4}, GgmlType::F32), Error);
  w.add_tensor("t", {4}, GgmlType::F32);
  EXPECT_THROW(w.add_tensor("t", {4}, GgmlType::F32), Error);
  w.add_tensor("u", {4}, GgmlType::F32);
  w.begin();
  float x[8] = {};
  EXPECT_THROW(w.write_tensor("u", x, 16), Error);      // out of order
  EXPECT_THROW(w.write_data(x, 32), Error);             // crosses into u
  EXPECT_THROW(w.set_u32("late", 1), Error);            // header already written
  w.write_tensor("t", x, 16);
  EXPECT_THROW(w.finish(), Error);                      // u missing
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(GgufWriter, BadAlignmentIsRefused) {
  GgufWriter w(tmp("align.gguf"));
  w.set_u32("general.alignment", 48);
  EXPECT_THROW(w.begin(), Error);
}

TEST(GgufWriter, AbandonedWriteLeavesNoFile) {
  std::string path = tmp("abandoned.gguf");
  {
    GgufWriter w(path);
    w.add_tensor("t", {1024}, GgmlType::F32);
    w.begin();
    std::vector<float> half(512, 1.0f);
    w.write_data(half.data(), half.size() * 4);
    EXPECT_TRUE(any_temp_file_left(path));  // the data goes to a temp name ...
  }                                          // ... removed when the writer is abandoned
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(any_temp_file_left(path));
}

}  // namespace
}  // namespace mlamoe
