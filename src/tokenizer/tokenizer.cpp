#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <map>
#include <functional>

#include "common/error.h"
#include "format/gguf.h"
#include "tokenizer/utf8.h"

namespace mlamoe {

// ---------------------------------------------------------------------------
// Special tokens: control (3), user-defined (4) and unknown (2) tokens are cut out of
// the text before pre-tokenization. Like llama.cpp (and HF's added-token matching),
// longer tokens win: tokens are tried longest first, each taking every non-overlapping
// occurrence left in the text not already claimed by a longer one.
struct Tokenizer::SpecialMatcher {
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // sorted by byte
    int32_t token = -1;
  };
  std::vector<Node> nodes{1};
  bool first_byte[256] = {};
  std::vector<int32_t> order;  // priority of each token id (index into `priority`)
  std::unordered_map<int32_t, int32_t> priority;

  void add(std::string_view text, int32_t id) {
    if (text.empty()) return;
    first_byte[static_cast<uint8_t>(text[0])] = true;
    int32_t node = 0;
    for (unsigned char c : text) {
      auto& ch = nodes[node].children;
      auto it = std::lower_bound(ch.begin(), ch.end(), std::make_pair(c, int32_t{-1}));
      if (it != ch.end() && it->first == c) {
        node = it->second;
      } else {
        const int32_t child = static_cast<int32_t>(nodes.size());
        ch.insert(it, {c, child});
        nodes.emplace_back();
        node = child;
      }
    }
    nodes[node].token = id;
  }

  struct Occurrence {
    int32_t priority;
    uint32_t start, length;
    int32_t token;
  };

  // Appends every occurrence of every allowed special token in text.
  template <typename Allowed>
  void find_all(std::string_view text, Allowed allowed, std::vector<Occurrence>& out) const {
    for (size_t p = 0; p < text.size(); ++p) {
      if (!first_byte[static_cast<uint8_t>(text[p])]) continue;
      int32_t node = 0;
      for (size_t q = p; q < text.size(); ++q) {
        const auto& ch = nodes[node].children;
        const uint8_t c = static_cast<uint8_t>(text[q]);
        auto it = std::lower_bound(ch.begin(), ch.end(), std::make_pair(c, int32_t{-1}));
        if (it == ch.end() || it->first != c) break;
        node = it->second;
        const int32_t tok = nodes[node].token;
        if (tok >= 0 && allowed(tok))
          out.push_back({priority.at(tok), static_cast<uint32_t>(p), static_cast<uint32_t>(q + 1 - p), tok});
      }
    }
  }
};

// ---------------------------------------------------------------------------

std::unique_ptr<Tokenizer> Tokenizer::from_file(const std::string& path) {
  auto gguf = GgufFile::open(path);
  return from_gguf(*gguf);
}

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& gguf) {
  const std::string& path = gguf.path();
  const GgufValue* model = gguf.find("tokenizer.ggml.model");
  if (!model) fail(path, ": no tokenizer data (metadata key tokenizer.ggml.model is missing)");
  const std::string model_name(model->as_string());
  if (model_name != "gpt2")
    fail(path, ": tokenizer.ggml.model is '", model_name, "'; only byte-level BPE ('gpt2') is supported");
  const GgufValue* tokens = gguf.find("tokenizer.ggml.tokens");
  if (!tokens || !tokens->is_array() || tokens->elem_type != GgufType::STRING)
    fail(path, ": tokenizer.ggml.tokens is missing or not an array of strings");

  Vocab v;
  for (auto s : tokens->as_string_array()) v.tokens.emplace_back(s);
  if (const GgufValue* types = gguf.find("tokenizer.ggml.token_type")) {
    if (!types->is_array() || types->array_size() != v.tokens.size())
      fail(path, ": tokenizer.ggml.token_type has ", types->array_size(), " entries for ", v.tokens.size(), " tokens");
    for (int64_t t : types->as_int_array()) {
      if (t < 0 || t > 6) fail(path, ": tokenizer.ggml.token_type has invalid value ", t);
      v.types.push_back(static_cast<TokenType>(t));
    }
  }
  if (const GgufValue* merges = gguf.find("tokenizer.ggml.merges")) {
    if (!merges->is_array() || (merges->array_size() > 0 && merges->elem_type != GgufType::STRING))
      fail(path, ": tokenizer.ggml.merges is not an array of strings");
    if (merges->array_size() > 0)
      for (auto s : merges->as_string_array()) v.merges.emplace_back(s);
  }
  v.pre = gguf.get_string("tokenizer.ggml.pre", "default");
  const auto id = [&](const char* key) {
    const int64_t x = gguf.get_int(key, -1);
    if (x < -1 || x >= static_cast<int64_t>(v.tokens.size()))
      fail(path, ": ", key, " = ", x, " is outside the vocabulary of ", v.tokens.size(), " tokens");
    return static_cast<int32_t>(x);
  };
  v.bos = id("tokenizer.ggml.bos_token_id");
  v.eos = id("tokenizer.ggml.eos_token_id");
  v.pad = id("tokenizer.ggml.padding_token_id");
  v.eot = id("tokenizer.ggml.eot_token_id");
  v.add_bos = gguf.get_bool("tokenizer.ggml.add_bos_token", false);
  v.add_eos = gguf.get_bool("tokenizer.ggml.add_eos_token", false);
  v.chat_template = gguf.get_string("tokenizer.chat_template", "");
  return std::make_unique<Tokenizer>(std::move(v), path);
}

Tokenizer::Tokenizer(Vocab v, std::string source) : source_(std::move(source)) {
  if (v.tokens.empty()) fail(source_, ": the vocabulary has no tokens");
  if (v.tokens.size() > (1u << 30)) fail(source_, ": vocabulary too large");
  text_ = std::move(v.tokens);
  type_ = v.types.empty() ? std::vector<TokenType>(text_.size(), TokenType::Normal) : std::move(v.types);
  if (type_.size() != text_.size()) fail(source_, ": ", type_.size(), " token types for ", text_.size(), " tokens");
  pre_ = std::make_unique<PreTokenizer>(v.pre);
  bos_ = v.bos, eos_ = v.eos, pad_ = v.pad, eot_ = v.eot;
  add_bos_ = v.add_bos && bos_ >= 0;
  add_eos_ = v.add_eos && eos_ >= 0;
  chat_template_ = std::move(v.chat_template);

  const int32_t n = n_vocab();
  text_to_id_.reserve(n * 2);
  bytes_.resize(n);
  special_ = std::make_unique<SpecialMatcher>();
  std::vector<int32_t> specials;
  for (int32_t i = 0; i < n; ++i) {
    text_to_id_[text_[i]] = i;  // a duplicate text resolves to its last id, as in llama.cpp
    const TokenType t = type_[i];
    if (t == TokenType::Normal || t == TokenType::Undefined || t == TokenType::Byte) {
      // Map each code point back to its byte; a code point outside the byte map (not
      // produced by byte-level training) is kept as its own UTF-8.
      const std::string& s = text_[i];
      std::string& b = bytes_[i];
      size_t pos = 0;
      while (pos < s.size()) {
        const size_t start = pos;
        uint32_t cp;
        const int byte = utf8::decode(s, pos, cp) ? utf8::codepoint_to_byte(cp) : -1;
        if (byte >= 0)
          b += static_cast<char>(byte);
        else
          b.append(s, start, pos - start);
      }
    } else {
      bytes_[i] = text_[i];  // user-defined and control tokens are literal text
      if (t == TokenType::Control || t == TokenType::UserDefined || t == TokenType::Unknown) specials.push_back(i);
    }
  }
  std::stable_sort(specials.begin(), specials.end(),
                   [&](int32_t a, int32_t b) { return text_[a].size() > text_[b].size(); });
  for (size_t k = 0; k < specials.size(); ++k) {
    special_->priority[specials[k]] = static_cast<int32_t>(k);
    special_->add(text_[specials[k]], specials[k]);
  }

  for (int b = 0; b < 256; ++b) byte_token_[b] = find_token(utf8::bytes_to_token_text(std::string_view(reinterpret_cast<const char*>(&b), 1)));

  merge_rank_.reserve(v.merges.size() * 2);
  std::string joined;
  for (size_t rank = 0; rank < v.merges.size(); ++rank) {
    const std::string& m = v.merges[rank];
    const size_t sp = m.find(' ', 1);
    if (sp == std::string::npos) fail(source_, ": merge ", rank, " ('", m, "') has no space separator");
    const std::string_view left(m.data(), sp), right(m.data() + sp + 1, m.size() - sp - 1);
    joined.assign(left).append(right);
    const int32_t l = find_token(left), r = find_token(right), merged = find_token(joined);
    // A merge whose parts or result are not tokens can never produce a token: skip it.
    if (l < 0 || r < 0 || merged < 0) continue;
    const uint64_t key = (static_cast<uint64_t>(l) << 32) | static_cast<uint32_t>(r);
    merge_rank_.emplace(key, (static_cast<uint64_t>(rank) << 32) | static_cast<uint32_t>(merged));
  }
}

Tokenizer::~Tokenizer() = default;

int32_t Tokenizer::find_token(std::string_view text) const {
  auto it = text_to_id_.find(text);
  return it == text_to_id_.end() ? -1 : it->second;
}

bool Tokenizer::is_control(int32_t id) const {
  return id >= 0 && id < n_vocab() && type_[id] == TokenType::Control;
}

bool Tokenizer::is_end_of_generation(int32_t id) const {
  if (id < 0 || id >= n_vocab()) return false;
  if (id == eos_ || id == eot_) return true;
  if (type_[id] != TokenType::Control) return false;
  const std::string& t = text_[id];
  return t.find("end▁of▁sentence") != std::string::npos || t == "<|EOT|>" || t == "<|end_of_text|>";
}

std::string_view Tokenizer::token_bytes(int32_t id, bool special) const {
  if (id < 0 || id >= n_vocab()) fail("token id ", id, " is outside the vocabulary of ", n_vocab(), " tokens");
  const TokenType t = type_[id];
  if ((t == TokenType::Control || t == TokenType::Unknown) && !special) return {};
  if (t == TokenType::Unused) return {};
  return bytes_[id];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool special) const {
  std::string out;
  for (int32_t id : ids) out += token_bytes(id, special);
  return out;
}

// ---------------------------------------------------------------------------
// BPE inside one pre-token. Symbols form a linked list over the pre-token's bytes; a
// min-heap holds candidate merges ordered by (rank, position). A popped candidate is
// applied only if both symbols are still the ones it was made for.

namespace {
struct MergeCandidate {
  uint32_t rank, left;
  int32_t left_id, right_id, merged_id;
  bool operator>(const MergeCandidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
};
}  // namespace

void Tokenizer::bpe(std::string_view bytes, std::vector<int32_t>& out) const {
  const size_t n = bytes.size();
  if (n == 1) {
    const int32_t t = byte_token_[static_cast<uint8_t>(bytes[0])];
    if (t >= 0) out.push_back(t);
    return;
  }
  thread_local std::vector<int32_t> id, next, prev;
  thread_local std::vector<MergeCandidate> heap;
  id.resize(n), next.resize(n), prev.resize(n);
  for (size_t i = 0; i < n; ++i) {
    id[i] = byte_token_[static_cast<uint8_t>(bytes[i])];
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  heap.clear();
  const auto consider = [&](int32_t left) {
    if (left < 0) return;
    const int32_t right = next[left];
    if (right < 0 || id[left] < 0 || id[right] < 0) return;
    auto it = merge_rank_.find((static_cast<uint64_t>(id[left]) << 32) | static_cast<uint32_t>(id[right]));
    if (it == merge_rank_.end()) return;
    heap.push_back({static_cast<uint32_t>(it->second >> 32), static_cast<uint32_t>(left), id[left], id[right],
                    static_cast<int32_t>(it->second & 0xFFFFFFFFu)});
    std::push_heap(heap.begin(), heap.end(), std::greater<>{});
  };
  for (size_t i = 0; i + 1 < n; ++i) consider(static_cast<int32_t>(i));
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
    const MergeCandidate c = heap.back();
    heap.pop_back();
    const int32_t left = static_cast<int32_t>(c.left), right = next[left];
    if (id[left] != c.left_id || right < 0 || id[right] != c.right_id) continue;  // stale
    id[left] = c.merged_id;
    id[right] = -2;  // removed
    next[left] = next[right];
    if (next[right] >= 0) prev[next[right]] = left;
    consider(prev[left]);
    consider(left);
  }
  for (int32_t i = 0; i >= 0; i = next[i])
    if (id[i] >= 0) out.push_back(id[i]);  // bytes without a token are dropped, as in llama.cpp
}

void Tokenizer::bpe_reference(std::string_view bytes, std::vector<int32_t>& out) const {
  std::vector<int32_t> sym;
  for (unsigned char c : bytes) sym.push_back(byte_token_[c]);
  for (;;) {
    uint64_t best = UINT64_MAX;
    size_t best_pos = 0;
    for (size_t i = 0; i + 1 < sym.size(); ++i) {
      if (sym[i] < 0 || sym[i + 1] < 0) continue;
      auto it = merge_rank_.find((static_cast<uint64_t>(sym[i]) << 32) | static_cast<uint32_t>(sym[i + 1]));
      if (it != merge_rank_.end() && it->second < best) best = it->second, best_pos = i;
    }
    if (best == UINT64_MAX) break;
    sym[best_pos] = static_cast<int32_t>(best & 0xFFFFFFFFu);
    sym.erase(sym.begin() + best_pos + 1);
  }
  for (int32_t t : sym)
    if (t >= 0) out.push_back(t);
}

// ---------------------------------------------------------------------------

void Tokenizer::encode_plain(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  thread_local std::vector<TextSpan> pieces;
  pieces.clear();
  pre_->split(text, pieces);
  // Frequent pre-tokens (" the", "，", " of") are encoded once per call; the cache
  // points at the first place their tokens were written in `out`.
  std::unordered_map<std::string_view, std::pair<uint32_t, uint32_t>> cache;
  cache.reserve(std::min<size_t>(pieces.size(), 1 << 16));
  for (const TextSpan& p : pieces) {
    const std::string_view piece = text.substr(p.offset, p.length);
    if (piece.size() == 1) {
      const int32_t t = byte_token_[static_cast<uint8_t>(piece[0])];
      if (t >= 0) out.push_back(t);
      continue;
    }
    auto [it, inserted] = cache.try_emplace(piece, 0u, 0u);
    if (!inserted) {
      const size_t at = out.size();
      out.resize(at + it->second.second);
      std::copy_n(out.begin() + it->second.first, it->second.second, out.begin() + at);
      continue;
    }
    const size_t before = out.size();
    bpe(piece, out);
    it->second = {static_cast<uint32_t>(before), static_cast<uint32_t>(out.size() - before)};
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view input, const TokenizerOptions& opts) const {
  if (input.size() >= (1ull << 32) - 16) fail("text of ", input.size(), " bytes is too long to tokenize at once");
  std::vector<int32_t> out;
  out.reserve(input.size() / 3 + 4);
  if (opts.add_special && add_bos_) out.push_back(bos_);

  std::string sanitized;
  std::string_view text = input;
  if (!utf8::is_valid(input)) {
    sanitized = utf8::sanitize(input);
    text = sanitized;
  }

  std::vector<SpecialMatcher::Occurrence> occ;
  special_->find_all(text,
                     [&](int32_t tok) { return opts.parse_special || type_[tok] == TokenType::UserDefined; }, occ);
  if (occ.empty()) {
    encode_plain(text, out);
  } else {
    std::sort(occ.begin(), occ.end(), [](const auto& a, const auto& b) {
      return a.priority != b.priority ? a.priority < b.priority : a.start < b.start;
    });
    std::map<uint32_t, std::pair<uint32_t, int32_t>> taken;  // start -> (end, token)
    for (const auto& o : occ) {
      const uint32_t end = o.start + o.length;
      auto after = taken.lower_bound(o.start);
      if (after != taken.end() && after->first < end) continue;
      if (after != taken.begin() && std::prev(after)->second.first > o.start) continue;
      taken.emplace(o.start, std::make_pair(end, o.token));
    }
    uint32_t pos = 0;
    for (const auto& [start, end_token] : taken) {
      encode_plain(text.substr(pos, start - pos), out);
      out.push_back(end_token.second);
      pos = end_token.first;
    }
    encode_plain(text.substr(pos), out);
  }
  if (opts.add_special && add_eos_) out.push_back(eos_);
  return out;
}

// ---------------------------------------------------------------------------

std::string StreamDecoder::push(int32_t id) {
  pending_ += tok_.token_bytes(id, special_);
  const size_t k = utf8::complete_prefix(pending_);
  std::string out = pending_.substr(0, k);
  pending_.erase(0, k);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace mlamoe
