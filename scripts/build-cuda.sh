#!/usr/bin/env bash
# Builds lrlab's CUDA binaries on a machine with no GPU and no CUDA toolkit, and packs them for a
# GPU machine that has the NVIDIA driver (CUDA 13.0, driver 580 or newer) but no Rust:
#
#   scripts/build-cuda.sh            # → gpu-pack/ (ignored), ready to carry
#   scripts/gpu-check.sh             # there, from the repository's root: tests, benchmark
#                                    # against PyTorch, a protocol run
#
# 1. Installs NVIDIA's CUDA 13.0 compiler and libraries from PyPI wheels (pinned: newer 13.x
#    wheels emit PTX too new for driver 580) into a cache outside the repo, once.
# 2. Gives the libraries the unversioned names the linker looks for, and builds a link-only
#    stub of the driver library `libcuda.so.1` (the driver provides the real one at run time;
#    the stub is never packed).
# 3. Builds `xtask` and the `cuda` test binaries with `--features cuda` for compute
#    capability ${CUDA_COMPUTE_CAP:-90} (H100/H200), strips them and packs them, with the
#    CIFAR-10 sample of the Hub cache, into gpu-pack/lrlab-cuda.tar.xz (the scripts and configs
#    travel with the working tree).
#
# Idempotent: a second run only rebuilds what changed. Settings (environment):
#   LRLAB_CUDA_CACHE   the toolchain's folder (default ~/.cache/lrlab/cuda-13.0)
#   HF_HOME            the Hub cache whose CIFAR-10 files are packed (default ../shared/hf-cache)
#   CUDA_COMPUTE_CAP   the GPU's compute capability without the dot (default 90)
set -euo pipefail

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cache=${LRLAB_CUDA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lrlab/cuda-13.0}
hf_home=${HF_HOME:-$repo/../shared/hf-cache}
pack=$repo/gpu-pack
wheels=(
    nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88
    nvidia-curand==10.4.0.35 nvidia-cublas==13.1.0.3
)

say() { printf '\n== %s\n' "$*" >&2; }

# --- 1. the toolchain -------------------------------------------------------------------------
toolkit=$cache/site/nvidia/cu13
stamp=$cache/installed-$(printf '%s\n' "${wheels[@]}" | sha256sum | cut -c1-16)
if [[ ! -e $stamp ]]; then
    say "installing the CUDA 13.0 toolchain into $cache (~1.2 GB, once)"
    rm -rf "$cache/site"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps \
        --target "$cache/site" "${wheels[@]}"
    touch "$stamp"
fi

# --- 2. link names and the driver stub ----------------------------------------------------------
for versioned in "$toolkit"/lib/lib{cublas,cublasLt,curand,cudart,nvrtc}.so.*; do
    base=$(basename "$versioned")
    ln -sfn "$base" "$toolkit/lib/${base%%.so.*}.so"
done
export CUDA_ROOT=$toolkit CUDA_HOME=$toolkit CUDA_PATH=$toolkit NVCC=$toolkit/bin/nvcc
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} CUDARC_CUDA_VERSION=13000
export PATH=$toolkit/bin:$PATH

cd "$repo"
# The driver functions cudarc declares; `cargo metadata` unpacks its source if it is not yet.
cudarc=$(cargo metadata --format-version 1 --features xtask/cuda |
    python3 -c 'import json, sys
print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "cudarc"))')
cudarc_driver=$(dirname "$cudarc")/src/driver/sys/mod.rs
stub=$toolkit/lib/stubs/libcuda.so
if [[ ! -e $stub || $cudarc_driver -nt $stub ]]; then
    say "building the link-only driver stub from $cudarc_driver"
    mkdir -p "$(dirname "$stub")"
    grep -oE '^\s*fn cu[A-Za-z0-9_]+\(' "$cudarc_driver" | grep -oE 'cu[A-Za-z0-9_]+' |
        sort -u | sed 's/.*/void &(void) {}/' >"$cache/libcuda-stub.c"
    cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub" "$cache/libcuda-stub.c"
fi

# --- 3. build, strip, pack ----------------------------------------------------------------------
say "building xtask and the cuda tests (cold: ~15 min on 2 cores; then seconds)"
# One invocation, so that the binary and the tests share one feature set (and one build of
# candle's CUDA kernels).
artifacts=$(cargo build --message-format=json \
    --features xtask/cuda,lrlab-models/cuda,lrlab-trainer/cuda \
    -p xtask -p lrlab-models -p lrlab-trainer --bin xtask --test cuda |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-message":
        print(m["message"]["rendered"], end="", file=sys.stderr)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        kind = "bin" if m["target"]["kind"] == ["bin"] else "tests"
        crate = m["package_id"].split("#")[0].rsplit("/", 1)[-1]
        name = m["target"]["name"] if kind == "bin" else crate.removeprefix("lrlab-")
        print(kind, name, m["executable"])')

say "packing into $pack"
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
while read -r kind name executable; do
    mkdir -p "$staging/$kind"
    strip -o "$staging/$kind/$name" "$executable"
done <<<"$artifacts"
# What the tests and the smoke protocol read: the CIFAR-10 sample of the Hub cache, links resolved.
cifar=hub/datasets--uoft-cs--cifar10
mkdir -p "$staging/hf-cache/hub"
cp -rL "$hf_home/$cifar" "$staging/hf-cache/$cifar"
rm -rf "$pack"
mkdir -p "$pack"
tar -C "$staging" -cJf "$pack/lrlab-cuda.tar.xz" .
du -h "$pack"/* >&2
say "done: carry gpu-pack, and run scripts/gpu-check.sh there"
