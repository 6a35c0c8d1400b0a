#!/usr/bin/env bash
# Submits lrlab's protocol to SLURM: a job array whose tasks split every experiment's runs
# between them (`--shard I/N`), writing one shared output folder, and an analysis job that runs
# once every task has ended well. Run it from the login node, in an lrlab checkout on a file
# system the compute nodes share.
#
#   scripts/slurm/submit.sh [--experiments "cifar10 imdb"] [--preset full] [--tasks 7] [--gpu]
#                           [--out DIR] [--reports DIR] [-- SBATCH-OPTION...]
#
#   --experiments  the experiments to run, in order (default: cifar10 imdb)
#   --preset       the experiment files' preset (default: full)
#   --tasks        the array's size: how many tasks share the runs (default: 7)
#   --gpu          one GPU per task (--gres=gpu:1, --device cuda; builds with --features cuda)
#   --out          the runs' folder (default: runs, or runs-<preset>, as `xtask experiment`)
#   --reports      the reports' folder (default: reports, or reports-<preset>)
#   -- ...         passed to both sbatch calls, e.g. --partition=gpu --account=lab --time=12:00:00
#
# sbatch's own variables work too (SBATCH_PARTITION, SBATCH_ACCOUNT, SBATCH_TIMELIMIT,
# SBATCH_QOS, SBATCH_CPUS_PER_TASK …). The program is built once here — `cargo build -p xtask`,
# the profile of `cargo xtask` — or taken from $LRLAB_XTASK, and copied into <out>/.slurm/bin/,
# so that the nodes run one binary, never cargo. Task logs go to <out>/.slurm/logs/. Submitting
# again (after a cancel, a failure, a change of --tasks) resumes: complete runs are skipped,
# partial ones resume from their last epoch.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
experiments="cifar10 imdb"
preset=full
tasks=7
gpu=false
out=
reports=
while (($#)); do
    case $1 in
    --experiments) experiments=$2; shift 2 ;;
    --preset) preset=$2; shift 2 ;;
    --tasks) tasks=$2; shift 2 ;;
    --gpu) gpu=true; shift ;;
    --out) out=$2; shift 2 ;;
    --reports) reports=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "submit.sh: unknown option $1 (see the head of $0)" >&2; exit 2 ;;
    esac
done
if ! [[ $tasks =~ ^[1-9][0-9]*$ ]]; then
    echo "submit.sh: --tasks $tasks: a number ≥ 1" >&2
    exit 2
fi
suffix=$([[ $preset == full ]] && echo "" || echo "-$preset")
out=$(realpath -m "${out:-$repo/runs$suffix}")
reports=$(realpath -m "${reports:-$repo/reports$suffix}")

device=cpu
resources=()
features=()
if $gpu; then
    device=cuda
    resources=(--gres=gpu:1)
    features=(--features cuda)
fi

# --- the binary, built once ---------------------------------------------------------------------
if [[ -n ${LRLAB_XTASK:-} ]]; then
    built=$LRLAB_XTASK
else
    (cd "$repo" && cargo build --quiet -p xtask "${features[@]}")
    built=$repo/target/debug/xtask
fi
mkdir -p "$out/.slurm/bin" "$out/.slurm/logs" "$reports"
# A new name, then a rename: tasks still running keep the binary they started with.
xtask=$out/.slurm/bin/xtask
cp "$built" "$xtask.new"
mv -f "$xtask.new" "$xtask"

# --- the array and the analysis -----------------------------------------------------------------
read -ra experiment_list <<<"$experiments"
array=$(sbatch --parsable --array="0-$((tasks - 1))" --chdir="$repo" "${resources[@]}" \
    --output="$out/.slurm/logs/protocol-%A_%a.out" "$@" \
    "$here/protocol.sbatch" "$xtask" "$out" "$preset" "$device" "${experiment_list[@]}")
array=${array%%;*}
analysis=$(sbatch --parsable --dependency="afterok:$array" --chdir="$repo" \
    --output="$out/.slurm/logs/analyze-%j.out" "$@" \
    "$here/analyze.sbatch" "$xtask" "$out" "$reports")
analysis=${analysis%%;*}
echo "array $array: $tasks task(s) of $experiments, preset $preset, on $device, into $out"
echo "analysis $analysis: after every task ends well, reports into $reports"
echo "watch: squeue -j $array,$analysis    logs: $out/.slurm/logs/"
