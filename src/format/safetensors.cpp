#include "format/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/files.h"
#include "format/quant.h"

namespace mlamoe {

namespace fs = std::filesystem;

namespace {

struct DtypeInfo {
  const char* name;
  StDtype dtype;
  size_t size;
};
constexpr DtypeInfo kDtypes[] = {
    {"F32", StDtype::F32, 4},   {"F16", StDtype::F16, 2},    {"BF16", StDtype::BF16, 2},
    {"F8_E4M3", StDtype::F8_E4M3, 1}, {"F64", StDtype::Other, 8}, {"I64", StDtype::Other, 8},
    {"I32", StDtype::Other, 4}, {"I16", StDtype::Other, 2},  {"I8", StDtype::Other, 1},
    {"U8", StDtype::Other, 1},  {"BOOL", StDtype::Other, 1}, {"F8_E5M2", StDtype::Other, 1},
    {"U16", StDtype::Other, 2}, {"U32", StDtype::Other, 4},  {"U64", StDtype::Other, 8},
};

float load_value(StDtype d, const uint8_t* p) {
  switch (d) {
    case StDtype::F32: { float f; std::memcpy(&f, p, 4); return f; }
    case StDtype::F16: { uint16_t h; std::memcpy(&h, p, 2); return fp16_to_fp32(h); }
    case StDtype::BF16: { uint16_t h; std::memcpy(&h, p, 2); return bf16_to_fp32(h); }
    case StDtype::F8_E4M3: return fp8_e4m3_to_fp32(*p);
    default: return 0.0f;
  }
}

size_t dtype_size(StDtype d) {
  switch (d) {
    case StDtype::F32: return 4;
    case StDtype::F16: case StDtype::BF16: return 2;
    case StDtype::F8_E4M3: return 1;
    default: return 0;
  }
}

}  // namespace

int64_t StTensor::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// Not n_elements() / cols(): a tensor whose last dimension is 0 still has rows (and the
// division was by zero). The leading product cannot overflow: open() bounds every
// running product of the shape in order, and a 0 keeps it 0.
int64_t StTensor::rows() const {
  int64_t n = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) n *= shape[i];
  return n;
}

std::string StTensor::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// ---- one file ----

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto f = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  f->path_ = path;
  f->map_ = MappedFile(path);
  const uint8_t* base = f->map_.data();
  const size_t size = f->map_.size();
  if (size < 8) fail(path, ": too small to be a safetensors file (", size, " bytes)");
  uint64_t header_len;
  std::memcpy(&header_len, base, 8);
  if (header_len > kMaxHeader || header_len > size - 8)
    fail(path, ": header of ", header_len, " bytes does not fit in a file of ", size, " bytes (truncated or not safetensors)");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(base + 8, base + 8 + header_len);
  } catch (const std::exception& e) {
    fail(path, ": invalid safetensors header JSON: ", e.what());
  }
  if (!header.is_object()) fail(path, ": safetensors header is not a JSON object");
  const uint8_t* data = base + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  for (auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    auto bad = [&, &key = name](auto&&... why) { fail(path, ": tensor ", key, ": ", why...); };  // clang 14 cannot capture a structured binding
    if (!info.is_object()) bad("entry is not an object");
    StTensor t;
    t.name = name;
    t.file = &f->path_;
    auto dt = info.find("dtype");
    if (dt == info.end() || !dt->is_string()) bad("missing dtype");
    t.dtype_name = dt->get<std::string>();
    size_t esize = 0;
    for (auto& d : kDtypes)
      if (t.dtype_name == d.name) {
        t.dtype = d.dtype;
        esize = d.size;
      }
    if (!esize) bad("unknown dtype ", t.dtype_name);
    auto sh = info.find("shape");
    if (sh == info.end() || !sh->is_array() || sh->size() > 8) bad("missing or invalid shape");
    int64_t n = 1;
    for (auto& d : *sh) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > (1ull << 40)) bad("invalid shape ", sh->dump());
      t.shape.push_back(d.get<int64_t>());
      if (__builtin_mul_overflow(n, t.shape.back(), &n) || n > (1ll << 42)) bad("element count overflows");
    }
    auto off = info.find("data_offsets");
    if (off == info.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      bad("missing or invalid data_offsets");
    uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
    if (begin > end || end > data_size)
      bad("data [", begin, ", ", end, ") runs past the ", data_size, " data bytes of the file (truncated?)");
    if (end - begin != static_cast<uint64_t>(n) * esize)
      bad(t.dtype_name, " ", t.shape_string(), " needs ", static_cast<uint64_t>(n) * esize, " bytes, data_offsets give ",
          end - begin);
    t.data = data + begin;
    t.nbytes = end - begin;
    f->tensors_.emplace(name, std::move(t));
  }
  return f;
}

const StTensor* SafetensorsFile::find(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

// ---- a checkpoint directory ----

std::unique_ptr<SafetensorsModel> SafetensorsModel::open(const std::string& dir) {
  auto m = std::unique_ptr<SafetensorsModel>(new SafetensorsModel());
  m->dir_ = dir;
  std::error_code ec;  // the non-throwing overloads: a name the OS refuses is a clear error, not a throw
  if (!fs::is_directory(dir, ec)) fail(dir, ": not a directory");
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  if (fs::exists(index_path, ec)) {
    m->listing_ = index_path.string();
    nlohmann::json index;
    try {
      index = nlohmann::json::parse(read_file(m->listing_));
    } catch (const nlohmann::json::exception& e) {
      fail(m->listing_, ": invalid JSON: ", e.what());
    }
    auto wm = index.find("weight_map");
    if (!index.is_object() || wm == index.end() || !wm->is_object()) fail(m->listing_, ": no weight_map object");
    std::map<std::string, SafetensorsFile*> shards;
    for (auto& [name, file] : wm->items()) {
      if (!file.is_string()) fail(m->listing_, ": tensor ", name, ": shard name is not a string");
      std::string shard = file.get<std::string>();
      // Shards live beside the index: refuse paths that would leave the directory.
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..")
        fail(m->listing_, ": tensor ", name, ": invalid shard name '", shard, "'");
      if (!shards.count(shard)) {
        const fs::path p = fs::path(dir) / shard;
        if (!fs::exists(p, ec))
          fail(m->listing_, ": tensor ", name, ": shard ", shard, ec ? ": " + ec.message() : " does not exist");
        m->files_.push_back(SafetensorsFile::open(p.string()));
        shards[shard] = m->files_.back().get();
      }
      const StTensor* t = shards[shard]->find(name);
      if (!t) fail(shards[shard]->path(), ": missing tensor ", name, " (listed in ", m->listing_, ")");
      m->index_[name] = t;
    }
  } else {
    m->listing_ = dir;
    std::vector<std::string> paths;
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
      if (it->path().extension() == ".safetensors") paths.push_back(it->path().string());
    if (ec) fail(dir, ": cannot list: ", ec.message());
    std::sort(paths.begin(), paths.end());
    if (paths.empty()) fail(dir, ": no model.safetensors.index.json and no *.safetensors files");
    for (auto& p : paths) {
      m->files_.push_back(SafetensorsFile::open(p));
      for (auto& [name, t] : m->files_.back()->tensors()) {
        if (m->index_.count(name)) fail(p, ": tensor ", name, " also in ", *m->index_[name]->file);
        m->index_[name] = &t;
      }
    }
  }
  return m;
}

const StTensor* SafetensorsModel::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

const StTensor& SafetensorsModel::require(std::string_view name) const {
  const StTensor* t = find(name);
  if (!t) fail(listing_, ": missing tensor ", name);
  return *t;
}

std::vector<std::string> SafetensorsModel::names() const {
  std::vector<std::string> out;
  for (auto& [name, t] : index_) out.push_back(name);
  return out;
}

void SafetensorsModel::set_block_size(int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) fail(dir_, ": invalid FP8 weight_block_size [", rows, ", ", cols, "]");
  block_rows_ = rows;
  block_cols_ = cols;
}

const StTensor* SafetensorsModel::scale_of(const StTensor& t) const { return find(t.name + "_scale_inv"); }

void SafetensorsModel::check(const StTensor& t, const std::vector<int64_t>& shape) const {
  if (t.shape != shape) {
    std::string want = "[";
    for (size_t i = 0; i < shape.size(); ++i) want += (i ? ", " : "") + std::to_string(shape[i]);
    fail(*t.file, ": tensor ", t.name, ": shape ", t.shape_string(), ", expected ", want, "]");
  }
  switch (t.dtype) {
    case StDtype::F32: case StDtype::F16: case StDtype::BF16: return;
    case StDtype::F8_E4M3: {
      const StTensor* s = scale_of(t);
      if (!s) fail(*t.file, ": tensor ", t.name, ": F8_E4M3 weight without ", t.name, "_scale_inv");
      const int64_t br = (t.rows() + block_rows_ - 1) / block_rows_, bc = (t.cols() + block_cols_ - 1) / block_cols_;
      if (s->dtype != StDtype::F32 || s->shape != std::vector<int64_t>{br, bc})
        fail(*s->file, ": tensor ", s->name, ": ", s->dtype_name, " ", s->shape_string(), ", expected F32 [", br, ", ",
             bc, "] (one scale per ", block_rows_, "x", block_cols_, " block)");
      return;
    }
    default: fail(*t.file, ": tensor ", t.name, ": unsupported dtype ", t.dtype_name, " (F32, F16, BF16, F8_E4M3)");
  }
}

void SafetensorsModel::read_rows(const StTensor& t, int64_t first, int64_t n, float* out) const {
  const int64_t cols = t.cols();
  if (first < 0 || n < 0 || first + n > t.rows())
    fail(*t.file, ": tensor ", t.name, ": rows [", first, ", ", first + n, ") out of range (", t.rows(), " rows)");
  const size_t es = dtype_size(t.dtype);
  if (!es) fail(*t.file, ": tensor ", t.name, ": unsupported dtype ", t.dtype_name, " (F32, F16, BF16, F8_E4M3)");
  const StTensor* scale = t.dtype == StDtype::F8_E4M3 ? scale_of(t) : nullptr;
  if (t.dtype == StDtype::F8_E4M3) check(t, t.shape);
  const int64_t scale_cols = scale ? scale->cols() : 0;
  for (int64_t r = 0; r < n; ++r) {
    const int64_t row = first + r;
    const uint8_t* src = t.data + static_cast<size_t>(row) * cols * es;
    float* dst = out + r * cols;
    if (t.dtype == StDtype::F32) {
      std::memcpy(dst, src, static_cast<size_t>(cols) * 4);
      continue;
    }
    // One loop per dtype (the switch hoisted out of the element loop).
    switch (t.dtype) {
      case StDtype::F16:
        for (int64_t c = 0; c < cols; ++c) dst[c] = load_value(StDtype::F16, src + 2 * c);
        break;
      case StDtype::BF16:
        for (int64_t c = 0; c < cols; ++c) dst[c] = load_value(StDtype::BF16, src + 2 * c);
        break;
      default:
        for (int64_t c = 0; c < cols; ++c) dst[c] = load_value(StDtype::F8_E4M3, src + c);
        break;
    }
    if (scale) {
      const uint8_t* srow = scale->data + static_cast<size_t>(row / block_rows_) * scale_cols * 4;
      for (int64_t c = 0; c < cols; ++c) dst[c] *= load_value(StDtype::F32, srow + (c / block_cols_) * 4);
    }
  }
}

void write_safetensors(const std::string& path, const std::vector<StTensorData>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  AtomicFile f(path);
  const uint64_t n = h.size();
  f.write(&n, 8);
  f.write(h);
  for (const auto& t : tensors) f.write(t.bytes);
  f.commit();
}

}  // namespace mlamoe
