// The safetensors reader: values of every supported dtype (FP8 with block scales),
// and every header field checked against the file.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "common/files.h"
#include "format/quant.h"
#include "format/safetensors.h"
#include "test_paths.h"

namespace mlamoe {
namespace {

namespace fs = std::filesystem;

std::string dir_with(const std::string& tag, const std::vector<StTensorData>& tensors) {
  std::string dir = test::temp_dir() + "/st_" + tag;
  fs::create_directories(dir);
  write_safetensors(dir + "/model.safetensors", tensors);
  return dir;
}

template <typename T>
std::string bytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

TEST(Safetensors, ReadsEveryDtype) {
  std::vector<float> x = {1.5f, -2.0f, 0.25f, 3.0f, -0.125f, 8.0f};
  std::vector<uint16_t> h, b;
  for (float v : x) {
    h.push_back(fp32_to_fp16(v));
    b.push_back(fp32_to_bf16(v));
  }
  // FP8: a 130×3 matrix, two 128-row blocks scaled by 2 and 0.5.
  std::vector<uint8_t> q(130 * 3);
  std::vector<float> want(130 * 3);
  for (int r = 0; r < 130; ++r)
    for (int c = 0; c < 3; ++c) {
      uint8_t code = static_cast<uint8_t>((r * 3 + c) % 0x7E);  // finite e4m3 codes, positive
      q[r * 3 + c] = code;
      want[r * 3 + c] = fp8_e4m3_to_fp32(code) * (r < 128 ? 2.0f : 0.5f);
    }
  std::vector<float> scale = {2.0f, 0.5f};
  std::string dir = dir_with("dtypes", {{"f32", "F32", {2, 3}, bytes(x)},
                                        {"f16", "F16", {2, 3}, bytes(h)},
                                        {"bf16", "BF16", {6}, bytes(b)},
                                        {"fp8", "F8_E4M3", {130, 3}, bytes(q)},
                                        {"fp8_scale_inv", "F32", {2, 1}, bytes(scale)}});
  auto m = SafetensorsModel::open(dir);
  for (const char* name : {"f32", "f16", "bf16"}) {
    const StTensor& t = m->require(name);
    std::vector<float> out(6);
    m->read_rows(t, 0, t.rows(), out.data());
    EXPECT_EQ(out, x) << name;
  }
  const StTensor& t = m->require("fp8");
  m->check(t, {130, 3});
  std::vector<float> out(130 * 3);
  m->read_rows(t, 0, 130, out.data());
  EXPECT_EQ(out, want);
  std::vector<float> tail(3);
  m->read_rows(t, 129, 1, tail.data());  // rows read alone get their block's scale too
  EXPECT_EQ(tail, std::vector<float>(want.end() - 3, want.end()));
  EXPECT_THROW(m->read_rows(t, 129, 2, tail.data()), Error);
  EXPECT_THROW(m->check(t, {3, 130}), Error);
}

TEST(Safetensors, Fp8NeedsAWellShapedScale) {
  std::vector<uint8_t> q(4 * 4, 0x38);
  std::vector<float> bad_scale = {1, 1};
  std::string dir = dir_with("fp8_scale", {{"w", "F8_E4M3", {4, 4}, bytes(q)}, {"w_scale_inv", "F32", {1, 2}, bytes(bad_scale)},
                                           {"v", "F8_E4M3", {4, 4}, bytes(q)}});
  auto m = SafetensorsModel::open(dir);
  try {
    m->check(m->require("w"), {4, 4});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("w_scale_inv"), std::string::npos) << e.what();
  }
  EXPECT_THROW(m->check(m->require("v"), {4, 4}), Error);  // no scale at all
}

// A valid file, then corrupted in one field at a time.
std::string corrupt(const std::string& tag, const std::string& header_json, const std::string& data,
                    int64_t header_len_delta = 0) {
  std::string dir = test::temp_dir() + "/st_bad_" + tag;
  fs::create_directories(dir);
  uint64_t n = header_json.size() + header_len_delta;
  std::string file(reinterpret_cast<const char*>(&n), 8);
  write_file_atomic(dir + "/model.safetensors", file + header_json + data);
  return dir;
}

TEST(Safetensors, BadHeadersFailNamingFileAndTensor) {
  const std::string data(24, '\0');
  struct Case {
    std::string tag, header, needle;
    int64_t delta = 0;
  } cases[] = {
      {"past_end", R"({"w":{"dtype":"F32","shape":[2,4],"data_offsets":[0,32]}})", "runs past"},
      {"size", R"({"w":{"dtype":"F32","shape":[2,4],"data_offsets":[0,24]}})", "needs 32 bytes"},
      {"reversed", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", "tensor w: data"},
      {"dtype", R"({"w":{"dtype":"F7","shape":[2],"data_offsets":[0,8]}})", "unknown dtype F7"},
      {"shape", R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", "invalid shape"},
      {"no_offsets", R"({"w":{"dtype":"F32","shape":[2]}})", "data_offsets"},
      {"json", R"({"w":{"dtype":"F32",)", "invalid safetensors header JSON"},
      {"not_object", R"([1,2,3])", "not a JSON object"},
      {"header_len", R"({})", "does not fit", 1000},
      {"overflow", R"({"w":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,8]}})", "overflow"},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.tag);
    std::string dir = corrupt(c.tag, c.header, data, c.delta);
    try {
      SafetensorsModel::open(dir);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(dir + "/model.safetensors"), std::string::npos) << msg;
      EXPECT_NE(msg.find(c.needle), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos);
    }
  }
  std::string tiny = test::temp_dir() + "/st_tiny";
  fs::create_directories(tiny);
  write_file_atomic(tiny + "/model.safetensors", "abc");
  EXPECT_THROW(SafetensorsModel::open(tiny), Error);
}

TEST(Safetensors, IndexShardNamesMayNotLeaveTheDirectory) {
  std::string dir = dir_with("escape", {{"w", "F32", {1}, std::string(4, '\0')}});
  write_file_atomic(dir + "/model.safetensors.index.json", R"({"weight_map":{"w":"../st_dtypes/model.safetensors"}})");
  try {
    SafetensorsModel::open(dir);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("invalid shard name"), std::string::npos) << e.what();
  }
}

TEST(Safetensors, IndexShardNameTheOsRefusesIsAnErrorNotAThrowFromTheLibrary) {
  std::string dir = dir_with("long_name", {{"w", "F32", {1}, std::string(4, '\0')}});
  write_file_atomic(dir + "/model.safetensors.index.json",
                    R"({"weight_map":{"w":")" + std::string(400, 'y') + R"("}})");  // over NAME_MAX
  try {
    SafetensorsModel::open(dir);
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model.safetensors.index.json: tensor w: shard yyy"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos);
  }
}

TEST(Safetensors, UnindexedShardsMayNotRepeatATensor) {
  std::string dir = dir_with("dup", {{"w", "F32", {1}, std::string(4, '\0')}});
  write_safetensors(dir + "/second.safetensors", {{"w", "F32", {1}, std::string(4, '\0')}});
  EXPECT_THROW(SafetensorsModel::open(dir), Error);
}

}  // namespace
}  // namespace mlamoe
