// Persistent sessions: a conversation's token ids and their latent KV entries, saved so
// the next run continues without recomputing the prompt.
//
// File (little-endian): "MLAKVSES", version, the model identity, the cache's shape and
// storage types, the token ids, then per layer the c_kv rows and the k_rope rows, and
// last a 64-bit FNV-1a checksum of everything before it. Written atomically (temp
// file, fsync, rename), so a crash leaves the old session or the new one. On load the
// whole file is checked (size, version, model, shape, checksum) before any entry is
// used: a foreign, truncated or corrupt file is refused with one clear line.
//
// Version 2 holds several sequences: a server's prefix cache (serve --session). After
// the header (whose count is then the number of sequences), each sequence has its
// length, an earlier sequence it shares its first `shared` positions with (a whole
// number of blocks, so those rows are stored once) and its token ids, then per layer
// the c_kv and k_rope rows of its own positions [shared, n). Readers take both versions.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"
#include "runtime/paged_kv_cache.h"

namespace mlamoe {

constexpr uint32_t kSessionVersion = 1;      // one sequence (run, chat, bench)
constexpr uint32_t kPrefixCacheVersion = 2;  // several sequences sharing prefixes (serve)

// A fingerprint of a model file: its GGUF metadata and tensor infos (the header bytes)
// plus a sample of every tensor's data, so two random models of one shape differ too.
uint64_t model_identity(const Model& model);

// Saves the published tokens of `seq` and their entries.
void save_session(const std::string& path, const PagedKvCache& kv, int32_t seq, uint64_t model_id);

// Replaces `seq` with the session in `path` (of a version-2 file, its most recently
// used sequence); returns its token ids. Throws Error ("<path>: ...") if the file
// cannot be used; `seq` is then left empty.
std::vector<int32_t> load_session(const std::string& path, PagedKvCache& kv, int32_t seq, uint64_t model_id);

struct PrefixCacheFile {
  uint64_t sequences = 0;
  uint64_t tokens = 0;         // over all sequences
  uint64_t stored_tokens = 0;  // rows in the file (shared prefixes once)
  uint64_t bytes = 0;          // file size
};

// Saves every sequence of the prefix tree (version 2), least recently used first.
// `scratch` is a sequence id nobody uses: each sequence is read through it (it borrows
// the tree's blocks, which counts as a prefix lookup in the cache's stats); it is left
// empty. Not concurrent with anything else using `kv`.
PrefixCacheFile save_prefix_cache(const std::string& path, PagedKvCache& kv, int32_t scratch, uint64_t model_id);

// Publishes every sequence of a version-1 or version-2 file into the prefix tree (the
// cache keeps them while its prefix budget allows, most recently used last), through
// `scratch` (left empty). The whole file is checked first: if it cannot be used this
// throws Error ("<path>: ...") and nothing was published.
PrefixCacheFile restore_prefix_cache(const std::string& path, PagedKvCache& kv, int32_t scratch, uint64_t model_id);

}  // namespace mlamoe
