#!/usr/bin/env python3
"""PyTorch vs bert-wgpu on the same model and shapes, side by side.

    python3 scripts/bench_vs_torch.py --model DIR_OR_PRESET --device cpu \
        --shapes 32x128 1x128 [--threads 2] [--iters 10] [--bin target/release/bert-wgpu]

--model is a checkpoint folder (e.g. the all-MiniLM-L6-v2 folder written by
scripts/fetch_minilm.sh) or a preset name (bert-tiny, minilm-l6, bert-base,
bert-large) for a randomly initialised model; both sides then use a random
model of that shape (timing does not depend on the weights).
--device cpu compares with PyTorch on the CPU with the same thread count;
--device gpu compares bert-wgpu's WebGPU executor with PyTorch CUDA eager f32
(TF32 off) when CUDA is available.
Needs: pip install torch transformers.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

PRESETS = {
    "bert-tiny": (2, 128, 2, 512),
    "minilm-l6": (6, 384, 12, 1536),
    "bert-base": (12, 768, 12, 3072),
    "bert-large": (24, 1024, 16, 4096),
}


def torch_model(model, device):
    import torch
    from transformers import BertConfig, BertModel

    if os.path.isdir(model):
        m = BertModel.from_pretrained(model, attn_implementation="sdpa")
    else:
        layers, hidden, heads, inter = PRESETS[model]
        cfg = BertConfig(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads,
                         intermediate_size=inter, attn_implementation="sdpa")
        m = BertModel(cfg)
    return m.eval().to(device=device, dtype=torch.float32)


def time_torch(m, device, batch, seq, warmup, iters):
    import torch

    ids = torch.randint(1000, m.config.vocab_size, (batch, seq), device=device)
    mask = torch.ones_like(ids)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            m(input_ids=ids, attention_mask=mask)
        sync()
        for _ in range(iters):
            t = time.perf_counter()
            m(input_ids=ids, attention_mask=mask)
            sync()
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def time_ours(binary, model, device, batch, seq, warmup, iters, threads):
    cmd = [binary, "bench", "--device", device, "--batch", str(batch), "--seq", str(seq),
           "--warmup", str(warmup), "--iters", str(iters), "--json"]
    cmd += ["--model", model] if os.path.isdir(model) else ["--config", model]
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--shapes", nargs="+", default=["32x128", "1x128"])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--bin", default="target/release/bert-wgpu")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    tdev = "cpu"
    if args.device == "gpu":
        if not torch.cuda.is_available():
            sys.exit("--device gpu needs PyTorch with CUDA for the comparison")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        tdev = "cuda"
    m = torch_model(args.model, tdev)
    cfg = m.config
    print(f"model {args.model}: {cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}, "
          f"torch {torch.__version__}, {args.threads} threads, device {args.device}")
    print(f"{'batch x seq':>12} {'torch ms':>10} {'ours ms':>10} {'torch tok/s':>12} {'ours tok/s':>12} {'ours/torch':>10}")
    for shape in args.shapes:
        batch, seq = (int(v) for v in shape.split("x"))
        t_ms = time_torch(m, tdev, batch, seq, args.warmup, args.iters)
        ours = time_ours(args.bin, args.model, args.device, batch, seq, args.warmup, args.iters, args.threads)
        tok = batch * seq
        print(f"{shape:>12} {t_ms:>10.2f} {ours['median_ms']:>10.2f} {tok / t_ms * 1e3:>12.0f} "
              f"{ours['tokens_per_s']:>12.0f} {t_ms / ours['median_ms']:>9.2f}x")


if __name__ == "__main__":
    main()
