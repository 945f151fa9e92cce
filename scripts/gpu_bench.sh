#!/usr/bin/env bash
# One call on a machine with a real GPU: correctness against the CPU executor
# on small inputs, then the whole benchmark table. Prints a markdown table to
# paste into BENCHMARKS.md.
#
#   scripts/gpu_bench.sh                 # builds target/release/bert-wgpu if needed
#   BIN=path/to/bert-wgpu scripts/gpu_bench.sh   # a prebuilt (e.g. carried) binary
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

echo "## Adapters"
"$BIN" info

echo "## Correctness: GPU vs CPU on a random bert-tiny batch"
"$BIN" selfcheck --config bert-tiny --batch 3 --seq 33 || echo "SELFCHECK FAILED"
"$BIN" selfcheck --config bert-base --batch 2 --seq 64 || echo "SELFCHECK FAILED"

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
print(f"| {label} | {r['dtype']} | {r['median_ms']:.3f} | {r['min_ms']:.3f} | {r['tokens_per_s']:.0f} | {r['gflops']:.1f} | {r.get('submits_per_forward')} | {gbs} | {mem} | {diff} |")
PY
}

echo "## Forward passes (f32, then f16)"
echo "| shape | dtype | median ms | min ms | tokens/s | GFLOP/s | submits/forward | upload GB/s | GPU buffers MB | max diff vs f32 |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for dtype in f32 f16; do
  run "bert-base b32 s128" --device gpu --dtype $dtype --config bert-base --batch 32 --seq 128 --iters 20
  run "bert-base b1 s128" --device gpu --dtype $dtype --config bert-base --batch 1 --seq 128 --iters 50
  run "bert-base b8 s512" --device gpu --dtype $dtype --config bert-base --batch 8 --seq 512 --iters 10
  run "minilm-l6 b32 s128" --device gpu --dtype $dtype --config minilm-l6 --batch 32 --seq 128 --iters 20
  run "minilm-l6 b1 s128" --device gpu --dtype $dtype --config minilm-l6 --batch 1 --seq 128 --iters 50
done

echo "## Small m: bert-base at 128 rows, each GEMM choice (register = the default there)"
echo "| shape | GEMM | median ms | tokens/s |"
echo "|---|---|---|---|"
for gemm in register tiled splitk; do
  json=$(BERT_WGPU_GEMM=$gemm "$BIN" bench --json --device gpu --config bert-base --batch 1 --seq 128 --iters 50 | tail -n 1)
  python3 -c "import json,sys; r=json.loads(sys.argv[1]); print(f\"| bert-base b1 s128 | $gemm | {r['median_ms']:.3f} | {r['tokens_per_s']:.0f} |\")" "$json"
  BERT_WGPU_GEMM=$gemm "$BIN" bench --gemm --device gpu --config bert-base --batch 1 --seq 128 --iters 50
done

echo "## GEMM kernel alone (bert-base shapes, 4096 rows), f32 then f16"
"$BIN" bench --gemm --device gpu --config bert-base --batch 32 --seq 128 --iters 20
"$BIN" bench --gemm --device gpu --dtype f16 --config bert-base --batch 32 --seq 128 --iters 20

echo "## Per-kernel GPU time (bert-base b32 s128), f32 then f16"
"$BIN" bench --device gpu --config bert-base --batch 32 --seq 128 --iters 3 --profile || true
"$BIN" bench --device gpu --dtype f16 --config bert-base --batch 32 --seq 128 --iters 3 --profile || true

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
