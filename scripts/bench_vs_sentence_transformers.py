#!/usr/bin/env python3
"""Whole corpus jobs: bert-wgpu's commands against sentence-transformers and
transformers pipelines on the same machine, the same threads, the same
corpus, with the outputs compared row by row.

    python3 scripts/make_corpus.py > /tmp/corpus.jsonl
    cargo build --release
    /path/to/venv/bin/python scripts/bench_vs_sentence_transformers.py \
        --corpus /tmp/corpus.jsonl --model ~/.cache/bert-wgpu/all-MiniLM-L6-v2 \
        [--runs 3] [--threads 2] [--device cpu] [--tasks embed,classify,ner]

The venv needs torch, transformers, sentence-transformers, numpy.

- embed: `bert-wgpu embed --data CORPUS --output X.npy` (the whole command:
  load, tokenize, batch, write) against `SentenceTransformer(model).encode(
  texts, batch_size=32)` (load excluded). Every row compared.
- classify / ner: the model's encoder with a seeded random head (saved to a
  temporary folder, so both sides load the same weights):
  `bert-wgpu classify|ner --data CORPUS --json` against transformers'
  `pipeline(task, batch_size=32)` (load excluded). Labels and scores compared.

Runs alternate (ours, theirs, ours, ...) so a noisy machine hurts both
alike; the table gives medians, min and peak RSS (ours: of the process,
from GNU time when installed; theirs: of this Python process, which holds
the model and the corpus).
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def run_ours_rss(cmd):
    """Runs a command; returns (seconds, its own peak RSS in MB, stdout).
    The peak comes from GNU time (`/usr/bin/time -f %M`): wait4's maxrss of
    a child forked from this Python process would count the parent's memory
    (torch) copied at the fork. stdout goes to a file, not a pipe."""
    gnu_time = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    rss_file = tempfile.NamedTemporaryFile(delete=False)
    rss_file.close()
    full = [gnu_time, "-f", "%M", "-o", rss_file.name] + cmd if gnu_time else cmd
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        status = subprocess.call(full, stdout=out, stderr=err)
        secs = time.perf_counter() - t0
        if status != 0:
            err.seek(0)
            sys.exit(f"{' '.join(cmd)} failed:\n{err.read().decode()[-2000:]}")
        out.seek(0)
        stdout = out.read()
    rss = float("nan")
    try:
        with open(rss_file.name) as f:
            rss = int(f.read().split()[-1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    os.unlink(rss_file.name)
    return secs, rss, stdout


def self_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_head_model(src, kind, num_labels, dest):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    torch.manual_seed(1234)
    cls = AutoModelForSequenceClassification if kind == "seq" else AutoModelForTokenClassification
    labels = [f"L{i}" for i in range(num_labels)]
    if kind == "tok":
        labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
    m = cls.from_pretrained(src, num_labels=len(labels), id2label=dict(enumerate(labels)),
                            label2id={l: i for i, l in enumerate(labels)})
    with torch.no_grad():
        m.classifier.weight.normal_(0.0, 0.5)
        m.classifier.bias.normal_(0.0, 0.5)
    m.save_pretrained(dest, safe_serialization=True)
    for f in ["tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"]:
        if os.path.exists(os.path.join(src, f)):
            shutil.copy(os.path.join(src, f), os.path.join(dest, f))


def summary(name, times, rss):
    return {"name": name, "median_s": statistics.median(times), "min_s": min(times),
            "runs": len(times), "peak_rss_mb": rss}


def bench_embed(args, texts, n_tokens):
    import torch
    from sentence_transformers import SentenceTransformer

    out_npy = os.path.join(args.tmp, "ours.npy")
    cmd = [args.bin, "-q", "embed", "--model", args.model, "--device", args.device,
           "--data", args.corpus, "--output", out_npy] + args.extra
    st = SentenceTransformer(args.model, device="cpu")
    ours_t, st_t, ours_rss = [], [], 0.0
    theirs = None
    for r in range(args.runs):
        s, rss, _ = run_ours_rss(cmd)
        ours_t.append(s)
        ours_rss = max(ours_rss, rss)
        t0 = time.perf_counter()
        theirs = st.encode(texts, batch_size=32, convert_to_numpy=True)
        st_t.append(time.perf_counter() - t0)
        print(f"embed run {r + 1}: ours {s:.1f} s, sentence-transformers {st_t[-1]:.1f} s", file=sys.stderr)
    ours = np.load(out_npy)
    diff = np.abs(ours - theirs)
    worst = np.unravel_index(diff.argmax(), diff.shape)
    return {
        "task": "embed", "texts": len(texts), "tokens": n_tokens,
        "ours": summary("bert-wgpu embed --data", ours_t, ours_rss),
        "theirs": summary("SentenceTransformer.encode(batch_size=32)", st_t, self_rss_mb()),
        "max_abs_diff": float(diff.max()), "at": [int(worst[0]), int(worst[1])],
        "rows_over_1e-5": int((diff.max(axis=1) > 1e-5).sum()),
    }


def bench_pipeline(args, texts, n_tokens, task):
    from transformers import pipeline

    folder = os.path.join(args.tmp, task)
    if not os.path.isdir(folder):
        make_head_model(args.model, "seq" if task == "classify" else "tok", 3, folder)
    cmd = [args.bin, "-q", task, "--model", folder, "--device", args.device,
           "--data", args.corpus, "--json"] + args.extra
    hf_task = "text-classification" if task == "classify" else "token-classification"
    pipe = pipeline(hf_task, model=folder, device=-1)
    kw = {"truncation": True} if task == "classify" else {}
    ours_t, hf_t, ours_rss = [], [], 0.0
    out, theirs = b"", None
    for r in range(args.runs):
        s, rss, out = run_ours_rss(cmd)
        ours_t.append(s)
        ours_rss = max(ours_rss, rss)
        t0 = time.perf_counter()
        theirs = pipe(texts, batch_size=32, **kw)
        hf_t.append(time.perf_counter() - t0)
        print(f"{task} run {r + 1}: ours {s:.1f} s, transformers {hf_t[-1]:.1f} s", file=sys.stderr)
    lines = [json.loads(l) for l in out.decode().splitlines()]
    agree, worst = 0, 0.0
    for ours_row, hf_row in zip(lines, theirs):
        if task == "classify":
            o = ours_row["labels"][0] if "labels" in ours_row else ours_row
            o_label = o.get("label")
            o_score = o.get("score")
            agree += int(o_label == hf_row["label"])
            worst = max(worst, float(abs(o_score - hf_row["score"])))
        else:
            ents = ours_row.get("entities", [])
            agree += int([e.get("entity") for e in ents] == [e["entity"] for e in hf_row])
            for a, b in zip(ents, hf_row):
                worst = max(worst, float(abs(a["score"] - b["score"])))
    return {
        "task": task, "texts": len(texts), "tokens": n_tokens,
        "ours": summary(f"bert-wgpu {task} --data --json", ours_t, ours_rss),
        "theirs": summary(f"pipeline('{hf_task}', batch_size=32)", hf_t, self_rss_mb()),
        "rows_agreeing": agree, "max_abs_score_diff": worst,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--bin", default="target/release/bert-wgpu")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tasks", default="embed,classify,ner")
    ap.add_argument("--extra", default="", help="extra bert-wgpu arguments, space-separated")
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args()
    args.extra = args.extra.split()
    import torch
    from tokenizers import Tokenizer

    torch.set_num_threads(args.threads)
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    texts = [json.loads(l)["text"] for l in open(args.corpus, encoding="utf-8") if l.strip()]
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    n_tokens = sum(min(len(e.ids), 256) for e in tok.encode_batch(texts))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        for task in args.tasks.split(","):
            if task == "embed":
                results.append(bench_embed(args, texts, n_tokens))
            else:
                results.append(bench_pipeline(args, texts, n_tokens, task))
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    print(f"\n{len(texts)} texts, {n_tokens} tokens (256-truncated), {args.threads} threads, {cpu}, device {args.device}")
    print("| task | ours (median, min) | theirs (median, min) | speed-up | our peak RSS | outputs |")
    print("|---|---|---|---|---|---|")
    for r in results:
        o, t = r["ours"], r["theirs"]
        if r["task"] == "embed":
            outputs = f"max abs diff {r['max_abs_diff']:.1e}, {r['rows_over_1e-5']} rows over 1e-5"
        else:
            outputs = f"{r['rows_agreeing']}/{r['texts']} rows agree, max score diff {r['max_abs_score_diff']:.1e}"
        print(f"| {r['task']} | {o['median_s']:.1f} s, {o['min_s']:.1f} s | {t['median_s']:.1f} s, {t['min_s']:.1f} s "
              f"| {t['median_s'] / o['median_s']:.2f}x | {o['peak_rss_mb']:.0f} MB | {outputs} |")
    if args.json:
        json.dump({"cpu": cpu, "threads": args.threads, "results": results}, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
