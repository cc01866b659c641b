#include "runtime/paged_kv_cache.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "format/quant.h"

namespace mlamoe {

GgmlType parse_kv_type(const std::string& s) {
  if (s == "f32") return GgmlType::F32;
  if (s == "f16") return GgmlType::F16;
  if (s == "bf16") return GgmlType::BF16;
  if (s == "q8_0") return GgmlType::Q8_0;
  fail("--kv-type: expected f32, f16, bf16 or q8_0, got '", s, "'");
}

namespace {

// q8_0 needs rows that are whole 32-value blocks; a part that is not (tiny models'
// k_rope) is kept in f16 instead.
GgmlType part_type(GgmlType t, int64_t n) {
  if (t == GgmlType::Q8_0 && n % 32 != 0) return GgmlType::F16;
  return t;
}

// I/O on the spill file happens inside the attention sweep (an OpenMP region), where an
// exception cannot travel: report and exit cleanly instead.
[[noreturn]] void io_failure(const char* what) {
  std::fprintf(stderr, "error: KV disk tier: %s failed: %s\n", what, std::strerror(errno));
  std::fflush(stderr);
  std::_Exit(1);
}

}  // namespace

uint64_t kv_bytes_per_token(int64_t n_layers, int64_t kv_lora_rank, int64_t rope_dim, GgmlType type) {
  return static_cast<uint64_t>(n_layers) *
         (row_bytes(part_type(type, kv_lora_rank), kv_lora_rank) + row_bytes(part_type(type, rope_dim), rope_dim));
}

PagedKvCache::PagedKvCache(int64_t n_layers, int64_t kv_lora_rank, int64_t rope_dim, PagedKvOptions opts)
    : KvCache(n_layers, kv_lora_rank, rope_dim), opts_(std::move(opts)), tree_(opts_.block_tokens) {
  if (opts_.block_tokens <= 0) fail("KV block size must be positive, got ", opts_.block_tokens);
  B_ = opts_.block_tokens;
  batch_pages_ = static_cast<size_t>(std::clamp<int64_t>(opts_.read_batch_pages, 1, kSlotGroup));
  if (opts_.type != GgmlType::F32 && opts_.type != GgmlType::F16 && opts_.type != GgmlType::BF16 &&
      opts_.type != GgmlType::Q8_0)
    fail("KV cache type must be f32, f16, bf16 or q8_0");
  c_type_ = part_type(opts_.type, kv_lora_rank);
  r_type_ = part_type(opts_.type, rope_dim);
  c_row_ = row_bytes(c_type_, kv_lora_rank);
  r_row_ = row_bytes(r_type_, rope_dim);
  page_bytes_ = static_cast<size_t>(B_) * (c_row_ + r_row_);
  stats_.block_bytes = page_bytes_ * static_cast<uint64_t>(n_layers);
  stats_.ram_budget = opts_.ram_budget;
  tiered_ = !opts_.disk_dir.empty();
  if (tiered_) {
    std::error_code ec;
    std::filesystem::create_directories(opts_.disk_dir, ec);
    std::string templ = (std::filesystem::path(opts_.disk_dir) / "mlamoe-kv-XXXXXX").string();
    disk_fd_ = ::mkstemp(templ.data());
    if (disk_fd_ < 0) fail("--kv-disk ", opts_.disk_dir, ": cannot create a spill file: ", std::strerror(errno));
    ::unlink(templ.c_str());  // nameless: vanishes with the process, even after a crash
    if (opts_.direct_io && page_bytes_ % 4096 == 0) {
      const int fl = ::fcntl(disk_fd_, F_GETFL);
      direct_ = fl >= 0 && ::fcntl(disk_fd_, F_SETFL, fl | O_DIRECT) == 0;
    }
    if (opts_.prefetch)
      for (int i = 0; i < std::max(1, opts_.read_ahead_threads); ++i)
        prefetchers_.emplace_back([this] { prefetch_loop(); });
  }
}

PagedKvCache::~PagedKvCache() {
  {
    Lock lk(mu_);
    stop_ = true;
  }
  prefetch_cv_.notify_all();
  for (auto& t : prefetchers_) t.join();
  if (disk_fd_ >= 0) ::close(disk_fd_);
}

PagedKvCache::Buffer PagedKvCache::new_buffer(bool zeroed) const {
  const size_t n = (page_bytes_ + 4095) / 4096 * 4096;
  Buffer b;
  if (!spare_buffers_.empty()) {
    b = std::move(spare_buffers_.back());
    spare_buffers_.pop_back();
  } else {
    b.reset(static_cast<uint8_t*>(std::aligned_alloc(4096, n)));
    if (!b) throw std::bad_alloc();
  }
  if (zeroed) std::memset(b.get(), 0, n);
  return b;
}

void PagedKvCache::recycle(Buffer& b) const {
  if (spare_buffers_.size() < 2 * batch_pages_) spare_buffers_.push_back(std::move(b));
  b.reset();
}

// --- sequences and blocks ---------------------------------------------------------

PagedKvCache::Seq& PagedKvCache::seq_state(int32_t seq) { return seqs_[seq]; }

const PagedKvCache::Seq* PagedKvCache::find_seq(int32_t seq) const {
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? nullptr : &it->second;
}

int32_t PagedKvCache::alloc_block() {
  Lock lk(mu_);  // the read-ahead thread indexes blocks_ concurrently
  int32_t b;
  if (!free_blocks_.empty()) {
    b = free_blocks_.back();
    free_blocks_.pop_back();
  } else {
    b = static_cast<int32_t>(blocks_.size());
    blocks_.emplace_back();
    blocks_.back().pages.resize(static_cast<size_t>(n_layers_));
  }
  blocks_[static_cast<size_t>(b)].refs = 1;
  ++stats_.blocks_live;
  return b;
}

void PagedKvCache::drop_page(Page& p) const {
  if (p.data) {
    lru_.erase(p.lru);
    recycle(p.data);
    resident_ -= page_bytes_;
    room_event();
  }
  p.on_disk = p.dirty = p.spent = false;
  p.pins = 0;
  p.last_use = 0;
}

void PagedKvCache::unref_block(int32_t b) {
  Block& blk = blocks_[static_cast<size_t>(b)];
  if (--blk.refs > 0) return;
  Lock lk(mu_);
  for (auto& p : blk.pages) {
    loaded_cv_.wait(lk, [&] { return !p.loading; });
    drop_page(p);
  }
  free_blocks_.push_back(b);
  --stats_.blocks_live;
}

int64_t PagedKvCache::length(int32_t seq) const {
  const Seq* s = find_seq(seq);
  return s ? s->length : 0;
}

void PagedKvCache::reserve(int32_t seq, int64_t new_length) {
  if (opts_.max_ctx > 0 && new_length > opts_.max_ctx)
    fail("sequence of ", new_length, " tokens exceeds the context size ", opts_.max_ctx);
  Seq& s = seq_state(seq);
  const size_t need = static_cast<size_t>((new_length + B_ - 1) / B_);
  while (s.table.size() < need) s.table.push_back(alloc_block());
}

void PagedKvCache::make_private(Seq& s, size_t index) {
  const int32_t old = s.table[index];
  if (blocks_[static_cast<size_t>(old)].refs == 1) return;
  const int32_t fresh = alloc_block();
  {
    Lock lk(mu_);
    for (int64_t l = 0; l < n_layers_; ++l) {
      const Page& src = page(page_id(old, l));
      if (!src.data && !src.on_disk) continue;  // never written: nothing to copy
      const uint8_t* from = acquire(page_id(old, l), lk);
      uint8_t* to = acquire(page_id(fresh, l), lk);
      std::memcpy(to, from, page_bytes_);
      page(page_id(fresh, l)).dirty = true;
      release_pin(page_id(old, l));
      release_pin(page_id(fresh, l));
    }
    ++stats_.cow_copies;
  }
  s.table[index] = fresh;
  unref_block(old);
}

void PagedKvCache::encode_row(const float* c_kv, const float* k_rope, uint8_t* c_dst, uint8_t* r_dst) const {
  quantize_row(c_type_, c_kv, c_dst, kv_lora_rank_);
  quantize_row(r_type_, k_rope, r_dst, rope_dim_);
}

void PagedKvCache::store(int32_t seq, int64_t layer, int64_t pos, const float* c_kv, const float* k_rope) {
  Seq& s = seq_state(seq);
  const size_t index = static_cast<size_t>(pos / B_);
  if (index >= s.table.size()) fail("KV cache: position ", pos, " not reserved");
  make_private(s, index);
  const uint64_t id = page_id(s.table[index], layer);
  const int64_t row = pos % B_;
  Lock lk(mu_);
  uint8_t* data = acquire(id, lk);
  encode_row(c_kv, k_rope, data + row * c_row_, data + B_ * c_row_ + row * r_row_);
  page(id).dirty = true;
  release_pin(id);
  make_room(0, false);
}

void PagedKvCache::store_raw(int32_t seq, int64_t layer, int64_t pos, int64_t count, const uint8_t* c_rows,
                             const uint8_t* r_rows) {
  Seq& s = seq_state(seq);
  for (int64_t done = 0; done < count;) {
    const int64_t p = pos + done;
    const size_t index = static_cast<size_t>(p / B_);
    if (index >= s.table.size()) fail("KV cache: position ", p, " not reserved");
    make_private(s, index);
    const int64_t row = p % B_, n = std::min(count - done, B_ - row);
    const uint64_t id = page_id(s.table[index], layer);
    Lock lk(mu_);
    uint8_t* data = acquire(id, lk);
    std::memcpy(data + row * c_row_, c_rows + done * c_row_, static_cast<size_t>(n) * c_row_);
    std::memcpy(data + B_ * c_row_ + row * r_row_, r_rows + done * r_row_, static_cast<size_t>(n) * r_row_);
    page(id).dirty = true;
    release_pin(id);
    done += n;
  }
}

void PagedKvCache::set_length(int32_t seq, int64_t length) { seq_state(seq).length = length; }

void PagedKvCache::clear(int32_t seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  for (int32_t b : it->second.table) unref_block(b);
  seqs_.erase(it);
}

void PagedKvCache::truncate(int32_t seq, int64_t length) {
  Seq& s = seq_state(seq);
  s.length = std::min(s.length, std::max<int64_t>(length, 0));
  const size_t keep = static_cast<size_t>((s.length + B_ - 1) / B_);
  while (s.table.size() > keep) {
    unref_block(s.table.back());
    s.table.pop_back();
  }
  if (static_cast<int64_t>(s.tokens.size()) > s.length) s.tokens.resize(static_cast<size_t>(s.length));
}

uint64_t PagedKvCache::bytes_used() const { return stats_.blocks_live * stats_.block_bytes; }

// --- reading ------------------------------------------------------------------------

KvCache::Run PagedKvCache::run_at(int32_t seq, int64_t layer, int64_t pos, int64_t end) const {
  const Seq* s = find_seq(seq);
  if (!s) fail("KV cache: unknown sequence ", seq);
  const size_t index = static_cast<size_t>(pos / B_);
  const int64_t row = pos % B_;
  const uint64_t id = page_id(s->table[index], layer);
  const uint8_t* data;
  Run r{std::min(end - pos, B_ - row), nullptr, nullptr};
  if (tiered_) {
    Lock lk(mu_);
    data = acquire(id, lk);
    r.pin = reinterpret_cast<const void*>(static_cast<uintptr_t>(id + 1));
  } else {
    // RAM only: pages never move, and nothing changes the tables during a sweep.
    data = page(id).data.get();
  }
  r.c_kv_raw = data + row * c_row_;
  r.k_rope_raw = data + B_ * c_row_ + row * r_row_;
  r.c_kv_type = c_type_;
  r.k_rope_type = r_type_;
  if (c_type_ == GgmlType::F32 && r_type_ == GgmlType::F32) {
    r.c_kv = static_cast<const float*>(r.c_kv_raw);
    r.k_rope = static_cast<const float*>(r.k_rope_raw);
  }
  return r;
}

KvCache::Run PagedKvCache::resident_run_at(int32_t seq, int64_t layer, int64_t pos, int64_t end) const {
  return tiered_ ? Run{} : run_at(seq, layer, pos, end);
}

void PagedKvCache::unpin(const Run& r) const {
  if (!r.pin) return;
  Lock lk(mu_);
  const uint64_t id = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(r.pin)) - 1;
  release_pin(id);
  Page& p = page(id);
  if (sweep_single_pass_ && p.pins == 0 && p.data) {
    // A single-pass sweep will not read this page again before it has read every other
    // page of the context: of all resident pages it is needed last, so it goes first.
    p.spent = true;
    p.passed_in = queue_generation_;
    lru_.splice(lru_.begin(), lru_, p.lru);
    room_event();
  }
  make_room(0, false);  // a tiny budget may have been exceeded while pages were pinned
}

void PagedKvCache::for_each_raw_run(int32_t seq, int64_t layer, int64_t n,
                                    const std::function<void(int64_t, int64_t, const uint8_t*, const uint8_t*)>& fn) const {
  for (int64_t pos = 0; pos < n;) {
    Run r = run_at(seq, layer, pos, n);
    struct Unpin {
      const PagedKvCache& kv;
      const Run& r;
      ~Unpin() { kv.unpin(r); }
    } guard{*this, r};
    fn(pos, r.count, static_cast<const uint8_t*>(r.c_kv_raw), static_cast<const uint8_t*>(r.k_rope_raw));
    pos += r.count;
  }
}

// --- tiers --------------------------------------------------------------------------

uint8_t* PagedKvCache::acquire(uint64_t id, Lock& lk) const {
  Page* p = &page(id);
  if (p->loading || (!p->data && p->on_disk)) {
    sweep_wait_clock_.enter();
    loaded_cv_.wait(lk, [&] { return !p->loading; });
    if (!p->data && p->on_disk) {
      // Demand read: this page and the cold pages after it on disk, in one request (the
      // extra ones only where room comes from pages this sweep has not used).
      ++stats_.demand_reads;
      read_batch(id, batch_pages_, /*first_unconditional=*/true, lk);
      p = &page(id);
    }
    sweep_wait_clock_.leave();
  }
  if (!p->data) {
    make_room(page_bytes_, false);
    resident_ += page_bytes_;
    stats_.peak_resident_bytes = std::max(stats_.peak_resident_bytes, resident_);
    p->data = new_buffer(true);
    p->dirty = true;
    p->lru = lru_.insert(lru_.end(), id);
  } else {
    lru_.splice(lru_.end(), lru_, p->lru);
  }
  p->last_use = ++clock_;
  p->spent = false;
  ++p->pins;
  return p->data.get();
}

size_t PagedKvCache::read_batch(uint64_t id, size_t max_pages, bool first_unconditional, Lock& lk) const {
  const uint64_t block = id / static_cast<uint64_t>(n_layers_), layer = id % static_cast<uint64_t>(n_layers_);
  std::vector<uint64_t> ids;
  std::vector<Buffer> bufs;
  // Following blocks of the same slot group are adjacent on disk (slot_offset).
  for (uint64_t b = block; ids.size() < max_pages && b < blocks_.size() && (b == block || b % kSlotGroup != 0); ++b) {
    const uint64_t pid = b * static_cast<uint64_t>(n_layers_) + layer;
    Page& p = page(pid);
    if (p.data || p.loading || !p.on_disk) break;
    const bool must = first_unconditional && ids.empty();
    if (!must && passed_this_sweep(p)) break;
    if (!make_room(page_bytes_, /*read_ahead=*/!must) && !must) break;
    p.loading = true;
    resident_ += page_bytes_;  // counted before the read, so concurrent loads see it
    ids.push_back(pid);
    bufs.push_back(new_buffer(false));  // read over entirely
  }
  if (ids.empty()) return 0;
  stats_.peak_resident_bytes = std::max(stats_.peak_resident_bytes, resident_);
  io_clock_.enter();
  lk.unlock();
  read_pages(slot_offset(ids.front()), bufs);
  lk.lock();
  io_clock_.leave();
  stats_.bytes_read += ids.size() * page_bytes_;
  for (size_t i = 0; i < ids.size(); ++i) {
    Page& p = page(ids[i]);
    p.data = std::move(bufs[i]);
    p.loading = false;
    p.lru = lru_.insert(lru_.end(), ids[i]);
    p.last_use = ++clock_;
  }
  stats_.pages_read += ids.size();
  loaded_cv_.notify_all();
  return ids.size();
}

void PagedKvCache::release_pin(uint64_t id) const { --page(id).pins; }

// A demand read that finds no spent page evicts one the sweep has yet to read (read
// ahead for it, or for the next layer); read-ahead would not come back to it, having
// passed it in its queue, and the sweep would demand-read it: queue it again.
void PagedKvCache::read_again_later(uint64_t id) const {
  const Page& p = page(id);
  if (!sweep_single_pass_ || !opts_.prefetch || queue_generation_ == 0 || p.spent || passed_this_sweep(p)) return;
  const int64_t layer = static_cast<int64_t>(id % static_cast<uint64_t>(n_layers_));
  if (layer != sweep_layer_ && layer != (sweep_layer_ + 1) % n_layers_) return;
  const Seq* s = find_seq(sweep_seq_);
  if (!s) return;
  const auto block = static_cast<int32_t>(id / static_cast<uint64_t>(n_layers_));
  const auto swept_end = s->table.begin() + static_cast<std::ptrdiff_t>(swept_blocks(*s, sweep_n_));
  if (std::find(s->table.begin(), swept_end, block) == swept_end) return;
  prefetch_queue_.push_back(id);
  prefetch_cv_.notify_all();
}

bool PagedKvCache::passed_this_sweep(const Page& p) const {
  return sweep_single_pass_ && queue_generation_ != 0 && p.passed_in == queue_generation_;
}

bool PagedKvCache::read_ahead_may_evict(const Page& p) const {
  if (sweep_single_pass_) return p.spent;  // never what the sweep has yet to read
  return sweep_start_ == 0 || p.last_use < sweep_start_;  // the sweep may reread what it used
}

bool PagedKvCache::make_room(uint64_t bytes, bool read_ahead) const {
  if (opts_.ram_budget == 0 || resident_ + bytes <= opts_.ram_budget) return true;
  if (!tiered_)
    fail("the KV cache needs more than --kv-ram-budget (", opts_.ram_budget,
         " bytes); give --kv-disk DIR to keep cold blocks on disk");
  auto it = lru_.begin();
  while (resident_ + bytes > opts_.ram_budget) {
    while (it != lru_.end() && page(*it).pins > 0) ++it;
    if (it == lru_.end()) break;
    const uint64_t victim = *it++;
    if (read_ahead && !read_ahead_may_evict(page(victim))) return false;
    if (!read_ahead) read_again_later(victim);
    evict(victim);
  }
  // Pinned pages may exceed a tiny budget: each reader needs its page in RAM.
  return !read_ahead || resident_ + bytes <= opts_.ram_budget;
}

void PagedKvCache::evict(uint64_t id) const {
  Page& p = page(id);
  if (p.dirty || !p.on_disk) write_page(id);
  lru_.erase(p.lru);
  recycle(p.data);
  p.spent = false;
  resident_ -= page_bytes_;
  room_event();
}

off_t PagedKvCache::slot_offset(uint64_t id) const {
  const uint64_t L = static_cast<uint64_t>(n_layers_), block = id / L, layer = id % L;
  return static_cast<off_t>(((block / kSlotGroup * L + layer) * kSlotGroup + block % kSlotGroup) * page_bytes_);
}

void PagedKvCache::write_page(uint64_t id) const {
  Page& p = page(id);
  const auto* data = p.data.get();
  const off_t off = slot_offset(id);
  for (size_t done = 0; done < page_bytes_;) {
    ssize_t n = ::pwrite(disk_fd_, data + done, page_bytes_ - done, off + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) io_failure("write");
    done += static_cast<size_t>(n);
  }
  p.on_disk = true;
  p.dirty = false;
  ++stats_.pages_written;
}

void PagedKvCache::read_pages(off_t off, std::vector<Buffer>& bufs) const {
  std::vector<iovec> iov(bufs.size());
  for (size_t i = 0; i < bufs.size(); ++i) iov[i] = {bufs[i].get(), page_bytes_};
  for (size_t i = 0; i < iov.size();) {
    const int count = static_cast<int>(std::min<size_t>(iov.size() - i, IOV_MAX));
    ssize_t n = ::preadv(disk_fd_, iov.data() + i, count, off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) io_failure("read");
    off += n;
    for (auto left = static_cast<size_t>(n); left > 0;) {  // a short read resumes mid-page
      const size_t take = std::min(left, iov[i].iov_len);
      iov[i].iov_base = static_cast<uint8_t*>(iov[i].iov_base) + take;
      iov[i].iov_len -= take;
      left -= take;
      if (iov[i].iov_len == 0) ++i;
    }
  }
}

void PagedKvCache::will_read(int32_t seq, int64_t layer, int64_t n, bool single_pass) const {
  if (!tiered_) return;
  Lock lk(mu_);
  sweep_single_pass_ = single_pass;
  if (!opts_.prefetch) return;
  if (seq == sweep_seq_ && layer == sweep_layer_ && n == sweep_n_) return;
  sweep_seq_ = seq, sweep_layer_ = layer, sweep_n_ = n;
  sweep_start_ = clock_ + 1;
  ++queue_generation_;
  prefetch_queue_.clear();
  prefetch_cv_.notify_all();  // read-ahead waiting for room: what it may evict changed
  const Seq* s = find_seq(seq);
  if (!s) return;
  // This layer's pages in sweep order, then the next layer's (wrapping to layer 0 for
  // the next decode step).
  const size_t nb = swept_blocks(*s, n);
  for (int64_t l : {layer, (layer + 1) % n_layers_})
    for (size_t i = 0; i < nb; ++i) {
      const uint64_t id = page_id(s->table[i], l);
      prefetch_queue_.push_back(id);
      // Spent in an earlier sweep but read by this one or the next: read-ahead must not
      // evict it for the pages behind it (it would not come back for it).
      if (Page& p = page(id); p.data && p.spent) {
        p.spent = false;
        lru_.splice(lru_.end(), lru_, p.lru);
      }
    }
  prefetch_cv_.notify_all();
}

void PagedKvCache::BusyClock::enter() {
  if (active++ == 0) since = std::chrono::steady_clock::now();
}

void PagedKvCache::BusyClock::leave() {
  if (--active == 0) seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

double PagedKvCache::BusyClock::total() const {
  return seconds + (active > 0 ? std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count() : 0.0);
}

void PagedKvCache::room_event() const {
  if (++room_epoch_ < room_wake_at_) return;
  room_wake_at_ = UINT64_MAX;
  prefetch_cv_.notify_all();
}

// One of the read-ahead threads: each takes the next page of the queue and reads it with
// the cold pages after it on disk (the others skip what is already loading), so several
// requests are in flight at once.
void PagedKvCache::prefetch_loop() {
  Lock lk(mu_);
  for (;;) {
    prefetch_cv_.wait(lk, [&] { return stop_ || !prefetch_queue_.empty(); });
    if (stop_) return;
    const uint64_t id = prefetch_queue_.front();
    prefetch_queue_.pop_front();
    if (passed_this_sweep(page(id))) continue;  // the sweep overtook read-ahead here
    // Room may only come from what read-ahead may evict (read_ahead_may_evict).
    const size_t n = read_batch(id, batch_pages_, /*first_unconditional=*/false, lk);
    stats_.pages_prefetched += n;
    const Page& p = page(id);
    if (n > 0 || p.data || p.loading || !p.on_disk) continue;
    // No room: the budget is full of pages the sweep has yet to read. Instead of giving
    // up until the next sweep (which left the disk idle while the sweep ran), wait until
    // the sweep has spent about half a batch of pages, or a new sweep begins, and retry.
    prefetch_queue_.push_front(id);
    const uint64_t generation = queue_generation_, target = room_epoch_ + batch_pages_ / 2;
    room_wait_clock_.enter();
    while (!stop_ && generation == queue_generation_ && room_epoch_ < target) {
      room_wake_at_ = std::min(room_wake_at_, target);  // room_event() resets it when it notifies
      prefetch_cv_.wait(lk);
    }
    room_wait_clock_.leave();
  }
}

// --- prefix reuse ---------------------------------------------------------------------

int64_t PagedKvCache::attach_prefix(int32_t seq, std::span<const int32_t> tokens) {
  if (length(seq) != 0) fail("attach_prefix: sequence ", seq, " is not empty");
  clear(seq);
  PrefixTree::Match m = tree_.lookup(tokens);
  ++stats_.prefix_lookups;
  stats_.prefix_tokens_requested += tokens.size();
  const int64_t reused = m.tokens();
  if (reused == 0) return 0;
  ++stats_.prefix_hits;
  stats_.prefix_tokens_reused += static_cast<uint64_t>(reused);
  Seq& s = seq_state(seq);
  for (int32_t b : m.full_blocks) {
    ++blocks_[static_cast<size_t>(b)].refs;
    s.table.push_back(b);
  }
  if (m.partial_tokens > 0) {
    // Share the divergent block for a moment, then copy it on the spot: positions past
    // the divergence will be overwritten by this sequence.
    ++blocks_[static_cast<size_t>(m.partial_block)].refs;
    s.table.push_back(m.partial_block);
    make_private(s, s.table.size() - 1);
  }
  s.length = reused;
  s.tokens.assign(tokens.begin(), tokens.begin() + reused);
  return reused;
}

void PagedKvCache::publish(int32_t seq, std::span<const int32_t> tokens) {
  Seq& s = seq_state(seq);
  if (static_cast<int64_t>(tokens.size()) > s.length)
    fail("publish: ", tokens.size(), " tokens for sequence ", seq, " of length ", s.length);
  s.tokens.assign(tokens.begin(), tokens.end());
  std::vector<int32_t> held, dropped;
  tree_.insert(tokens, s.table, held, dropped);
  for (int32_t b : held) ++blocks_[static_cast<size_t>(b)].refs;
  for (int32_t b : dropped) unref_block(b);
  if (opts_.max_prefix_blocks) trim_prefix_cache(opts_.max_prefix_blocks);
}

std::vector<int32_t> PagedKvCache::tokens(int32_t seq) const {
  const Seq* s = find_seq(seq);
  return s ? s->tokens : std::vector<int32_t>{};
}

void PagedKvCache::trim_prefix_cache(uint64_t max_blocks) {
  std::vector<int32_t> dropped;
  tree_.trim(max_blocks, [&](int32_t b) { return blocks_[static_cast<size_t>(b)].refs == 1; }, dropped);
  for (int32_t b : dropped) unref_block(b);
}

KvStats PagedKvCache::stats() const {
  Lock lk(mu_);
  KvStats s = stats_;
  s.resident_bytes = resident_;
  s.io_busy_s = io_clock_.total();
  s.sweep_wait_s = sweep_wait_clock_.total();
  s.room_wait_s = room_wait_clock_.total();
  s.blocks_in_prefix_tree = tree_.n_blocks();
  return s;
}

}  // namespace mlamoe
