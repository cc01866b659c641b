// What a session-file fuzz input goes through, shared by fuzz/session_fuzz.cpp and the
// ctest replay (tests/runtime/fuzz_replay_test.cpp). The first byte holds flags that
// repair what a mutation almost never gets right by chance, so the fuzzer reaches the
// code behind each check: bit 0 the magic, version, file size and trailing FNV-1a
// checksum; bit 1 the model identity; bit 2 the KV shape; bit 3 the token count (from
// the storage types the input names). The rest is the file. load_session must either
// throw Error (leaving the sequence empty) or return tokens the cache then holds.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "format/quant.h"
#include "runtime/paged_kv_cache.h"
#include "runtime/session.h"

namespace mlamoe::test {

inline void check_session(bool ok) {
  if (!ok) __builtin_trap();
}

constexpr uint64_t kFuzzModelId = 0x6d6c616d6f652121ull;
constexpr int64_t kFuzzLayers = 2, kFuzzRank = 64, kFuzzRope = 32;
// The on-disk header (src/runtime/session.cpp): offsets of the fields repaired below.
constexpr size_t kSesVersion = 8, kSesShape = 12, kSesTypes = 24, kSesModel = 32, kSesTokens = 40,
                 kSesFileBytes = 48, kSesHeader = 56;

inline uint64_t session_fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

inline std::string repaired_session(const uint8_t* data, size_t size) {
  const uint8_t flags = data[0];
  std::string f(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (f.size() < kSesHeader) return f;
  auto put = [&](size_t at, auto v) { std::memcpy(f.data() + at, &v, sizeof v); };
  if (flags & 2) put(kSesModel, kFuzzModelId);
  if (flags & 4) {
    put(kSesShape, uint32_t(kFuzzLayers));
    put(kSesShape + 4, uint32_t(kFuzzRank));
    put(kSesShape + 8, uint32_t(kFuzzRope));
  }
  if (flags & 8) {
    uint32_t ct, rt;
    std::memcpy(&ct, f.data() + kSesTypes, 4);
    std::memcpy(&rt, f.data() + kSesTypes + 4, 4);
    const TypeTraits* c = type_traits(static_cast<GgmlType>(ct));
    const TypeTraits* r = type_traits(static_cast<GgmlType>(rt));
    if (c && r && c->supported && r->supported && kFuzzRank % c->block_size == 0 && kFuzzRope % r->block_size == 0) {
      const uint64_t per_token = 4 + kFuzzLayers * (row_bytes(static_cast<GgmlType>(ct), kFuzzRank) +
                                                    row_bytes(static_cast<GgmlType>(rt), kFuzzRope));
      put(kSesTokens, uint64_t((f.size() - kSesHeader) / per_token));
    }
  }
  if (flags & 1) {
    std::memcpy(f.data(), "MLAKVSES", 8);
    put(kSesVersion, kSessionVersion);
    put(kSesFileBytes, uint64_t(f.size() + 8));
    const uint64_t sum = session_fnv1a(f);
    f.append(reinterpret_cast<const char*>(&sum), 8);
  }
  return f;
}

inline void exercise_session(const uint8_t* data, size_t size, const std::string& path) {
  if (size == 0) return;
  {
    const std::string file = repaired_session(data, size);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(file.data(), static_cast<std::streamsize>(file.size()));
  }
  PagedKvOptions opts;
  opts.block_tokens = 16;
  PagedKvCache kv(kFuzzLayers, kFuzzRank, kFuzzRope, opts);
  try {
    const std::vector<int32_t> tokens = load_session(path, kv, 0, kFuzzModelId);
    check_session(kv.length(0) == static_cast<int64_t>(tokens.size()));
    check_session(kv.tokens(0) == tokens);
  } catch (const Error&) {
    check_session(kv.length(0) == 0);
  }
}

}  // namespace mlamoe::test
