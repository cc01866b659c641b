#include "format/gguf.h"

#include <cstring>
#include <sstream>

#include "common/error.h"

namespace mlamoe {

std::string_view gguf_type_name(GgufType t) {
  switch (t) {
    case GgufType::UINT8: return "u8";
    case GgufType::INT8: return "i8";
    case GgufType::UINT16: return "u16";
    case GgufType::INT16: return "i16";
    case GgufType::UINT32: return "u32";
    case GgufType::INT32: return "i32";
    case GgufType::FLOAT32: return "f32";
    case GgufType::BOOL: return "bool";
    case GgufType::STRING: return "string";
    case GgufType::ARRAY: return "array";
    case GgufType::UINT64: return "u64";
    case GgufType::INT64: return "i64";
    case GgufType::FLOAT64: return "f64";
  }
  return "?";
}

size_t gguf_scalar_size(GgufType t) {
  switch (t) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::BOOL: return 1;
    case GgufType::UINT16: case GgufType::INT16: return 2;
    case GgufType::UINT32: case GgufType::INT32: case GgufType::FLOAT32: return 4;
    case GgufType::UINT64: case GgufType::INT64: case GgufType::FLOAT64: return 8;
    default: return 0;
  }
}

// ---- GgufValue ----

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::UINT16: case GgufType::INT16:
    case GgufType::UINT32: case GgufType::INT32: case GgufType::UINT64: case GgufType::INT64:
    case GgufType::BOOL:
      return true;
    default:
      return false;
  }
}

int64_t GgufValue::as_int() const {
  if (is_integer()) {
    if (type == GgufType::UINT64 && u_ > static_cast<uint64_t>(INT64_MAX)) fail("integer ", u_, " is out of range");
    return i_;
  }
  fail("expected an integer, found ", gguf_type_name(type));
}
uint64_t GgufValue::as_uint() const {
  if (is_integer()) {
    if (i_ < 0 && type != GgufType::UINT64) fail("expected a non-negative integer, found ", i_);
    return u_;
  }
  fail("expected an integer, found ", gguf_type_name(type));
}
double GgufValue::as_float() const {
  if (is_float()) return f_;
  if (is_integer()) return static_cast<double>(i_);
  fail("expected a number, found ", gguf_type_name(type));
}
bool GgufValue::as_bool() const {
  if (is_integer()) return u_ != 0;
  fail("expected a bool, found ", gguf_type_name(type));
}
std::string_view GgufValue::as_string() const {
  if (type == GgufType::STRING) return s_;
  fail("expected a string, found ", gguf_type_name(type));
}

static int64_t read_int_elem(GgufType t, const uint8_t* p) {
  switch (t) {
    case GgufType::UINT8: case GgufType::BOOL: return *p;
    case GgufType::INT8: return static_cast<int8_t>(*p);
    case GgufType::UINT16: { uint16_t v; std::memcpy(&v, p, 2); return v; }
    case GgufType::INT16: { int16_t v; std::memcpy(&v, p, 2); return v; }
    case GgufType::UINT32: { uint32_t v; std::memcpy(&v, p, 4); return v; }
    case GgufType::INT32: { int32_t v; std::memcpy(&v, p, 4); return v; }
    case GgufType::UINT64: { uint64_t v; std::memcpy(&v, p, 8); return static_cast<int64_t>(v); }
    case GgufType::INT64: { int64_t v; std::memcpy(&v, p, 8); return v; }
    default: fail("expected an integer array, found ", gguf_type_name(t), " elements");
  }
}

std::vector<int64_t> GgufValue::as_int_array() const {
  if (!is_array()) fail("expected an array, found ", gguf_type_name(type));
  size_t es = gguf_scalar_size(elem_type);
  std::vector<int64_t> out(count_);
  for (size_t i = 0; i < count_; ++i) out[i] = read_int_elem(elem_type, array_data_ + i * es);
  return out;
}

std::vector<float> GgufValue::as_float_array() const {
  if (!is_array()) fail("expected an array, found ", gguf_type_name(type));
  std::vector<float> out(count_);
  for (size_t i = 0; i < count_; ++i) {
    if (elem_type == GgufType::FLOAT32) std::memcpy(&out[i], array_data_ + 4 * i, 4);
    else if (elem_type == GgufType::FLOAT64) { double d; std::memcpy(&d, array_data_ + 8 * i, 8); out[i] = float(d); }
    else out[i] = static_cast<float>(read_int_elem(elem_type, array_data_ + i * gguf_scalar_size(elem_type)));
  }
  return out;
}

const std::vector<std::string_view>& GgufValue::as_string_array() const {
  if (!is_array() || elem_type != GgufType::STRING)
    fail("expected a string array, found ", gguf_type_name(type));
  return strings_;
}

std::string GgufValue::to_string(size_t max_items) const {
  std::ostringstream os;
  if (is_array()) {
    os << "[" << count_ << " " << gguf_type_name(elem_type) << "]";
    if (count_ && max_items) {
      os << " ";
      for (size_t i = 0; i < count_ && i < max_items; ++i) {
        if (i) os << ", ";
        if (elem_type == GgufType::STRING) os << '"' << strings_[i] << '"';
        else if (elem_type == GgufType::FLOAT32 || elem_type == GgufType::FLOAT64) os << as_float_array()[i];
        else os << read_int_elem(elem_type, array_data_ + i * gguf_scalar_size(elem_type));
      }
      if (count_ > max_items) os << ", ...";
    }
    return os.str();
  }
  if (type == GgufType::STRING) {
    std::string s(s_.substr(0, 120));
    for (auto& c : s) if (c == '\n') c = ' ';
    return s + (s_.size() > 120 ? "..." : "");
  }
  if (type == GgufType::BOOL) return u_ ? "true" : "false";
  if (is_float()) { os << f_; return os.str(); }
  os << i_;
  return os.str();
}

// ---- parser ----

class GgufParser {
 public:
  GgufParser(GgufFile& f) : f_(f), p_(f.base_), end_(f.base_ + f.size_) {}

  void run() {
    uint32_t magic = u32("magic");
    if (magic != GgufFile::kMagic) fail(f_.path_, ": not a GGUF file (bad magic)");
    f_.version_ = u32("version");
    if (f_.version_ == 0x02000000u || f_.version_ == 0x03000000u)
      fail(f_.path_, ": big-endian GGUF files are not supported");
    if (f_.version_ < 2 || f_.version_ > 3)
      fail(f_.path_, ": unsupported GGUF version ", f_.version_, " (mlamoe reads versions 2 and 3)");
    uint64_t n_tensors = u64("tensor count");
    uint64_t n_kv = u64("metadata count");
    // Every tensor info needs at least 8+4+8+4+8 bytes and every kv at least 8+4+1:
    // refuse counts the file cannot possibly hold before allocating anything.
    if (n_tensors > GgufFile::kMaxTensors || n_tensors * 32 > remaining())
      fail(f_.path_, ": tensor count ", n_tensors, " does not fit in a file of ", f_.size_, " bytes");
    if (n_kv > GgufFile::kMaxMetadata || n_kv * 13 > remaining())
      fail(f_.path_, ": metadata count ", n_kv, " does not fit in a file of ", f_.size_, " bytes");

    f_.kv_.reserve(n_kv);
    for (uint64_t i = 0; i < n_kv; ++i) {
      std::string key(str("metadata key"));
      GgufType t = value_type(key);
      GgufValue v = value(t, key, 0);
      if (f_.kv_index_.count(key)) fail(f_.path_, ": duplicate metadata key ", key);
      f_.kv_index_.emplace(key, f_.kv_.size());
      f_.kv_.emplace_back(std::move(key), std::move(v));
    }
    if (const GgufValue* a = f_.find("general.alignment")) {
      uint64_t al = a->is_integer() && a->i_ > 0 ? a->u_ : 0;
      if (al == 0 || (al & (al - 1)) != 0 || al > 65536)
        fail(f_.path_, ": general.alignment must be a power of two up to 65536, found ", a->to_string());
      f_.alignment_ = al;
    }

    f_.tensors_.reserve(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) {
      GgufTensor t;
      t.name = std::string(str("tensor name"));
      uint32_t n_dims = u32("tensor dimensions");
      if (n_dims == 0 || n_dims > 4) fail(f_.path_, ": tensor ", t.name, ": ", n_dims, " dimensions (1 to 4 allowed)");
      int64_t n_el = 1;
      for (uint32_t d = 0; d < n_dims; ++d) {
        uint64_t ne = u64("tensor shape");
        if (ne == 0 || ne > (1ull << 40)) fail(f_.path_, ": tensor ", t.name, ": invalid dimension ", ne);
        if (__builtin_mul_overflow(n_el, static_cast<int64_t>(ne), &n_el) || n_el > (1ll << 42))
          fail(f_.path_, ": tensor ", t.name, ": element count overflows");
        t.ne.push_back(static_cast<int64_t>(ne));
      }
      uint32_t type = u32("tensor type");
      const TypeTraits* tr = type_traits(type);
      if (!tr) fail(f_.path_, ": tensor ", t.name, ": unknown tensor type ", type);
      t.type = static_cast<GgmlType>(type);
      if (t.ne[0] % tr->block_size != 0)
        fail(f_.path_, ": tensor ", t.name, ": row length ", t.ne[0], " is not a multiple of the ", tr->name,
             " block size ", tr->block_size);
      t.nbytes = static_cast<size_t>(n_el / tr->block_size) * tr->type_size;
      t.offset = u64("tensor offset");
      if (t.offset % f_.alignment_ != 0)
        fail(f_.path_, ": tensor ", t.name, ": offset ", t.offset, " is not aligned to ", f_.alignment_);
      if (f_.tensor_index_.count(t.name)) fail(f_.path_, ": duplicate tensor ", t.name);
      f_.tensor_index_.emplace(t.name, f_.tensors_.size());
      f_.tensors_.push_back(std::move(t));
    }

    uint64_t pos = static_cast<uint64_t>(p_ - f_.base_);
    uint64_t data_off = (pos + f_.alignment_ - 1) / f_.alignment_ * f_.alignment_;
    f_.data_offset_ = data_off;
    for (auto& t : f_.tensors_) {
      uint64_t begin = data_off + t.offset, end = 0;
      if (begin < data_off || __builtin_add_overflow(begin, static_cast<uint64_t>(t.nbytes), &end) || end > f_.size_)
        fail(f_.path_, ": tensor ", t.name, " (", t.nbytes, " bytes at offset ", t.offset,
             ") runs past the end of the file (", f_.size_, " bytes); the file is truncated or corrupt");
      t.data = f_.base_ + begin;
    }
  }

 private:
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  void need(size_t n, const char* what) {
    if (n > remaining()) fail(f_.path_, ": truncated file while reading ", what, " at byte ", p_ - f_.base_);
  }
  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_, sizeof(T));
    p_ += sizeof(T);
    return v;
  }
  uint32_t u32(const char* what) { return read<uint32_t>(what); }
  uint64_t u64(const char* what) { return read<uint64_t>(what); }
  std::string_view str(const char* what) {
    uint64_t n = u64(what);
    if (n > remaining()) fail(f_.path_, ": ", what, " of ", n, " bytes runs past the end of the file");
    std::string_view s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }
  GgufType value_type(const std::string& key) {
    uint32_t t = u32("value type");
    if (t > 12) fail(f_.path_, ": metadata ", key, ": unknown value type ", t);
    return static_cast<GgufType>(t);
  }
  GgufValue value(GgufType t, const std::string& key, int depth) {
    GgufValue v;
    v.type = t;
    switch (t) {
      case GgufType::STRING: v.s_ = str("string value"); return v;
      case GgufType::ARRAY: {
        if (depth > 0) fail(f_.path_, ": metadata ", key, ": nested arrays are not supported");
        v.elem_type = value_type(key);
        uint64_t n = u64("array length");
        if (v.elem_type == GgufType::ARRAY) fail(f_.path_, ": metadata ", key, ": nested arrays are not supported");
        size_t min_elem = v.elem_type == GgufType::STRING ? 8 : gguf_scalar_size(v.elem_type);
        if (n > remaining() / min_elem)
          fail(f_.path_, ": metadata ", key, ": array of ", n, " elements does not fit in the file");
        v.count_ = n;
        v.array_data_ = p_;
        if (v.elem_type == GgufType::STRING) {
          v.strings_.reserve(n);
          for (uint64_t i = 0; i < n; ++i) v.strings_.push_back(str("array string"));
        } else {
          p_ += n * min_elem;
        }
        return v;
      }
      case GgufType::FLOAT32: { float x = read<float>("f32 value"); v.f_ = x; return v; }
      case GgufType::FLOAT64: { v.f_ = read<double>("f64 value"); return v; }
      default: {
        size_t n = gguf_scalar_size(t);
        need(n, "integer value");
        v.i_ = read_int_elem(t, p_);
        v.u_ = static_cast<uint64_t>(v.i_);
        p_ += n;
        return v;
      }
    }
  }

  GgufFile& f_;
  const uint8_t* p_;
  const uint8_t* end_;
};

// ---- GgufFile ----

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  f->map_ = std::make_unique<MappedFile>(path);
  f->base_ = f->map_->data();
  f->size_ = f->map_->size();
  f->parse();
  return f;
}

std::unique_ptr<GgufFile> GgufFile::from_memory(const uint8_t* data, size_t size, std::string name) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = std::move(name);
  f->base_ = data;
  f->size_ = size;
  f->parse();
  return f;
}

void GgufFile::parse() {
  if (size_ < 24) fail(path_, ": file too small to be GGUF (", size_, " bytes)");
  GgufParser(*this).run();
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

std::string GgufFile::get_string(std::string_view key, std::string_view def) const {
  const GgufValue* v = find(key);
  if (!v) return std::string(def);
  if (v->type != GgufType::STRING) fail(path_, ": metadata ", key, ": expected a string, found ", gguf_type_name(v->type));
  return std::string(v->as_string());
}

int64_t GgufFile::get_int(std::string_view key, int64_t def) const {
  const GgufValue* v = find(key);
  if (!v) return def;
  if (!v->is_integer()) fail(path_, ": metadata ", key, ": expected an integer, found ", gguf_type_name(v->type));
  if (v->type == GgufType::UINT64 && v->u_ > static_cast<uint64_t>(INT64_MAX))
    fail(path_, ": metadata ", key, ": value ", v->u_, " is out of range");
  return v->as_int();
}

double GgufFile::get_float(std::string_view key, double def) const {
  const GgufValue* v = find(key);
  if (!v) return def;
  if (!v->is_float() && !v->is_integer())
    fail(path_, ": metadata ", key, ": expected a number, found ", gguf_type_name(v->type));
  return v->as_float();
}

bool GgufFile::get_bool(std::string_view key, bool def) const {
  const GgufValue* v = find(key);
  if (!v) return def;
  if (!v->is_integer()) fail(path_, ": metadata ", key, ": expected a bool, found ", gguf_type_name(v->type));
  return v->as_bool();
}

int64_t GgufFile::require_int(std::string_view key) const {
  if (!find(key)) fail(path_, ": missing metadata key ", key);
  return get_int(key, 0);
}

const GgufTensor* GgufFile::tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

int64_t GgufTensor::n_elements() const {
  int64_t n = 1;
  for (auto d : ne) n *= d;
  return n;
}

std::string GgufTensor::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

void GgufFile::release(const uint8_t* p, size_t n) const {
  if (map_) map_->release(p, n);
}

}  // namespace mlamoe
