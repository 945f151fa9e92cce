#!/usr/bin/env bash
# The whole test suite again on a second driver: Mesa 26's lavapipe, from
# Debian trixie-backports, inside a trixie chroot. It adds what Debian 12's
# lavapipe (Mesa 22.3, what scripts/test.sh uses) lacks: cooperative matrices
# (8 × 8 f16 fragments), so tests/gpu_coop.rs runs for real here, with
# BERT_WGPU_REQUIRE_COOP=1 making a missing feature a failure, not a skip;
# and all-MiniLM-L6-v2 in f16 runs with every linear on them. A newer Mesa
# cannot be installed next to Debian 12's, hence the chroot; the test
# binaries are built here and run inside.
#
#   scripts/test_mesa26.sh          # builds the chroot on first use (~1-2 min)
#   COOP_CHROOT=/path scripts/test_mesa26.sh
#   MESA26_DISCARD=1 scripts/test_mesa26.sh   # removes the chroot after (CI)
#
# Needs root (debootstrap, chroot, mounts) and the Debian mirror.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
ROOT="${COOP_CHROOT:-/var/tmp/bert-wgpu-trixie}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

cleanup() {
  for m in "${REPO:-/nonexistent}" "${MINILM:-/nonexistent}" dev sys proc; do
    m="${m#/}"
    if mountpoint -q "$ROOT/$m"; then umount -R "$ROOT/$m" 2>/dev/null || umount -lR "$ROOT/$m"; fi
  done
}
# Never delete or reuse a chroot with host mounts left inside it.
cleanup
if [ ! -x "$ROOT/usr/bin/apt-get" ] || [ ! -e "$ROOT/.bert-wgpu-ready" ]; then
  echo "test_mesa26: building a Debian trixie chroot with Mesa from trixie-backports at $ROOT"
  command -v debootstrap >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
  }
  rm -rf "$ROOT"
  debootstrap --variant=minbase trixie "$ROOT" "$MIRROR" >/dev/null
  echo "deb $MIRROR trixie-backports main" > "$ROOT/etc/apt/sources.list.d/backports.list"
  chroot "$ROOT" apt-get update -qq
  chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq -t trixie-backports mesa-vulkan-drivers libvulkan1 >/dev/null
  touch "$ROOT/.bert-wgpu-ready"
fi
echo "test_mesa26: $(chroot "$ROOT" dpkg-query -W -f='${Package} ${Version}' mesa-vulkan-drivers)"

# Test binaries built here (the chroot has no Rust), run inside.
test_bin() { # name
  local out bin
  out=$(cargo test --test "$1" --no-run 2>&1) || { echo "$out" >&2; return 1; }
  bin=$(echo "$out" | sed -n "s/.*Executable tests\/$1.rs (\(.*\))/\1/p" | tail -n 1)
  [ -x "$bin" ] || { echo "test_mesa26: no $1 test binary in: $out" >&2; return 1; }
  echo "$bin"
}
minilm_bin="$REPO/$(test_bin minilm)"
# Every test binary of the suite: "<name> <path>" lines.
all_bins=$(cargo test --all-targets --no-run 2>&1 |
  sed -n 's/.*Executable \(.*\) (\(target\/[^)]*\))/\1 \2/p' | sed 's/^unittests //')
[ -n "$all_bins" ] || { echo "test_mesa26: no test binaries" >&2; exit 1; }
MINILM="$(scripts/fetch_minilm.sh | tail -n 1)"

trap cleanup EXIT
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
mountpoint -q "$ROOT/sys" || { mount --rbind /sys "$ROOT/sys"; mount --make-rslave "$ROOT/sys"; }
mountpoint -q "$ROOT/dev" || { mount --rbind /dev "$ROOT/dev"; mount --make-rslave "$ROOT/dev"; }
# The repository (fixtures) and the MiniLM folder, read-only at the same paths.
for d in "$REPO" "$MINILM"; do
  mkdir -p "$ROOT$d"
  mountpoint -q "$ROOT$d" || { mount --bind "$d" "$ROOT$d"; mount -o remount,bind,ro "$ROOT$d"; }
done
mkdir -p "$ROOT/tmp/xdg"
run() { chroot "$ROOT" env XDG_RUNTIME_DIR=/tmp/xdg BERT_WGPU_REQUIRE_GPU=1 \
  BERT_WGPU_REQUIRE_COOP=1 BERT_WGPU_TUNE=off BERT_WGPU_MINILM="$MINILM" "$@"; }
# Binaries run from the repository's target folder (mounted at the same
# path), so tests that start the CLI find it.
failed=0
while read -r name bin; do
  echo "test_mesa26: $name"
  if ! run "$REPO/$bin" -q; then
    echo "test_mesa26: FAILED: $name"
    failed=1
  fi
done <<< "$all_bins"
[ "$failed" = 0 ] || exit 1
# all-MiniLM-L6-v2 in f16 with every linear on cooperative matrices, against
# HF's f32 (the f16 tolerance of tests/minilm.rs).
run env BERT_WGPU_GEMM=coop "$minilm_bin" minilm_gpu_f16 --nocapture
if [ "${MESA26_DISCARD:-0}" = 1 ]; then
  cleanup
  # Its bind mounts include the repository: remove nothing while any is left.
  if grep -q " $ROOT[/ ]" /proc/mounts; then
    echo "test_mesa26: mounts left under $ROOT; not removing it" >&2
  else
    rm -rf "$ROOT"
  fi
fi
