#!/usr/bin/env bash
# Builds everything and runs the whole test suite (ctest). Expects ../shared beside
# the project (fixtures from DeepSeek's reference implementation).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 900
