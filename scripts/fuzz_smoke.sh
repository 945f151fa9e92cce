#!/usr/bin/env bash
# A short run of every cargo-fuzz target (fuzz/README.md), for CI: builds the
# targets once, then fuzzes each for FUZZ_SECONDS (default 30) starting from
# its committed seeds in fuzz/corpus/<target>. New inputs go to a scratch
# corpus, so the committed seeds stay as they are. A crash, panic, leak of
# more than 4 GiB RSS or timeout fails the script (libFuzzer exits non-zero)
# and leaves the reproducer in fuzz/artifacts/<target>/.
#
# FUZZ_SANITIZER: none (default; the code under test is safe Rust, so
# panics, overflows and OOMs are what a short run finds) or address (ASan,
# as in the 10-minute runs of fuzz/README.md; ~2x slower).
# FUZZ_DEV=1 builds the targets unoptimised (`cargo fuzz build --dev`):
# half the build time (2.5 vs 4.7 min on 2 cores), 5-17x fewer executions
# per second; CI uses it, as its smoke run is mostly the seeds.
# Needs a nightly toolchain and cargo-fuzz; installs them when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${FUZZ_SECONDS:-30}"
sanitizer="${FUZZ_SANITIZER:-none}"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

flags=(-s "$sanitizer" --debug-assertions)
if [ "${FUZZ_DEV:-0}" = 1 ]; then
  flags+=(--dev)
fi
cargo +nightly fuzz build "${flags[@]}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo +nightly fuzz list); do
  mkdir -p "$scratch/$target"
  echo "fuzz smoke: $target for ${secs}s"
  # RUST_BACKTRACE for a readable panic; -print_final_stats for the count.
  set +e
  RUST_BACKTRACE=1 cargo +nightly fuzz run "${flags[@]}" "$target" \
    "$scratch/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$secs" -rss_limit_mb="${FUZZ_RSS_MB:-4096}" -max_len=4096 -timeout=20 \
    -print_final_stats=1 >"$scratch/$target.log" 2>&1
  status=$?
  set -e
  grep -E "^stat::number_of_executed_units" "$scratch/$target.log" || true
  if [ "$status" -ne 0 ]; then
    log="$scratch/$target.log"
    # The panic message comes well before libFuzzer's report and the
    # reproducer's path at the end: print from the first sign of the crash,
    # then the end.
    first=$(grep -n -m1 -E "panicked at|ERROR: libFuzzer|==[0-9]+==ERROR|deadly signal" "$log" | cut -d: -f1 || true)
    if [ -n "$first" ]; then
      sed -n "${first},$((first + 60))p" "$log" >&2
      echo "[...]" >&2
    fi
    tail -n 20 "$log" >&2
    echo "fuzz smoke: $target FAILED (exit $status); reproducer under fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "fuzz smoke: every target ran ${secs}s without a failure"
