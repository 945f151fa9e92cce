#!/usr/bin/env bash
# One call on a machine with a real GPU: correctness against the CPU executor
# on small inputs, then the whole benchmark table. Prints a markdown table to
# paste into BENCHMARKS.md.
#
#   scripts/gpu_bench.sh                 # builds target/release/bert-wgpu if needed
#   BIN=path/to/bert-wgpu scripts/gpu_bench.sh   # a prebuilt (e.g. carried) binary
#   QUICK=1 scripts/gpu_bench.sh         # the same steps on bert-tiny with 2 iterations:
#                                        # checks the script itself (e.g. on lavapipe)
#                                        # before spending real-GPU time on it
#
# The device machine has no network: build here first (stripped, it is small):
#   CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=true cargo build --release
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-target/release/bert-wgpu}"
if [ ! -x "$BIN" ]; then
  cargo build --release
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR"
export RUST_LOG=warn
# The fixed rows run the built-in choices (or the variables each row sets);
# the "first use" section at the end lets the executor tune itself as it
# does for a user, into a scratch folder.
export BERT_WGPU_TUNE=off
BIG=bert-base; SMALL=minilm-l6; N=20; N1=50; N8=10; NP=3
if [ "${QUICK:-0}" = 1 ]; then
  BIG=bert-tiny; SMALL=bert-tiny; N=2; N1=2; N8=2; NP=1
fi

echo "## Adapters"
"$BIN" info

echo "## Correctness: GPU vs CPU on a random bert-tiny batch"
"$BIN" selfcheck --config bert-tiny --batch 3 --seq 33 || echo "SELFCHECK FAILED"
"$BIN" selfcheck --config $BIG --batch 2 --seq 64 || echo "SELFCHECK FAILED"
echo "## Correctness of the opt-in kernels (each against the CPU)"
BERT_WGPU_GEMM_TILE=prefetch BERT_WGPU_ATTENTION=tiled "$BIN" selfcheck --config $BIG --batch 2 --seq 64 || echo "SELFCHECK FAILED (prefetch tiles, tiled attention)"
BERT_WGPU_GEMM=splitk BERT_WGPU_GEMM_TILE=prefetch "$BIN" selfcheck --config $BIG --batch 1 --seq 128 || echo "SELFCHECK FAILED (split-k, prefetch tiles)"
"$BIN" selfcheck --config $BIG --batch 2 --seq 64 --dtype f16 || echo "SELFCHECK FAILED (f16)"
BERT_WGPU_GEMM=coop "$BIN" selfcheck --config $BIG --batch 2 --seq 64 --dtype f16 || echo "SELFCHECK FAILED (f16 coop)"
BERT_WGPU_GEMM=coop "$BIN" selfcheck --config bert-tiny --batch 3 --seq 33 --dtype f16 || echo "SELFCHECK FAILED (f16 coop, bert-tiny)"

header() {
  echo "| shape | dtype | median ms | min ms | tokens/s | GFLOP/s | submits/forward | host record / wait ms | upload GB/s | GPU buffers MB | max diff vs f32 | load s |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
}

run() { # label, args...
  local label="$1"; shift
  local json
  json=$("$BIN" bench --json "$@" | tail -n 1)
  python3 - "$label" "$json" <<'PY'
import json, sys
label, r = sys.argv[1], json.loads(sys.argv[2])
diff = r.get('max_abs_diff_vs_f32')
diff = f"{diff:.2e}" if diff is not None else "-"
gbs = r.get('upload_gb_per_s')
gbs = f"{gbs:.2f}" if gbs is not None else "-"
mem = r.get('gpu_buffer_bytes')
mem = f"{mem/1e6:.0f}" if mem is not None else "-"
rec, wait = r.get('record_ms'), r.get('wait_ms')
host = f"{rec:.3f} / {wait:.3f}" if rec is not None and wait is not None else "-"
print(f"| {label} | {r['dtype']} | {r['median_ms']:.3f} | {r['min_ms']:.3f} | {r['tokens_per_s']:.0f} | {r['gflops']:.1f} | {r.get('submits_per_forward')} | {host} | {gbs} | {mem} | {diff} | {r.get('load_s', float('nan')):.2f} |")
PY
}

echo "## Forward passes (f32, then f16)"
header
for dtype in f32 f16; do
  run "$BIG b32 s128" --device gpu --dtype $dtype --config $BIG --batch 32 --seq 128 --iters $N
  run "$BIG b1 s128" --device gpu --dtype $dtype --config $BIG --batch 1 --seq 128 --iters $N1
  run "$BIG b8 s512" --device gpu --dtype $dtype --config $BIG --batch 8 --seq 512 --iters $N8
  run "$SMALL b32 s128" --device gpu --dtype $dtype --config $SMALL --batch 32 --seq 128 --iters $N
  run "$SMALL b1 s128" --device gpu --dtype $dtype --config $SMALL --batch 1 --seq 128 --iters $N1
done

echo "## f16 on cooperative matrices (BERT_WGPU_GEMM=coop; 'info' above shows the fragment size)"
header
BERT_WGPU_GEMM=coop run "$BIG b32 s128 gemm=coop" --device gpu --dtype f16 --config $BIG --batch 32 --seq 128 --iters $N
BERT_WGPU_GEMM=coop BERT_WGPU_ATTENTION=tiled run "$BIG b32 s128 gemm=coop attention=tiled" --device gpu --dtype f16 --config $BIG --batch 32 --seq 128 --iters $N
BERT_WGPU_GEMM=coop run "$BIG b1 s128 gemm=coop" --device gpu --dtype f16 --config $BIG --batch 1 --seq 128 --iters $N1
BERT_WGPU_GEMM=coop BERT_WGPU_ATTENTION=tiled run "$BIG b1 s128 gemm=coop attention=tiled" --device gpu --dtype f16 --config $BIG --batch 1 --seq 128 --iters $N1
BERT_WGPU_GEMM=coop BERT_WGPU_ATTENTION=tiled run "$BIG b8 s512 gemm=coop attention=tiled" --device gpu --dtype f16 --config $BIG --batch 8 --seq 512 --iters $N8
BERT_WGPU_GEMM=coop BERT_WGPU_ATTENTION=tiled run "$SMALL b32 s128 gemm=coop attention=tiled" --device gpu --dtype f16 --config $SMALL --batch 32 --seq 128 --iters $N
echo "### GEMM alone, f16 on cooperative matrices ($BIG shapes, 4096 rows)"
BERT_WGPU_GEMM=coop "$BIN" bench --gemm --device gpu --dtype f16 --config $BIG --batch 32 --seq 128 --iters $N
echo "### Per-kernel GPU time, f16 coop + tiled attention ($BIG b32 s128)"
BERT_WGPU_GEMM=coop BERT_WGPU_ATTENTION=tiled "$BIN" bench --device gpu --dtype f16 --config $BIG --batch 32 --seq 128 --iters $NP --profile || true

echo "## Small m: $BIG at 128 rows, each GEMM choice (register = the default there)"
echo "| shape | GEMM | median ms | tokens/s |"
echo "|---|---|---|---|"
for gemm in register tiled splitk; do
  json=$(BERT_WGPU_GEMM=$gemm "$BIN" bench --json --device gpu --config $BIG --batch 1 --seq 128 --iters $N1 | tail -n 1)
  python3 -c "import json,sys; r=json.loads(sys.argv[1]); print(f\"| $BIG b1 s128 | $gemm | {r['median_ms']:.3f} | {r['tokens_per_s']:.0f} |\")" "$json"
  BERT_WGPU_GEMM=$gemm "$BIN" bench --gemm --device gpu --config $BIG --batch 1 --seq 128 --iters $N1
done

echo "## Attention kernels (BERT_WGPU_ATTENTION=query is the default; tiled is opt-in until measured)"
header
for attn in query tiled; do
  for dtype in f32 f16; do
    BERT_WGPU_ATTENTION=$attn run "$BIG b32 s128 attention=$attn" --device gpu --dtype $dtype --config $BIG --batch 32 --seq 128 --iters $N
    BERT_WGPU_ATTENTION=$attn run "$BIG b1 s128 attention=$attn" --device gpu --dtype $dtype --config $BIG --batch 1 --seq 128 --iters $N1
  done
  BERT_WGPU_ATTENTION=$attn run "$BIG b8 s512 attention=$attn" --device gpu --config $BIG --batch 8 --seq 512 --iters $N8
done
BERT_WGPU_ATTENTION=tiled BERT_WGPU_GEMM=splitk run "$BIG b1 s128 attention=tiled gemm=splitk" --device gpu --config $BIG --batch 1 --seq 128 --iters $N1

echo "## Tile kernel (BERT_WGPU_GEMM_TILE=plain is the default; prefetch is opt-in until measured)"
header
for dtype in f32 f16; do
  BERT_WGPU_GEMM_TILE=prefetch run "$BIG b32 s128 tile=prefetch" --device gpu --dtype $dtype --config $BIG --batch 32 --seq 128 --iters $N
  BERT_WGPU_GEMM_TILE=prefetch BERT_WGPU_ATTENTION=tiled run "$BIG b32 s128 tile=prefetch attention=tiled" --device gpu --dtype $dtype --config $BIG --batch 32 --seq 128 --iters $N
  BERT_WGPU_GEMM_TILE=prefetch BERT_WGPU_ATTENTION=tiled BERT_WGPU_GEMM=splitk run "$BIG b1 s128 tile=prefetch attention=tiled gemm=splitk" --device gpu --dtype $dtype --config $BIG --batch 1 --seq 128 --iters $N1
done
BERT_WGPU_GEMM_TILE=prefetch BERT_WGPU_ATTENTION=tiled run "$BIG b8 s512 tile=prefetch attention=tiled" --device gpu --config $BIG --batch 8 --seq 512 --iters $N8
BERT_WGPU_GEMM_TILE=prefetch BERT_WGPU_ATTENTION=tiled run "$SMALL b32 s128 tile=prefetch attention=tiled" --device gpu --config $SMALL --batch 32 --seq 128 --iters $N
echo "## Per-kernel GPU time ($BIG b1 s128), attention query then tiled"
BERT_WGPU_ATTENTION=query "$BIN" bench --device gpu --config $BIG --batch 1 --seq 128 --iters $NP --profile || true
BERT_WGPU_ATTENTION=tiled "$BIN" bench --device gpu --config $BIG --batch 1 --seq 128 --iters $NP --profile || true
BERT_WGPU_ATTENTION=tiled "$BIN" bench --device gpu --config $BIG --batch 32 --seq 128 --iters $NP --profile || true

echo "## GEMM kernel alone ($BIG shapes, 4096 rows), f32 then f16; plain tiles then prefetch"
for tile in plain prefetch; do
  echo "### tile=$tile"
  BERT_WGPU_GEMM_TILE=$tile "$BIN" bench --gemm --device gpu --config $BIG --batch 32 --seq 128 --iters $N
  BERT_WGPU_GEMM_TILE=$tile "$BIN" bench --gemm --device gpu --dtype f16 --config $BIG --batch 32 --seq 128 --iters $N
done

echo "## Per-kernel GPU time ($BIG b32 s128), f32 then f16"
"$BIN" bench --device gpu --config $BIG --batch 32 --seq 128 --iters $NP --profile || true
"$BIN" bench --device gpu --dtype f16 --config $BIG --batch 32 --seq 128 --iters $NP --profile || true

echo "## bert-wgpu tune (what the autotune would choose here; --dry-run, nothing saved)"
"$BIN" tune --config $BIG --batch 32 --seq 128 --iters $N --dry-run || true
"$BIN" tune --config $BIG --dtype f16 --batch 32 --seq 128 --iters $N --dry-run || true

echo "## First use: the executor checks and times the variants itself, then runs its choices"
echo "(the first row's load includes the tuning; the file it saved follows)"
header
TUNED="$(mktemp -d)"
for dtype in f32 f16; do
  for shape in "32 128" "1 128" "8 512"; do
    set -- $shape
    BERT_WGPU_TUNE=auto BERT_WGPU_TUNE_DIR="$TUNED" run "$BIG b$1 s$2 first-use tuned" --device gpu --dtype $dtype --config $BIG --batch $1 --seq $2 --iters $N
  done
done
cat "$TUNED"/*.json || true
rm -rf "$TUNED"

if python3 -c "import torch, transformers; assert torch.cuda.is_available()" 2>/dev/null; then
  echo "## Device f32 GEMM peak (torch.matmul, TF32 off, 8192^3)"
  python3 - <<'PY'
import torch, time
torch.backends.cuda.matmul.allow_tf32 = False
a = torch.randn(8192, 8192, device="cuda"); b = torch.randn(8192, 8192, device="cuda")
for _ in range(3): a @ b
torch.cuda.synchronize(); t = time.perf_counter(); n = 10
for _ in range(n): a @ b
torch.cuda.synchronize(); dt = (time.perf_counter() - t) / n
print(f"torch f32 matmul 8192^3: {dt*1e3:.2f} ms, {2*8192**3/dt/1e12:.1f} TFLOP/s")
PY
  echo "## PyTorch CUDA eager f32 (TF32 off)"
  python3 scripts/bench_vs_torch.py --device gpu --model bert-base --shapes 32x128 1x128 --bin "$BIN"
else
  echo "(PyTorch with CUDA not available here: no torch comparison)"
fi
