// A radix tree over token ids whose edges are KV blocks: the path from the root spells
// a token prefix, and each node names the block holding the KV entries of its tokens.
// Because an entry depends on every earlier token, a block can only be reused under
// the same path. Full nodes (block_tokens ids) may have children; a partial node (the
// tail of a published sequence) is a leaf. The tree stores block ids only: the cache
// owns the blocks and counts the tree's references.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace mlamoe {

class PrefixTree {
 public:
  explicit PrefixTree(int64_t block_tokens) : B_(block_tokens) {}

  struct Match {
    std::vector<int32_t> full_blocks;  // shared whole
    int32_t partial_block = -1;        // the first divergent block, to copy ...
    int64_t partial_tokens = 0;        // ... up to this many of its positions
    int64_t tokens() const { return static_cast<int64_t>(full_blocks.size()) * B_ + partial_tokens; }
    int64_t B_ = 0;
  };
  // The longest cached prefix of `tokens`.
  Match lookup(std::span<const int32_t> tokens);

  // Inserts a sequence: `blocks[i]` holds tokens [i·B, (i+1)·B). Blocks the tree now
  // references are appended to `held`; blocks it stops referencing (a shorter partial
  // tail superseded by a longer one) to `dropped`.
  void insert(std::span<const int32_t> tokens, std::span<const int32_t> blocks, std::vector<int32_t>& held,
              std::vector<int32_t>& dropped);

  // Removes least-recently-used leaves for which `droppable(block)` holds until at most
  // `max_blocks` remain; their blocks are appended to `dropped`.
  template <typename Pred>
  void trim(uint64_t max_blocks, Pred droppable, std::vector<int32_t>& dropped) {
    while (n_blocks_ > max_blocks) {
      Node* victim = oldest_leaf(root_.get(), droppable);
      if (!victim) return;
      dropped.push_back(victim->block);
      remove(victim);
    }
  }

  uint64_t n_blocks() const { return n_blocks_; }

  // The token ids spelled by every leaf (each cached sequence once), least recently
  // used first: what a server saves to reload its prefix cache after a restart.
  std::vector<std::vector<int32_t>> sequences() const;

 private:
  struct Node {
    std::vector<int32_t> tokens;  // ≤ B ids; the root has none
    int32_t block = -1;
    Node* parent = nullptr;
    std::vector<std::unique_ptr<Node>> children;
    uint64_t last_use = 0;
  };
  template <typename Pred>
  Node* oldest_leaf(Node* n, Pred& droppable) {
    Node* best = nullptr;
    for (auto& c : n->children) {
      Node* cand = c->children.empty() ? (droppable(c->block) ? c.get() : nullptr) : oldest_leaf(c.get(), droppable);
      if (cand && (!best || cand->last_use < best->last_use)) best = cand;
    }
    return best;
  }
  void remove(Node* leaf);

  int64_t B_;
  std::unique_ptr<Node> root_ = std::make_unique<Node>();
  uint64_t clock_ = 0, n_blocks_ = 0;
};

}  // namespace mlamoe
