#!/usr/bin/env bash
# The official `openai` Python client against `bert-wgpu serve` with
# all-MiniLM-L6-v2 (tests/openai_client.py). Installs the client into a
# scratch virtual environment from PyPI; builds the binary if needed.
#   scripts/test_openai_client.sh [BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-target/debug/bert-wgpu}"
[ -x "$BIN" ] || cargo build --locked
MODEL="$(scripts/fetch_minilm.sh | tail -n 1)"
VENV="${OPENAI_VENV:-${TMPDIR:-/tmp}/bert-wgpu-openai-venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import openai" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "openai==3.57.0"
fi
HF_HUB_OFFLINE=1 "$VENV/bin/python" tests/openai_client.py "$BIN" "$MODEL"
