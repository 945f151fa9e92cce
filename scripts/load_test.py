#!/usr/bin/env python3
"""Load test of `bert-wgpu serve` on loopback, against the offline
`embed --data` throughput of the same model on the same machine.

    python3 scripts/make_corpus.py --n 2000 > /tmp/corpus.jsonl
    cargo build --release
    python3 scripts/load_test.py --corpus /tmp/corpus.jsonl --model DIR \
        [--bin target/release/bert-wgpu] [--device cpu] [--clients 1,8,32,128] \
        [--texts-per-request 1] [--requests 400] [--seconds 60]

For each concurrency level, that many client threads (each with its own
keep-alive connection) send POST /embed requests of `--texts-per-request`
texts drawn in order from the corpus, until `--requests` requests are done
or `--seconds` have passed (both bounds; nothing else is sent). It prints
throughput (texts/s, tokens/s from the server's metrics) and latency
percentiles (p50, p90, p99), then the offline figure for the same texts,
and the ratios the serve issue asks for: throughput at 32 clients over
offline (target >= 0.8) and p99 / p50 at 8 clients (target < 4).

Only the standard library is used (http.client, threads). The client runs
on the same machine and cores as the server, so its own CPU time is part of
what is measured.
"""

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def start_server(args):
    cmd = [args.bin, "serve", "--model", args.model, "--device", args.device,
           "--port", "0", "--auto-truncate", "--max-concurrent-requests", "1024",
           "--quiet"] + args.extra.split()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("listening on http://"):
        p.kill()
        sys.exit(f"serve did not start: {line!r}")
    host, port = line.strip().removeprefix("listening on http://").rsplit(":", 1)
    return p, host, int(port)


def metric(host, port, name):
    c = http.client.HTTPConnection(host, port, timeout=30)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def level(host, port, texts, clients, per_request, max_requests, max_seconds):
    lock = threading.Lock()
    state = {"next": 0, "done": 0, "errors": 0}
    latencies = []
    deadline = time.perf_counter() + max_seconds

    def client():
        conn = http.client.HTTPConnection(host, port, timeout=300)
        while True:
            with lock:
                if state["next"] >= max_requests or time.perf_counter() > deadline:
                    return
                i = state["next"]
                state["next"] += 1
            start = (i * per_request) % len(texts)
            batch = [texts[(start + k) % len(texts)] for k in range(per_request)]
            body = json.dumps({"inputs": batch})
            t0 = time.perf_counter()
            conn.request("POST", "/embed", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            dt = time.perf_counter() - t0
            ok = resp.status == 200 and len(json.loads(data)) == per_request
            with lock:
                if ok:
                    state["done"] += 1
                    latencies.append(dt)
                else:
                    state["errors"] += 1

    tokens0 = metric(host, port, "bert_wgpu_tokens_total")
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    tokens = metric(host, port, "bert_wgpu_tokens_total") - tokens0
    lat = sorted(latencies)
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
    return {
        "clients": clients,
        "requests": state["done"],
        "errors": state["errors"],
        "seconds": wall,
        "texts_per_s": state["done"] * per_request / wall,
        "tokens_per_s": tokens / wall,
        "p50_ms": 1000 * pct(0.50),
        "p90_ms": 1000 * pct(0.90),
        "p99_ms": 1000 * pct(0.99),
        "mean_ms": 1000 * statistics.fmean(lat) if lat else float("nan"),
    }


def offline(args, texts):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
        path = f.name
    t0 = time.perf_counter()
    subprocess.run([args.bin, "embed", "--model", args.model, "--device", args.device,
                    "--data", path, "--output", "/dev/null", "--quiet"] + args.extra.split(),
                   check=True)
    return len(texts) / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--bin", default="target/release/bert-wgpu")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--clients", default="1,8,32,128")
    ap.add_argument("--texts-per-request", type=int, default=1)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--extra", default="", help="extra bert-wgpu arguments, space-separated")
    args = ap.parse_args()
    with open(args.corpus) as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    server, host, port = start_server(args)
    rows = []
    try:
        # Warm-up: pages in the weights, fills the allocator.
        level(host, port, texts, 4, args.texts_per_request, 20, 30)
        for c in [int(x) for x in args.clients.split(",")]:
            r = level(host, port, texts, c, args.texts_per_request, args.requests, args.seconds)
            rows.append(r)
            print(
                f"clients {c:4d}: {r['requests']:5d} requests ({r['errors']} errors) in "
                f"{r['seconds']:6.1f} s: {r['texts_per_s']:7.1f} texts/s, "
                f"{r['tokens_per_s']:8.0f} tokens/s; latency p50 {r['p50_ms']:7.1f} ms, "
                f"p90 {r['p90_ms']:7.1f} ms, p99 {r['p99_ms']:7.1f} ms",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait(timeout=60)
    # The offline job on the texts the levels sent (at most --requests each).
    n = min(len(texts), max(r["requests"] for r in rows) * args.texts_per_request)
    off = offline(args, texts[:n])
    print(f"offline embed --data on the first {n} texts: {off:.1f} texts/s")
    by = {r["clients"]: r for r in rows}
    if 32 in by:
        print(f"throughput at 32 clients / offline: {by[32]['texts_per_s'] / off:.2f} (target >= 0.8)")
    if 8 in by:
        print(f"p99 / p50 at 8 clients: {by[8]['p99_ms'] / by[8]['p50_ms']:.2f} (target < 4)")
    print(json.dumps({"levels": rows, "offline_texts_per_s": off}))


if __name__ == "__main__":
    main()
