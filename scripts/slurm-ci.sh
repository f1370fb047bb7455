#!/usr/bin/env bash
# Slurm for real: installs Slurm and MUNGE from Debian's packages (if missing), starts a
# single-node cluster on localhost, submits scripts/rank-array.sbatch (the README's example) as
# an array of 3 tasks over 6 architectures on a tiny Synthetic CIFAR-10, waits, runs
# `fear merge`, and checks the merged file against an unsharded `fear rank` of the same
# architectures: the same lines, scores bit for bit (CPU runs are deterministic for a seed).
#
# Needs root and Debian (apt-get). Idempotent: its cluster (configuration, state, logs, pid files)
# lives in SLURM_CI_DIR (default /tmp/fear-slurm-ci), on its own ports, and is stopped at the end;
# /etc/slurm is not touched, and a MUNGE daemon already running is used as it is.
# Usage: scripts/slurm-ci.sh   (from anywhere; builds target/release/fear if needed)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${SLURM_CI_DIR:-/tmp/fear-slurm-ci}
say() { echo "slurm-ci: $*"; }
die() { echo "slurm-ci: FAILED: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (it installs packages and starts the Slurm and MUNGE daemons)"

# 1. Packages.
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || die "no apt-get: this script installs Slurm from Debian's packages"
    say "installing slurmctld, slurmd, slurm-client and munge"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null \
        || die "apt-get install of slurmctld slurmd slurm-client munge"
fi

# Whatever this script starts is stopped when it ends, failed or not.
started_munged=
stop_cluster() {
    for d in slurmd slurmctld; do
        local pid
        pid=$(cat "$work/$d.pid" 2>/dev/null || true)
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
    done
}
finish() {
    stop_cluster
    if [ -n "$started_munged" ]; then kill "$started_munged" 2>/dev/null || true; fi
}
trap finish EXIT

# 2. MUNGE (Slurm's authentication): one already running is used, else one is started here and
# stopped at the end.
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    if [ ! -s /etc/munge/munge.key ]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged || die "munged did not start (see /var/log/munge/munged.log)"
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge >/dev/null || die "munge does not work after starting munged"
    started_munged=$(cat /run/munge/munged.pid 2>/dev/null || true)
fi

# 3. A one-node cluster of our own, from a clean slate.
stop_cluster
rm -rf "$work"
mkdir -p "$work/state" "$work/spool" "$work/run"
node=fear-ci-node
export SLURM_CONF=$work/slurm.conf
cat >"$SLURM_CONF" <<EOF
ClusterName=fear-ci
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=6917
SlurmdPort=6918
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
NodeName=$node NodeAddr=127.0.0.1 NodeHostname=$node CPUs=$(nproc) State=UNKNOWN
PartitionName=ci Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -f "$SLURM_CONF" || die "slurmctld did not start: $(tail -5 "$work/slurmctld.log" 2>/dev/null)"
slurmd -f "$SLURM_CONF" -N "$node" || die "slurmd did not start: $(tail -5 "$work/slurmd.log" 2>/dev/null)"
for _ in $(seq 120); do
    state=$(sinfo -h -N -n "$node" -o %t 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.5
done
[ "$state" = idle ] || die "node $node is '${state:-unreachable}', not idle, after 60 s: $(tail -5 "$work/slurmd.log" "$work/slurmctld.log")"
say "cluster up ($(sinfo --version)): node $node, $(nproc) CPUs"

# 4. The README's array job, 3 tasks over 6 tiny architectures.
(cd "$repo" && cargo build --release --quiet) || die "cargo build --release"
fear=$repo/target/release/fear
tiny="--synthetic-size 4 --cache-dir $work/run/cache --channels 4 --cells-per-stage 1 --device cpu --threshold 0.001 --stage2-epochs 1"
export FEAR=$fear DATASET=synthetic-cifar10 ARCHS=1,6111,123,10,15624,2 SEED=0 RESULTS=results FEAR_ARGS=$tiny
# The cache is generated once up front rather than by three tasks at once.
"$fear" rank --dataset "$DATASET" --archs 1 --out "$work/run/warm-up.jsonl" $tiny >/dev/null 2>&1 || die "warm-up run of fear rank"
say "submitting scripts/rank-array.sbatch as an array of 3"
job=$(cd "$work/run" && timeout 600 sbatch --parsable --wait --array=0-2 --cpus-per-task=1 --export=ALL "$repo/scripts/rank-array.sbatch") \
    || die "the array job failed or timed out: $(tail -n 20 "$work"/run/slurm-*.out 2>/dev/null)"
say "array job $job done"
for k in 0 1 2; do
    [ -s "$work/run/results/shard-$k.jsonl" ] || die "task $k wrote no results: $(cat "$work/run/slurm-${job}_$k.out" 2>/dev/null)"
    [ "$(wc -l <"$work/run/results/shard-$k.jsonl")" = 2 ] || die "task $k has $(wc -l <"$work/run/results/shard-$k.jsonl") lines, expected 2 (every 3rd of 6)"
done

# 5. Merge, and compare with one unsharded run (on all the CPUs: the thread count changes no
# result, only the timings and the `device` field that reports it).
(cd "$work/run" && "$fear" merge all.jsonl results/shard-*.jsonl) || die "fear merge"
(cd "$work/run" && env -u SLURM_ARRAY_TASK_ID -u SLURM_ARRAY_TASK_COUNT \
    "$fear" rank --dataset "$DATASET" --archs "$ARCHS" --seed 0 --out whole.jsonl $tiny >/dev/null 2>&1) || die "the unsharded fear rank"
python3 - "$work/run/all.jsonl" "$work/run/whole.jsonl" <<'EOF' || die "merged shards differ from the unsharded run"
import json, sys
def lines(path):
    out = {}
    for text in open(path):
        v = json.loads(text)
        out[v["index"]] = {k: x for k, x in v.items() if not k.endswith("_s") and k != "device"}
    return out
merged, whole = lines(sys.argv[1]), lines(sys.argv[2])
assert sorted(merged) == sorted(whole) == [1, 2, 10, 123, 6111, 15624], (sorted(merged), sorted(whole))
for i in whole:
    # JSON floats round-trip exactly, so equal values are equal bits.
    assert merged[i] == whole[i], ("index", i, merged[i], whole[i])
print("slurm-ci: merged shards equal the unsharded run: %d architectures, scores %s"
      % (len(whole), [whole[i]["score"] for i in sorted(whole)]))
EOF
say "ok"
