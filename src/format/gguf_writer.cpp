#include "format/gguf_writer.h"

#include <cstring>

#include "common/error.h"
#include "common/files.h"

namespace mlamoe {

namespace {

template <typename T>
void put(std::string& s, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  s.append(b, sizeof(T));
}
void put_string(std::string& s, std::string_view v) {
  put<uint64_t>(s, v.size());
  s.append(v);
}
template <typename T>
std::string scalar(GgufType t, T v) {
  std::string s;
  put<uint32_t>(s, static_cast<uint32_t>(t));
  put<T>(s, v);
  return s;
}

// Integers decoded by the reader (as int64) re-encoded in their declared width.
void put_int_as(std::string& s, GgufType t, int64_t v) {
  switch (t) {
    case GgufType::UINT8: case GgufType::BOOL: put<uint8_t>(s, static_cast<uint8_t>(v)); break;
    case GgufType::INT8: put<int8_t>(s, static_cast<int8_t>(v)); break;
    case GgufType::UINT16: put<uint16_t>(s, static_cast<uint16_t>(v)); break;
    case GgufType::INT16: put<int16_t>(s, static_cast<int16_t>(v)); break;
    case GgufType::UINT32: put<uint32_t>(s, static_cast<uint32_t>(v)); break;
    case GgufType::INT32: put<int32_t>(s, static_cast<int32_t>(v)); break;
    case GgufType::UINT64: put<uint64_t>(s, static_cast<uint64_t>(v)); break;
    case GgufType::INT64: put<int64_t>(s, v); break;
    default: fail("internal: not an integer type ", gguf_type_name(t));
  }
}

}  // namespace

GgufWriter::GgufWriter(std::string path) : path_(std::move(path)) {}
GgufWriter::~GgufWriter() = default;  // an unfinished AtomicFile removes its temp file

void GgufWriter::set_raw(std::string_view key, std::string payload) {
  if (begun_) fail(path_, ": metadata ", key, " set after the header was written");
  if (key.empty()) fail(path_, ": empty metadata key");
  for (auto& kv : kv_)
    if (kv.key == key) {
      kv.payload = std::move(payload);
      return;
    }
  kv_.push_back({std::string(key), std::move(payload)});
}

void GgufWriter::set_u8(std::string_view k, uint8_t v) { set_raw(k, scalar(GgufType::UINT8, v)); }
void GgufWriter::set_i8(std::string_view k, int8_t v) { set_raw(k, scalar(GgufType::INT8, v)); }
void GgufWriter::set_u16(std::string_view k, uint16_t v) { set_raw(k, scalar(GgufType::UINT16, v)); }
void GgufWriter::set_i16(std::string_view k, int16_t v) { set_raw(k, scalar(GgufType::INT16, v)); }
void GgufWriter::set_u32(std::string_view k, uint32_t v) { set_raw(k, scalar(GgufType::UINT32, v)); }
void GgufWriter::set_i32(std::string_view k, int32_t v) { set_raw(k, scalar(GgufType::INT32, v)); }
void GgufWriter::set_u64(std::string_view k, uint64_t v) { set_raw(k, scalar(GgufType::UINT64, v)); }
void GgufWriter::set_i64(std::string_view k, int64_t v) { set_raw(k, scalar(GgufType::INT64, v)); }
void GgufWriter::set_f32(std::string_view k, float v) { set_raw(k, scalar(GgufType::FLOAT32, v)); }
void GgufWriter::set_f64(std::string_view k, double v) { set_raw(k, scalar(GgufType::FLOAT64, v)); }
void GgufWriter::set_bool(std::string_view k, bool v) { set_raw(k, scalar(GgufType::BOOL, uint8_t(v ? 1 : 0))); }

void GgufWriter::set_string(std::string_view key, std::string_view v) {
  std::string s;
  put<uint32_t>(s, static_cast<uint32_t>(GgufType::STRING));
  put_string(s, v);
  set_raw(key, std::move(s));
}

void GgufWriter::set_array(std::string_view key, GgufType elem, const void* data, size_t n) {
  size_t es = gguf_scalar_size(elem);
  if (es == 0) fail(path_, ": metadata ", key, ": arrays of ", gguf_type_name(elem), " need their own setter");
  std::string s;
  put<uint32_t>(s, static_cast<uint32_t>(GgufType::ARRAY));
  put<uint32_t>(s, static_cast<uint32_t>(elem));
  put<uint64_t>(s, n);
  if (n) s.append(static_cast<const char*>(data), n * es);
  set_raw(key, std::move(s));
}

template <typename Strings>
static std::string string_array(const Strings& v) {
  std::string s;
  put<uint32_t>(s, static_cast<uint32_t>(GgufType::ARRAY));
  put<uint32_t>(s, static_cast<uint32_t>(GgufType::STRING));
  put<uint64_t>(s, v.size());
  for (const auto& x : v) put_string(s, x);
  return s;
}
void GgufWriter::set_string_array(std::string_view key, const std::vector<std::string>& v) {
  set_raw(key, string_array(v));
}
void GgufWriter::set_string_array(std::string_view key, const std::vector<std::string_view>& v) {
  set_raw(key, string_array(v));
}

void GgufWriter::set_value(std::string_view key, const GgufValue& v) {
  std::string s;
  if (v.is_array()) {
    put<uint32_t>(s, static_cast<uint32_t>(GgufType::ARRAY));
    put<uint32_t>(s, static_cast<uint32_t>(v.elem_type));
    put<uint64_t>(s, v.array_size());
    if (v.elem_type == GgufType::STRING) {
      for (auto sv : v.as_string_array()) put_string(s, sv);
    } else if (v.elem_type == GgufType::FLOAT32) {
      for (float f : v.as_float_array()) put<float>(s, f);
    } else if (v.elem_type == GgufType::FLOAT64) {
      // The reader hands float arrays out as float32; f64 arrays do not occur in
      // the metadata we copy (tokenizer.*, general.*), so this widening is exact there.
      for (float f : v.as_float_array()) put<double>(s, f);
    } else {
      for (int64_t x : v.as_int_array()) put_int_as(s, v.elem_type, x);
    }
  } else {
    put<uint32_t>(s, static_cast<uint32_t>(v.type));
    switch (v.type) {
      case GgufType::STRING: put_string(s, v.as_string()); break;
      case GgufType::FLOAT32: put<float>(s, static_cast<float>(v.as_float())); break;
      case GgufType::FLOAT64: put<double>(s, v.as_float()); break;
      default: put_int_as(s, v.type, v.as_int()); break;
    }
  }
  set_raw(key, std::move(s));
}

bool GgufWriter::has(std::string_view key) const {
  for (auto& kv : kv_)
    if (kv.key == key) return true;
  return false;
}

void GgufWriter::remove(std::string_view key) {
  if (begun_) fail(path_, ": metadata ", key, " removed after the header was written");
  std::erase_if(kv_, [&](const Kv& kv) { return kv.key == key; });
}

size_t GgufWriter::add_tensor(std::string name, std::vector<int64_t> ne, GgmlType type) {
  if (begun_) fail(path_, ": tensor ", name, " declared after the header was written");
  const TypeTraits* tr = type_traits(type);
  if (!tr) fail(path_, ": tensor ", name, ": unknown type ", static_cast<uint32_t>(type));
  if (ne.empty() || ne.size() > 4) fail(path_, ": tensor ", name, ": ", ne.size(), " dimensions (1 to 4 allowed)");
  int64_t n = 1;
  for (int64_t d : ne) {
    if (d <= 0) fail(path_, ": tensor ", name, ": invalid dimension ", d);
    n *= d;
  }
  if (ne[0] % tr->block_size)
    fail(path_, ": tensor ", name, ": row length ", ne[0], " is not a multiple of the ", tr->name, " block size ",
         tr->block_size);
  for (auto& t : tensors_)
    if (t.name == name) fail(path_, ": duplicate tensor ", name);
  size_t nbytes = static_cast<size_t>(n / tr->block_size) * tr->type_size;
  tensors_.push_back({std::move(name), std::move(ne), type, nbytes, 0});
  return nbytes;
}

uint64_t GgufWriter::total_tensor_bytes() const {
  uint64_t total = 0;
  for (auto& t : tensors_) total += t.nbytes;
  return total;
}

void GgufWriter::pad_to_alignment() {
  static const char zeros[65536] = {};
  uint64_t pad = (alignment_ - out_->written() % alignment_) % alignment_;
  out_->write(zeros, pad);
}

void GgufWriter::begin() {
  if (begun_) fail(path_, ": header already written");
  for (auto& kv : kv_) {
    if (kv.key != "general.alignment") continue;
    uint32_t type;
    std::memcpy(&type, kv.payload.data(), 4);
    uint64_t al = 0;
    if (type == static_cast<uint32_t>(GgufType::UINT32)) {
      uint32_t v;
      std::memcpy(&v, kv.payload.data() + 4, 4);
      al = v;
    }
    if (al == 0 || (al & (al - 1)) || al > 65536)
      fail(path_, ": general.alignment must be a u32 power of two up to 65536");
    alignment_ = al;
  }
  uint64_t offset = 0;
  for (auto& t : tensors_) {
    t.offset = offset;
    offset += (t.nbytes + alignment_ - 1) / alignment_ * alignment_;
  }
  out_ = std::make_unique<AtomicFile>(path_);
  std::string h;
  put<uint32_t>(h, GgufFile::kMagic);
  put<uint32_t>(h, 3);
  put<uint64_t>(h, tensors_.size());
  put<uint64_t>(h, kv_.size());
  for (auto& kv : kv_) {
    put_string(h, kv.key);
    h += kv.payload;
  }
  for (auto& t : tensors_) {
    put_string(h, t.name);
    put<uint32_t>(h, static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) put<uint64_t>(h, static_cast<uint64_t>(d));
    put<uint32_t>(h, static_cast<uint32_t>(t.type));
    put<uint64_t>(h, t.offset);
  }
  out_->write(h);
  pad_to_alignment();
  begun_ = true;
  current_ = 0;
  current_written_ = 0;
}

std::string_view GgufWriter::next_tensor() const {
  return current_ < tensors_.size() ? std::string_view(tensors_[current_].name) : std::string_view();
}

void GgufWriter::write_data(const void* data, size_t n) {
  if (!begun_) fail(path_, ": tensor data written before the header");
  if (n == 0) return;
  if (current_ >= tensors_.size()) fail(path_, ": more tensor data than the declared tensors hold");
  const TensorInfo& t = tensors_[current_];
  if (n > t.nbytes - current_written_)
    fail(path_, ": tensor ", t.name, ": ", current_written_ + n, " bytes written, declared ", t.nbytes);
  out_->write(data, n);
  current_written_ += n;
  if (current_written_ == t.nbytes) {
    pad_to_alignment();
    ++current_;
    current_written_ = 0;
  }
}

void GgufWriter::write_tensor(std::string_view name, const void* data, size_t n) {
  if (current_ >= tensors_.size() || tensors_[current_].name != name || current_written_ != 0)
    fail(path_, ": tensor ", name, " written out of order (next due: ",
         next_tensor().empty() ? "none" : std::string(next_tensor()), ")");
  if (n != tensors_[current_].nbytes)
    fail(path_, ": tensor ", name, ": ", n, " bytes given, declared ", tensors_[current_].nbytes);
  write_data(data, n);
}

void GgufWriter::finish() {
  if (!begun_) begin();
  if (current_ != tensors_.size())
    fail(path_, ": tensor ", tensors_[current_].name, " was not written (", current_written_, " of ",
         tensors_[current_].nbytes, " bytes)");
  out_->commit();
  finished_ = true;
}

}  // namespace mlamoe
