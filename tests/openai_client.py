#!/usr/bin/env python3
"""The official `openai` Python client against `bert-wgpu serve`.

Starts the server on a loopback port with an API key, embeds through
`client.embeddings.create` (the client's default base64 transfer, and
`encoding_format="float"`, a single string, `dimensions`), and checks every
vector against the offline `bert-wgpu embed --json` of the same model; then
the client's own errors for a wrong key and an empty input; then SIGTERM
and exit status 0. Exits non-zero on any mismatch.

    python3 -m venv /tmp/oai && /tmp/oai/bin/pip install openai==3.57.0
    /tmp/oai/bin/python tests/openai_client.py target/debug/bert-wgpu MODEL_DIR
(scripts/test_openai_client.sh does both.)
"""

import json
import math
import signal
import subprocess
import sys

import openai

TEXTS = [
    "The river runs quickly under the old stone bridge.",
    "Children watch the boats drift past green hills.",
    "A short one.",
    "Sentence embeddings map text to vectors; similar meanings land close together, "
    "which is what retrieval-augmented generation relies on.",
]
KEY = "test-key-123"


def offline(binary, model, texts, *extra):
    out = subprocess.run(
        [binary, "embed", "--model", model, "--device", "cpu", "--json", *extra, *texts],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [json.loads(line)["embedding"] for line in out.splitlines() if line.strip()]


def max_diff(got, want):
    assert len(got) == len(want), (len(got), len(want))
    worst = 0.0
    for g, w in zip(got, want):
        assert len(g) == len(w), (len(g), len(w))
        for a, b in zip(g, w):
            d = abs(a - b)
            assert d <= 1e-6 + 1e-5 * abs(b), f"got {a}, want {b}"
            worst = max(worst, d)
    return worst


def main():
    binary, model = sys.argv[1], sys.argv[2]
    server = subprocess.Popen(
        [binary, "serve", "--model", model, "--device", "cpu", "--port", "0",
         "--api-key", KEY, "--auto-truncate"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()
        assert line.startswith("listening on http://"), line
        base = line.strip().removeprefix("listening on ") + "/v1"
        client = openai.OpenAI(base_url=base, api_key=KEY, max_retries=0, timeout=120)

        want = offline(binary, model, TEXTS)
        r = client.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS)
        got = [d.embedding for d in sorted(r.data, key=lambda d: d.index)]
        d1 = max_diff(got, want)
        assert r.usage.prompt_tokens > len(TEXTS), r.usage
        assert r.model == "all-MiniLM-L6-v2", r.model

        r = client.embeddings.create(model="m", input=TEXTS, encoding_format="float")
        d2 = max_diff([d.embedding for d in r.data], want)

        r = client.embeddings.create(model="m", input=TEXTS[1])
        d3 = max_diff([r.data[0].embedding], want[1:2])

        want64 = offline(binary, model, TEXTS[:2], "--dimensions", "64")
        r = client.embeddings.create(model="m", input=TEXTS[:2], dimensions=64)
        d4 = max_diff([d.embedding for d in r.data], want64)
        norm = math.sqrt(sum(x * x for x in r.data[0].embedding))
        assert abs(norm - 1.0) < 1e-5, norm

        bad = openai.OpenAI(base_url=base, api_key="wrong", max_retries=0)
        try:
            bad.embeddings.create(model="m", input="x")
            raise AssertionError("a wrong API key was accepted")
        except openai.AuthenticationError as e:
            assert e.status_code == 401, e
        try:
            client.embeddings.create(model="m", input=[])
            raise AssertionError("an empty input was accepted")
        except openai.UnprocessableEntityError as e:
            assert "input" in str(e), e

        print(
            "openai client: base64 {:.1e}, float {:.1e}, single {:.1e}, dimensions=64 {:.1e} "
            "max |server - offline embed|; 401 and 422 raised as the client's own errors".format(
                d1, d2, d3, d4
            )
        )
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    assert code == 0, f"serve exited with {code} after SIGTERM"
    print("openai client: server exited 0 after SIGTERM")


if __name__ == "__main__":
    main()
