#include "runtime/prefix_tree.h"

#include <algorithm>

namespace mlamoe {

namespace {
int64_t common_prefix(std::span<const int32_t> a, std::span<const int32_t> b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return static_cast<int64_t>(i);
}
}  // namespace

PrefixTree::Match PrefixTree::lookup(std::span<const int32_t> tokens) {
  Match m;
  m.B_ = B_;
  Node* node = root_.get();
  size_t at = 0;
  ++clock_;
  for (;;) {
    const auto rest = tokens.subspan(at);
    if (rest.empty()) break;
    Node* best = nullptr;
    int64_t best_len = 0;
    for (auto& c : node->children) {
      const int64_t len = common_prefix(c->tokens, rest);
      if (len > best_len) best = c.get(), best_len = len;
    }
    if (!best) break;
    best->last_use = clock_;
    if (best_len == B_) {  // the whole block matches: share it, go on
      m.full_blocks.push_back(best->block);
      node = best;
      at += static_cast<size_t>(B_);
      continue;
    }
    m.partial_block = best->block;  // diverges inside this block
    m.partial_tokens = best_len;
    break;
  }
  for (Node* n = node; n; n = n->parent) n->last_use = clock_;
  return m;
}

void PrefixTree::insert(std::span<const int32_t> tokens, std::span<const int32_t> blocks, std::vector<int32_t>& held,
                        std::vector<int32_t>& dropped) {
  Node* node = root_.get();
  ++clock_;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const size_t from = i * static_cast<size_t>(B_);
    if (from >= tokens.size()) break;
    const auto chunk = tokens.subspan(from, std::min<size_t>(static_cast<size_t>(B_), tokens.size() - from));
    Node* same = nullptr;
    for (auto& c : node->children)
      if (std::equal(c->tokens.begin(), c->tokens.end(), chunk.begin(), chunk.end())) same = c.get();
    if (!same && static_cast<int64_t>(chunk.size()) < B_) {
      // A partial tail that a sibling's tokens begin with is already cached there.
      for (auto& c : node->children)
        if (common_prefix(c->tokens, chunk) == static_cast<int64_t>(chunk.size())) same = c.get();
    }
    if (!same) {
      // A partial sibling that is a strict prefix of this chunk is superseded.
      auto& kids = node->children;
      for (auto it = kids.begin(); it != kids.end();) {
        Node* c = it->get();
        if (c->children.empty() && c->tokens.size() < chunk.size() &&
            common_prefix(c->tokens, chunk) == static_cast<int64_t>(c->tokens.size())) {
          dropped.push_back(c->block);
          --n_blocks_;
          it = kids.erase(it);
        } else {
          ++it;
        }
      }
      auto n = std::make_unique<Node>();
      n->tokens.assign(chunk.begin(), chunk.end());
      n->block = blocks[i];
      n->parent = node;
      held.push_back(blocks[i]);
      ++n_blocks_;
      kids.push_back(std::move(n));
      same = kids.back().get();
    }
    same->last_use = clock_;
    node = same;
    if (static_cast<int64_t>(chunk.size()) < B_) break;
  }
}

std::vector<std::vector<int32_t>> PrefixTree::sequences() const {
  std::vector<std::pair<uint64_t, std::vector<int32_t>>> leaves;  // (last use, path)
  std::vector<int32_t> path;
  auto walk = [&](auto& self, const Node* n) -> void {
    path.insert(path.end(), n->tokens.begin(), n->tokens.end());
    if (n->children.empty() && n != root_.get()) leaves.emplace_back(n->last_use, path);
    for (auto& c : n->children) self(self, c.get());
    path.resize(path.size() - n->tokens.size());
  };
  walk(walk, root_.get());
  std::stable_sort(leaves.begin(), leaves.end(), [](auto& a, auto& b) { return a.first < b.first; });
  std::vector<std::vector<int32_t>> out;
  out.reserve(leaves.size());
  for (auto& l : leaves) out.push_back(std::move(l.second));
  return out;
}

void PrefixTree::remove(Node* leaf) {
  auto& kids = leaf->parent->children;
  kids.erase(std::find_if(kids.begin(), kids.end(), [&](auto& c) { return c.get() == leaf; }));
  --n_blocks_;
}

}  // namespace mlamoe
