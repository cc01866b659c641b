// Persistent sessions: a conversation's token ids and their latent KV entries, saved so
// the next run continues without recomputing the prompt.
//
// File (little-endian): "MLAKVSES", version, the model identity, the cache's shape and
// storage types, the token ids, then per layer the c_kv rows and the k_rope rows, and
// last a 64-bit FNV-1a checksum of everything before it. Written atomically (temp
// file, fsync, rename), so a crash leaves the old session or the new one. On load the
// whole file is checked (size, version, model, shape, checksum) before any entry is
// used: a foreign, truncated or corrupt file is refused with one clear line.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"
#include "runtime/paged_kv_cache.h"

namespace mlamoe {

constexpr uint32_t kSessionVersion = 1;

// A fingerprint of a model file: its GGUF metadata and tensor infos (the header bytes)
// plus a sample of every tensor's data, so two random models of one shape differ too.
uint64_t model_identity(const Model& model);

// Saves the published tokens of `seq` and their entries.
void save_session(const std::string& path, const PagedKvCache& kv, int32_t seq, uint64_t model_id);

// Replaces `seq` with the session in `path`; returns its token ids. Throws Error
// ("<path>: ...") if the file cannot be used; `seq` is then left empty.
std::vector<int32_t> load_session(const std::string& path, PagedKvCache& kv, int32_t seq, uint64_t model_id);

}  // namespace mlamoe
