#!/usr/bin/env bash
# lrlab's SLURM job array against a real SLURM on this one machine (CI runs this).
#
#   scripts/slurm/test.sh
#
# Installs SLURM and MUNGE from Debian's packages if they are missing, starts munged, slurmctld
# and slurmd under a one-node configuration in a scratch folder (localhost, 2 CPUs, process
# tracking without cgroups), and submits the smoke protocol of both experiments as an array of
# 3 tasks plus the analysis job, twice:
#   1. uninterrupted: every run complete, each trained once, both reports written;
#   2. one task cancelled (`scancel`) while it trains a run, then the array submitted again:
#      the cancelled run resumes from its last epoch, no other run is touched, and the reports'
#      per-run tables equal the uninterrupted ones byte for byte.
# It stops the daemons it started (by their pid files) however it ends. Reads the sample Hub
# cache in place (../shared/hf-cache, offline); writes only in its scratch folder.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
say() { printf '\n== %s (%s)\n' "$*" "$(date +%T)"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

# --- SLURM and MUNGE from Debian's packages -----------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null ||
    ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    say "installing slurmctld, slurmd, slurm-client and munge"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge
fi

# --- a one-node cluster in a scratch folder -----------------------------------------------------
work=$(mktemp -d /tmp/lrlab-slurm-test.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/key" "$work/run" "$work/state" "$work/spool"
chmod 700 "$work/key"
chmod 755 "$work/run"
stop_daemons() {
    local pidfile
    # Jobs first: their processes would outlive the daemons.
    if [[ -s $work/run/slurmctld.pid ]] && scancel --partition=test 2>/dev/null; then
        for _ in $(seq 60); do
            [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break
            sleep 1
        done
    fi
    # Each daemon is waited for: munged writes its seed file into key/ as it exits,
    # and a removal racing that write fails with "Directory not empty".
    local pid
    for pidfile in "$work/run/slurmd.pid" "$work/run/slurmctld.pid" "$work/run/munged.pid"; do
        [[ -s $pidfile ]] || continue
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || continue
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    done
}
passed=false
# On success the scratch folder goes too; on failure it stays, for its logs.
trap 'stop_daemons; if $passed; then rm -rf "$work"; else echo "logs: $work" >&2; fi' EXIT

say "starting munged, slurmctld and slurmd in $work"
mungekey --create --keyfile="$work/key/munge.key"
chmod 400 "$work/key/munge.key"
munged --key-file="$work/key/munge.key" --socket="$work/run/munge.socket" \
    --pid-file="$work/run/munged.pid" --log-file="$work/munged.log" --seed-file="$work/key/seed"
node=$(hostname -s)
cat >"$work/slurm.conf" <<CONF
ClusterName=lrlab-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$work/run/munge.socket
CredType=cred/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/run/slurmctld.pid
SlurmdPidFile=$work/run/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
KillWait=30
NodeName=$node NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$work/slurm.conf
slurmctld -c
slurmd
for _ in $(seq 100); do
    [[ $(sinfo -h -o %t 2>/dev/null) == idle ]] && break
    sleep 0.2
done
[[ $(sinfo -h -o %t) == idle ]] || fail "the node did not come up: $(tail -5 "$work/slurmd.log")"

# --- the protocol -------------------------------------------------------------------------------
export HF_HOME=$repo/../shared/hf-cache HF_HUB_OFFLINE=1
unset HF_HUB_CACHE
say "building xtask once"
(cd "$repo" && cargo build --quiet -p xtask)
submit() { # OUT REPORTS: prints the array's id
    "$repo/scripts/slurm/submit.sh" --preset smoke --tasks 3 --out "$1" --reports "$2" \
        -- --cpus-per-task=1 | tee -a "$work/submissions.log" | sed -n 's/^array \([0-9]*\):.*/\1/p'
}
wait_jobs() { # waits until the queue is empty (20 minutes at most)
    local deadline=$((SECONDS + 1200))
    while [[ -n $(squeue -h -o %i) ]]; do
        ((SECONDS < deadline)) || fail "jobs still queued after 20 minutes: $(squeue)"
        sleep 1
    done
}
json_field() { # FILE KEY: a top-level field of a JSON file ("" when the file is not there)
    python3 -c 'import json, sys
try:
    print(json.load(open(sys.argv[1]))[sys.argv[2]])
except FileNotFoundError:
    print("")' "$1" "$2"
}
field() { json_field "$1/run.json" "$2"; } # RUN_DIR KEY: a field of the run's record
runs_of() { find "$1" -name run.json -not -path '*/.slurm/*' -printf '%h\n' | sort; }
check_complete() { # OUT REPORTS
    local out=$1 reports=$2 runs
    runs=$(runs_of "$out")
    [[ $(wc -l <<<"$runs") == 45 ]] || fail "$out: $(wc -l <<<"$runs") runs, not 21 + 24"
    for run in $runs; do
        [[ $(field "$run" status) == complete ]] || fail "$run: $(field "$run" status)"
        [[ ! -e $run/.lock ]] || fail "$run: lock left behind"
    done
    for experiment in cifar10 imdb; do
        [[ -s $reports/$experiment/report.md ]] || fail "no report for $experiment"
    done
}

say "1. the array uninterrupted"
started=$SECONDS
submit "$work/whole" "$work/whole-reports" >/dev/null
wait_jobs
check_complete "$work/whole" "$work/whole-reports"
# Each run was taken up by exactly one task.
taken=$(cat "$work"/whole/.slurm/logs/protocol-*.out | sed -n 's/^\[run .*\] .* in \(.*\)$/\1/p' |
    sort | uniq -c | awk '$1 != 1')
[[ -z $taken ]] || fail "runs taken up by more than one task: $taken"
for run in $(runs_of "$work/whole"); do
    [[ $(field "$run" resumed) == 0 ]] || fail "$run resumed in an uninterrupted array"
done
echo "all 45 runs complete, each taken up by one task, both reports written ($((SECONDS - started)) s)"

say "2. one task cancelled while it trains, the array submitted again"
out=$work/cut
array=$(submit "$out" "$work/cut-reports")
# The task to cancel: the first one part-way through an IMDB run (its epochs take seconds, so
# the run is still mid-way when the signal comes): locked, its first epoch of two checkpointed.
deadline=$((SECONDS + 600))
victim=
while [[ -z $victim ]]; do
    if ((SECONDS > deadline)) || ! squeue -h -o %i | grep -q "^${array}_"; then
        fail "no task was seen part-way through a run"
    fi
    for log in "$out"/.slurm/logs/protocol-"${array}"_*.out; do
        [[ -e $log ]] || continue
        run=$(sed -n 's/^\[run .*\] .* in \(.*\)$/\1/p' "$log" | tail -1)
        if [[ $run == */imdb/* && -e $run/.lock ]] &&
            [[ $(json_field "$run/checkpoint/latest.json" epoch) == 1 ]]; then
            victim=${log##*protocol-}
            victim=${victim%.out}
            break
        fi
    done
    sleep 0.1
done
signalled=$(date +%s.%N)
scancel "$victim"
while squeue -h -o %i | grep -qx "$victim"; do sleep 0.05; done
ended=$(date +%s.%N)
stopped=$(awk -v a="$signalled" -v b="$ended" 'BEGIN { printf "%.2f", b - a }')
cancelled=$run
epochs_kept=$(field "$cancelled" epochs_done)
echo "cancelled task $victim while it trained $cancelled: out of the queue $stopped s after" \
    "scancel, status $(field "$cancelled" status), epochs kept $epochs_kept"
grep -q "stopped by SIGTERM" "$out/.slurm/logs/protocol-$victim.out" ||
    fail "the trainer did not stop on SIGTERM: $(tail -3 "$out/.slurm/logs/protocol-$victim.out")"
[[ $(field "$cancelled" status) == running ]] || fail "the cancelled run is not resumable"
wait_jobs
[[ ! -e $work/cut-reports/imdb/report.md ]] || fail "the analysis ran although a task was cancelled"
# What was finished before the resubmission must not change.
finished_before=$(runs_of "$out" | grep -vx "$cancelled")
fingerprint() { for run in $finished_before; do
    sha256sum "$run/run.json" "$run/epochs.parquet"
done; }
before=$(fingerprint)
submit "$out" "$work/cut-reports" >/dev/null
wait_jobs
check_complete "$out" "$work/cut-reports"
[[ $(fingerprint) == "$before" ]] || fail "a run finished before the resubmission was changed"
[[ $(field "$cancelled" resumed) == 1 ]] || fail "$cancelled: resumed $(field "$cancelled" resumed) times"
for run in $(runs_of "$out"); do
    [[ $run == "$cancelled" || $(field "$run" resumed) == 0 ]] || fail "$run was resumed"
done
for experiment in cifar10 imdb; do
    cmp "$work/whole-reports/$experiment/runs.csv" "$work/cut-reports/$experiment/runs.csv" ||
        fail "$experiment: the per-run table differs from the uninterrupted array's"
done
echo "the cancelled run resumed from epoch $epochs_kept, nothing else retrained, both" \
    "per-run tables equal the uninterrupted array's"
say "SLURM test passed in $SECONDS s"
passed=true
