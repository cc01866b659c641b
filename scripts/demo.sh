#!/usr/bin/env bash
# Builds mlamoe and generates text with the small model the project ships
# (models/mlamoe-tiny-arith.gguf); without it, with a tiny random DeepSeek-V3-shaped model
# made by `mlamoe gen-random`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
if [ -f models/mlamoe-tiny-arith.gguf ]; then
  ./build/mlamoe run -p "${1:-What is 47+85?}" --chat -n 64 --temp 0
else
  vocab=()
  [ -f ../shared/tokenizer/ggml-vocab-deepseek-llm.gguf ] && vocab=(--vocab ../shared/tokenizer/ggml-vocab-deepseek-llm.gguf)
  ./build/mlamoe gen-random --config data/configs/tiny-deepseek-v3.json --out build/tiny-random.gguf --type q8_0 "${vocab[@]}" --seed 1
  ./build/mlamoe info build/tiny-random.gguf
  ./build/mlamoe run -m build/tiny-random.gguf -p "${1:-DeepSeek-V3 uses Multi-head Latent Attention}" -n 32 --seed 1
fi
