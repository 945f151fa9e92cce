#!/usr/bin/env python3
"""Make a real, mixed-length text corpus from text that ships with Python
(the standard library's docstrings) and Debian (/usr/share/common-licenses),
for the corpus benchmarks (scripts/bench_corpus.sh, BENCHMARKS.md).

    python3 scripts/make_corpus.py [--n 5000] [--seed 17] > corpus.jsonl

Each line is {"text": ...}. Lengths are drawn log-uniformly from 4 to 280
words (6 to 657 WordPiece tokens of all-MiniLM-L6-v2, median 52), so short
texts dominate and 577 of 5,000 are longer than 256 tokens.
Texts are consecutive words of the source paragraphs (cycled when a text
needs more), so every text is real prose or documentation.

Only the standard library is used. The output is deterministic for one
Python version and Debian release (docstrings change between versions).
"""

import argparse
import importlib
import inspect
import json
import math
import os
import random
import sys
import warnings

# Modules whose import has side effects (opens windows, prints, starts
# things) or is slow: their docstrings are not needed.
SKIP = {
    "antigravity", "this", "idlelib", "turtle", "turtledemo", "tkinter",
    "__main__", "pydoc_data", "lib2to3", "ensurepip", "venv", "test",
}


def docstrings():
    """Docstrings of stdlib modules, their classes and functions, in a fixed order."""
    out = []
    for name in sorted(sys.stdlib_module_names):
        if name in SKIP or name.startswith("_"):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mod = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module that fails to import has no text for us
            continue
        docs = [inspect.getdoc(mod)]
        for attr in sorted(vars(mod)):
            if attr.startswith("_"):
                continue
            obj = getattr(mod, attr, None)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                if getattr(obj, "__module__", None) == name:
                    docs.append(inspect.getdoc(obj))
        out.extend(d for d in docs if d)
    return out


def licenses():
    root = "/usr/share/common-licenses"
    out = []
    if os.path.isdir(root):
        for f in sorted(os.listdir(root)):
            p = os.path.join(root, f)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, encoding="utf-8", errors="replace") as fh:
                    out.append(fh.read())
    return out


def paragraphs(texts):
    for t in texts:
        for p in t.split("\n\n"):
            words = p.split()
            if len(words) >= 3:
                yield words


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--min-words", type=int, default=4)
    ap.add_argument("--max-words", type=int, default=280)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    paras = list(paragraphs(docstrings() + licenses()))
    rng.shuffle(paras)
    stream = [w for p in paras for w in p]
    if not stream:
        sys.exit("make_corpus: found no text")
    lo, hi = math.log(args.min_words), math.log(args.max_words)
    pos = 0
    out = sys.stdout
    for _ in range(args.n):
        n = int(round(math.exp(rng.uniform(lo, hi))))
        words = [stream[(pos + i) % len(stream)] for i in range(n)]
        pos = (pos + n) % len(stream)
        out.write(json.dumps({"text": " ".join(words)}, ensure_ascii=False) + "\n")
    print(
        f"make_corpus: {args.n} texts from {len(paras)} paragraphs ({len(stream)} words), "
        f"python {sys.version.split()[0]}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
