#!/usr/bin/env bash
# Runs tests/gpu_coop.rs (the cooperative-matrix GEMM) on an adapter that has
# cooperative matrices: Mesa 26's lavapipe (8 × 8 f16 fragments), from Debian
# trixie-backports, inside a trixie chroot. Debian 12's own lavapipe (Mesa
# 22.3, what the other GPU tests use) has no VK_KHR_cooperative_matrix, and a
# newer Mesa cannot be installed next to it, hence the chroot. The test
# binary is built here and runs inside; BERT_WGPU_REQUIRE_COOP=1 makes a
# missing feature a failure, not a skip.
#
#   scripts/coop_test.sh            # builds the chroot on first use (~2 min)
#   COOP_CHROOT=/path scripts/coop_test.sh
#
# Needs root (debootstrap, chroot, mounts) and the Debian mirror.
set -euo pipefail
cd "$(dirname "$0")/.."
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
  echo "coop_test: building a Debian trixie chroot with Mesa from trixie-backports at $ROOT"
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
echo "coop_test: $(chroot "$ROOT" dpkg-query -W -f='${Package} ${Version}' mesa-vulkan-drivers)"

# Test binaries built here (the chroot has no Rust), run inside.
test_bin() { # name
  local out bin
  out=$(cargo test --test "$1" --no-run 2>&1) || { echo "$out" >&2; return 1; }
  bin=$(echo "$out" | sed -n "s/.*Executable tests\/$1.rs (\(.*\))/\1/p" | tail -n 1)
  [ -x "$bin" ] || { echo "coop_test: no $1 test binary in: $out" >&2; return 1; }
  echo "$bin"
}
coop_bin=$(test_bin gpu_coop)
minilm_bin=$(test_bin minilm)
MINILM="$(scripts/fetch_minilm.sh | tail -n 1)"
REPO="$(pwd)"

trap cleanup EXIT
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
mountpoint -q "$ROOT/sys" || { mount --rbind /sys "$ROOT/sys"; mount --make-rslave "$ROOT/sys"; }
mountpoint -q "$ROOT/dev" || { mount --rbind /dev "$ROOT/dev"; mount --make-rslave "$ROOT/dev"; }
# The repository (fixtures) and the MiniLM folder, read-only at the same paths.
for d in "$REPO" "$MINILM"; do
  mkdir -p "$ROOT$d"
  mountpoint -q "$ROOT$d" || { mount --bind "$d" "$ROOT$d"; mount -o remount,bind,ro "$ROOT$d"; }
done
mkdir -p "$ROOT/opt" "$ROOT/tmp/xdg"
cp "$coop_bin" "$ROOT/opt/gpu_coop"
cp "$minilm_bin" "$ROOT/opt/minilm"
run() { chroot "$ROOT" env XDG_RUNTIME_DIR=/tmp/xdg BERT_WGPU_REQUIRE_GPU=1 \
  BERT_WGPU_REQUIRE_COOP=1 BERT_WGPU_MINILM="$MINILM" "$@"; }
run /opt/gpu_coop --test-threads=1 --nocapture
# all-MiniLM-L6-v2 in f16 with every linear on cooperative matrices, against
# HF's f32 (the f16 tolerance of tests/minilm.rs).
run env BERT_WGPU_GEMM=coop /opt/minilm minilm_gpu_f16 --nocapture
