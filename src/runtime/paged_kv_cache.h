// The paged, prefix-sharing, RAM+SSD tiered latent KV cache.
//
// A block holds `block_tokens` consecutive positions of one sequence: for every layer,
// a page of c_kv rows then k_rope rows (in the cache's storage type). Blocks come from
// an allocator with reference counts; a sequence is a block table. Several sequences,
// and the prefix tree, may hold the same block: a write into a shared block copies it
// first (copy-on-write), so a shared prefix is stored once.
//
// Tiers: a page is resident in RAM, on disk, or both. With a RAM budget and a disk
// directory, the least-recently-used unpinned pages are written out (if dirty) and
// dropped when the budget is exceeded; a sweep over a layer reads cold pages back on
// demand, while a few background threads read ahead of the sweep (this layer, then the
// next), several requests in flight because the device is faster at a queue depth > 1.
// A page stays pinned while attention reads it, so its pointer stays valid.
//
// Prefix reuse: publish(seq, tokens) records which token ids a sequence's entries
// belong to and inserts its blocks into a radix tree over token ids; attach_prefix()
// gives a new sequence the longest cached prefix (whole blocks shared, the first
// divergent block copied up to the divergence).
#pragma once
#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "model/kv_cache.h"
#include "runtime/prefix_tree.h"

namespace mlamoe {

struct PagedKvOptions {
  int64_t block_tokens = 32;          // positions per block
  GgmlType type = GgmlType::F32;      // storage: F32, F16, BF16 or Q8_0
  uint64_t ram_budget = 0;            // bytes of resident pages; 0: unlimited
  std::string disk_dir;               // where cold pages go; empty: RAM only
  int64_t max_ctx = 0;                // per-sequence limit; 0: none
  bool prefetch = true;               // read cold pages ahead of the attention sweep
  uint64_t max_prefix_blocks = 0;     // blocks kept only for reuse; 0: unlimited
  // Bypass the OS page cache for the disk tier (O_DIRECT) when pages are 4 KiB
  // multiples, so the RAM budget is what the cache really uses and reads really hit
  // the SSD; silently buffered where the file system cannot.
  bool direct_io = true;
  // Reads in flight ahead of the sweep (threads issuing one preadv each), and the most
  // pages of one layer a read request covers (adjacent on disk; at most 64).
  int read_ahead_threads = 4;
  int read_batch_pages = 32;
};

// "f32" | "f16" | "bf16" | "q8_0" -> type; Error otherwise.
GgmlType parse_kv_type(const std::string& s);

// Bytes the cache stores per token over all layers with storage `type` (q8_0 keeps a
// part that is not a whole number of 32-value blocks in f16).
uint64_t kv_bytes_per_token(int64_t n_layers, int64_t kv_lora_rank, int64_t rope_dim, GgmlType type);

struct KvStats {
  // Prefix reuse (attach_prefix calls).
  uint64_t prefix_lookups = 0, prefix_hits = 0;          // hits: reused ≥ 1 token
  uint64_t prefix_tokens_requested = 0, prefix_tokens_reused = 0;
  uint64_t cow_copies = 0;                               // blocks copied on write
  // Blocks.
  uint64_t blocks_live = 0, blocks_in_prefix_tree = 0, block_bytes = 0;
  // Tiers.
  uint64_t resident_bytes = 0, peak_resident_bytes = 0, ram_budget = 0;
  uint64_t pages_written = 0, pages_read = 0, pages_prefetched = 0, demand_reads = 0;
  uint64_t bytes_read = 0;
  // Wall-clock seconds with: at least one read from disk in flight (io_busy_s); an
  // attention thread waiting for a page (sweep_wait_s: demand reads, pages still
  // loading); read-ahead stopped because the budget is full of pages the sweep has yet
  // to read (room_wait_s).
  double io_busy_s = 0, sweep_wait_s = 0, room_wait_s = 0;
  double prefix_hit_rate() const { return prefix_lookups ? double(prefix_hits) / prefix_lookups : 0; }
  double token_reuse_rate() const {
    return prefix_tokens_requested ? double(prefix_tokens_reused) / prefix_tokens_requested : 0;
  }
};

class PagedKvCache final : public KvCache {
 public:
  PagedKvCache(int64_t n_layers, int64_t kv_lora_rank, int64_t rope_dim, PagedKvOptions opts);
  ~PagedKvCache() override;
  PagedKvCache(const PagedKvCache&) = delete;
  PagedKvCache& operator=(const PagedKvCache&) = delete;

  // KvCache
  int64_t length(int32_t seq) const override;
  void reserve(int32_t seq, int64_t new_length) override;
  void store(int32_t seq, int64_t layer, int64_t pos, const float* c_kv, const float* k_rope) override;
  void set_length(int32_t seq, int64_t length) override;
  void clear(int32_t seq) override;
  void truncate(int32_t seq, int64_t length) override;
  uint64_t bytes_used() const override;  // live blocks × block bytes (shared blocks once)
  Run run_at(int32_t seq, int64_t layer, int64_t pos, int64_t end) const override;
  void unpin(const Run& r) const override;
  // RAM only: run_at (its pages never move). Tiered: nothing (a look would need the lock).
  Run resident_run_at(int32_t seq, int64_t layer, int64_t pos, int64_t end) const override;
  void will_read(int32_t seq, int64_t layer, int64_t n, bool single_pass = false) const override;

  // Prefix reuse (the API the server and generate() use).
  // `seq` must be empty: gives it the longest cached prefix of `tokens`; returns the
  // number of positions reused (its length afterwards).
  int64_t attach_prefix(int32_t seq, std::span<const int32_t> tokens);
  // Records the token ids of positions [0, tokens.size()) of `seq` (≤ its length) and
  // makes its blocks reusable by later sequences.
  void publish(int32_t seq, std::span<const int32_t> tokens);
  // The token ids last published for `seq` (empty if none).
  std::vector<int32_t> tokens(int32_t seq) const;
  // Ends a sequence: its blocks stay reusable through the prefix tree.
  void release(int32_t seq) { clear(seq); }
  // Drops least-recently-used prefix-tree blocks no sequence holds, down to max_blocks.
  void trim_prefix_cache(uint64_t max_blocks);
  // The token ids of every sequence the prefix tree holds, least recently used first
  // (serve --session saves them). Same thread discipline as publish().
  std::vector<std::vector<int32_t>> cached_sequences() const { return tree_.sequences(); }
  KvStats stats() const;

  // Storage facts (sessions, info, bench).
  const PagedKvOptions& options() const { return opts_; }
  GgmlType c_kv_type() const { return c_type_; }
  GgmlType k_rope_type() const { return r_type_; }
  size_t c_kv_row_bytes() const { return c_row_; }
  size_t k_rope_row_bytes() const { return r_row_; }
  bool direct_io_active() const { return direct_; }  // the spill file bypasses the page cache
  uint64_t bytes_per_token() const { return static_cast<uint64_t>(n_layers_) * (c_row_ + r_row_); }

  // Raw rows in the storage type, for sessions: fn(first_pos, count, c_rows, r_rows)
  // over positions [0, n) of one layer (pinned during the call).
  void for_each_raw_run(int32_t seq, int64_t layer, int64_t n,
                        const std::function<void(int64_t, int64_t, const uint8_t*, const uint8_t*)>& fn) const;
  // Stores `count` raw rows at positions [pos, pos+count) (reserve first).
  void store_raw(int32_t seq, int64_t layer, int64_t pos, int64_t count, const uint8_t* c_rows, const uint8_t* r_rows);

 private:
  struct FreeAligned {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  using Buffer = std::unique_ptr<uint8_t[], FreeAligned>;
  Buffer new_buffer(bool zeroed) const;  // page_bytes_ rounded up to 4 KiB, 4 KiB aligned
  // Keeps an evicted page's buffer for the next read (Lock held): the tier streams the
  // whole context through the budget every decode step, and fresh allocations cost a
  // page fault and a kernel zeroing per 4 KiB, which stole the attention's CPU time.
  void recycle(Buffer& b) const;
  struct Page {
    Buffer data;  // resident copy, or null
    int32_t pins = 0;
    bool on_disk = false;  // the disk slot holds this page's content
    bool dirty = false;    // RAM copy differs from disk
    bool loading = false;  // a read from disk is under way (outside the lock)
    bool spent = false;    // read by a single-pass sweep since it was last pinned
    // The sweep (queue_generation_) that read it in a single pass: read-ahead must not
    // bring it back once evicted, or pages the sweep has passed fill the budget.
    uint64_t passed_in = 0;
    uint64_t last_use = 0;
    std::list<uint64_t>::iterator lru;
  };
  struct Block {
    int32_t refs = 0;  // sequences + prefix tree holding it
    std::vector<Page> pages;  // one per layer
  };
  struct Seq {
    std::vector<int32_t> table;  // block ids
    int64_t length = 0;
    std::vector<int32_t> tokens;  // published token ids
  };
  using Lock = std::unique_lock<std::mutex>;
  // Wall time during which at least one of several overlapping activities is under way
  // (enter/leave with the lock held).
  struct BusyClock {
    int active = 0;
    std::chrono::steady_clock::time_point since;
    double seconds = 0;
    void enter();
    void leave();
    double total() const;  // including an interval still open
  };

  Seq& seq_state(int32_t seq);
  const Seq* find_seq(int32_t seq) const;
  int32_t alloc_block();
  void unref_block(int32_t b);
  void make_private(Seq& s, size_t index);  // copy-on-write of table[index]
  Page& page(uint64_t id) const { return blocks_[id / n_layers_].pages[id % n_layers_]; }
  uint64_t page_id(int32_t block, int64_t layer) const { return static_cast<uint64_t>(block) * n_layers_ + layer; }
  // Makes a page resident and pins it (Lock held; may drop it while reading).
  uint8_t* acquire(uint64_t id, Lock& lk) const;
  void release_pin(uint64_t id) const;  // Lock held
  // Evicts LRU pages until `bytes` more fit in the budget; returns false if it could not
  // (with read_ahead, only pages read_ahead_may_evict).
  bool make_room(uint64_t bytes, bool read_ahead) const;
  // Read by the current single-pass sweep: read-ahead does not bring it back.
  bool passed_this_sweep(const Page& p) const;
  // Queues an evicted page again when the current sweep has yet to read it (Lock held).
  void read_again_later(uint64_t id) const;
  // The blocks of `s` a sweep over n positions reads.
  size_t swept_blocks(const Seq& s, int64_t n) const { return std::min(s.table.size(), static_cast<size_t>((n + B_ - 1) / B_)); }
  // What read-ahead may displace: in a single-pass sweep (decode), pages it already
  // read; otherwise pages not used since the sweep began (it may reread the others).
  bool read_ahead_may_evict(const Page& p) const;
  void evict(uint64_t id) const;
  void write_page(uint64_t id) const;
  // Disk slot of a page: blocks in groups of kSlotGroup, each group's pages stored layer
  // by layer, so a layer's pages of consecutive blocks are adjacent and one request
  // reads many of them.
  static constexpr uint64_t kSlotGroup = 64;
  size_t batch_pages_;  // options().read_batch_pages, clamped to [1, kSlotGroup]
  off_t slot_offset(uint64_t id) const;
  // Reads page `id` and up to max_pages - 1 following cold pages of the same layer that
  // are adjacent on disk, in one request (Lock held; dropped while reading). Room for
  // the pages may only come from what read-ahead may evict, except for the first one
  // when first_unconditional. Returns the pages read.
  size_t read_batch(uint64_t id, size_t max_pages, bool first_unconditional, Lock& lk) const;
  void read_pages(off_t offset, std::vector<Buffer>& bufs) const;  // contiguous pages, one preadv
  void drop_page(Page& p) const;
  void prefetch_loop();
  void encode_row(const float* c_kv, const float* k_rope, uint8_t* c_dst, uint8_t* r_dst) const;

  PagedKvOptions opts_;
  GgmlType c_type_, r_type_;
  size_t c_row_, r_row_, page_bytes_;
  int64_t B_;
  bool tiered_;

  mutable std::mutex mu_;
  mutable std::condition_variable loaded_cv_, prefetch_cv_;
  mutable std::deque<Block> blocks_;  // deque: references stay valid as it grows
  std::vector<int32_t> free_blocks_;
  std::map<int32_t, Seq> seqs_;
  PrefixTree tree_;
  mutable std::vector<Buffer> spare_buffers_;  // at most 2 × batch_pages_
  mutable std::list<uint64_t> lru_;  // resident pages, least recently used first
  mutable uint64_t clock_ = 0, resident_ = 0;
  mutable KvStats stats_;
  int disk_fd_ = -1;
  bool direct_ = false;  // disk_fd_ is O_DIRECT

  // Read-ahead state: the sweep in progress and the pages to read next.
  mutable int32_t sweep_seq_ = -1;
  mutable int64_t sweep_layer_ = -1, sweep_n_ = -1;
  mutable uint64_t sweep_start_ = 0;
  mutable bool sweep_single_pass_ = false;
  mutable std::deque<uint64_t> prefetch_queue_;
  mutable uint64_t queue_generation_ = 0;  // bumped when will_read replaces the queue
  // Counts pages that became evictable for read-ahead (spent, or evicted by others);
  // read-ahead waiting for room sleeps until it reaches room_wake_at_.
  mutable uint64_t room_epoch_ = 0, room_wake_at_ = UINT64_MAX;
  mutable BusyClock io_clock_, sweep_wait_clock_, room_wait_clock_;
  bool stop_ = false;
  std::vector<std::thread> prefetchers_;
  void room_event() const;
};

}  // namespace mlamoe
