#!/usr/bin/env bash
# The GPU check, in one call on a machine with an NVIDIA GPU, its driver and PyTorch (no Rust):
#
#   scripts/build-cuda.sh                  # on the build machine: → gpu-pack/ (carry it)
#   scripts/gpu-check.sh [--quick]         # on the GPU machine, from the repository's root
#
# 1. the CUDA test binaries: models and trainer on the GPU against the CPU's results;
# 2. the training step on the GPU, lrlab and PyTorch side by side, rounds alternating
#    (`xtask speed --pytorch`): ResNet-18 at batch 32 and 512, BERT-base and MiniLM at batch 32
#    (max_len 128; BERT-base's is the dropout-heavy step, 38 dropout sites with masks drawn on
#    the GPU by cuRAND), and one 3×3 stride-2 convolution's forward and backward pass (its gradients as
#    convolutions on the GPU), in f32, f32 with TF32 and bf16;
# 3. one protocol on the GPU: CIFAR-10's cached sample, 2 arms × 1 seed, 1 epoch, full width;
# and prints a short table last. Full logs go to $OUT (or ./gpu-check-out).
# --quick: one round of one step per workload, and no smoke protocol.
set -uo pipefail

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
out=${OUT:-$repo/gpu-check-out}
mkdir -p "$out"
rounds=3 steps=5 smoke=1
[[ ${1:-} == --quick ]] && rounds=1 steps=1 smoke=0
cd "$repo"

# The binaries and the CIFAR-10 sample, unpacked outside the repository.
work=$(mktemp -d)
tar -xJf gpu-pack/lrlab-cuda.tar.xz -C "$work" || { echo "no gpu-pack: run scripts/build-cuda.sh first"; exit 1; }
export HF_HOME=$work/hf-cache HF_HUB_OFFLINE=1
# The CUDA libraries lrlab was linked against (cuBLAS 13, cuRAND 10, the runtime 13, NVRTC 13)
# come with PyTorch's CUDA 13 wheels; the driver's libcuda.so.1 is on the system path.
cuda_libs=$(python3 -c 'import pathlib, nvidia
for root in nvidia.__path__:
    lib = pathlib.Path(root, "cu13", "lib")
    if lib.is_dir():
        print(lib); break')
export LD_LIBRARY_PATH=${cuda_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
xtask=$work/bin/xtask

summary=$out/summary.md
: >"$summary"
note() { printf '%s\n' "$*" | tee -a "$summary"; }

note "# lrlab GPU check, $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$summary"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$summary"

status=0
for test in "$work"/tests/*; do
    name=$(basename "$test")
    if "$test" --test-threads 1 >"$out/test-$name.log" 2>&1; then
        note "tests $name: passed ($(grep -c '^test .* ok$' "$out/test-$name.log") tests)"
    else
        status=1
        note "tests $name: FAILED (test-$name.log):"
        grep -E 'panicked|error' "$out/test-$name.log" | head -5 | tee -a "$summary"
    fi
done

speed() {
    local label=$1
    shift
    "$xtask" speed --device cuda --pytorch --allow-busy --rounds "$rounds" --steps "$steps" \
        --warmup 3 --workloads resnet18-b32,resnet18-b512,bert-base-b32,minilm-b32,conv3x3-s2-b32 \
        --json "$out/speed-$label.json" "$@" >"$out/speed-$label.md" 2>"$out/speed-$label.log" ||
        { status=1; tail -5 "$out/speed-$label.log"; }
    { echo; cat "$out/speed-$label.md"; } >>"$summary"
}
speed f32 --dtype f32
speed tf32 --dtype f32 --tf32
speed bf16 --dtype bf16

if ((smoke)); then
    started=$(date +%s)
    if "$xtask" experiment cifar10 --config configs/cifar10.toml --device cuda \
        --arms constant,cosine --seeds 0 --epochs 1 --out "$work/runs" >"$out/smoke.log" 2>&1; then
        note "smoke protocol (cifar10 sample: 1,800 training images, width 64, 2 arms × 1 seed × 1 epoch, f32): $(( $(date +%s) - started )) s in all"
        tail -4 "$out/smoke.log" >>"$summary"
    else
        status=1
        note "smoke protocol FAILED (smoke.log):"
        tail -5 "$out/smoke.log" | tee -a "$summary"
    fi
fi
rm -rf "$work"
echo
cat "$summary"
exit $status
