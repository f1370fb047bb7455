#!/usr/bin/env bash
# One command for a GPU machine: every test (the real-GPU kernel and CUDA graph tests included),
# `fear doctor`, `fear bench --cuda-graph` on the GPU for archs 1 and 9930 (each step launched
# kernel by kernel and replayed as a CUDA graph) beside PyTorch on the same GPU, and a short
# `fear rank` on the GPU (training data resident on the device), compute-sanitizer (memcheck,
# racecheck, synccheck, initcheck) over `fear doctor` and a few training steps where the machine
# allows it, and `fear rank` throughput with 1, 2 and 4 workers per GPU (--jobs); writes a short
# table (summary.md) and JSON files into the folder given as its argument.
#
#   scripts/gpu-check.sh OUT_DIR
#
# Uses gpu-bundle/bundle.tar.xz from scripts/gpu-bundle.sh when there (a machine with no Rust
# toolchain), else builds with cargo. Everything after the build runs within 8 minutes on one
# GPU: each part has its own time budget (`timeout`), and none starts past the overall deadline.
set -uo pipefail
out=${1:?usage: scripts/gpu-check.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
repo=$(pwd)
device=${FEAR_CHECK_DEVICE:-cuda}
batch=${FEAR_CHECK_BATCH:-256}
failures=()
log() { echo "[gpu-check $(date +%H:%M:%S)] $*" | tee -a "$out/log.txt"; }
# within SECONDS CMD...: runs CMD for at most SECONDS, and never past the overall deadline
# (set after the build: 8 minutes less a margin for the summary).
within() {
    local want=$1; shift
    local left=$(( deadline - $(date +%s) ))
    if [ "$left" -le 5 ]; then
        log "skipped (out of time): $*"
        return 124
    fi
    timeout $(( want < left ? want : left )) "$@"
}

if [ -f gpu-bundle/bundle.tar.xz ]; then
    log "unpacking gpu-bundle/bundle.tar.xz"
    # Python's tarfile reads xz without an xz binary, which a device machine may lack.
    python3 -c 'import tarfile; tarfile.open("gpu-bundle/bundle.tar.xz").extractall(".")' || exit 1
    built_at=$(cat BUILT_AT)
    # The tests hold absolute paths of the machine they were built on (fixtures, the binary).
    if [ "$built_at" != "$repo" ] && [ ! -e "$built_at" ]; then
        mkdir -p "$(dirname "$built_at")" && ln -s "$repo" "$built_at" \
            || log "warning: cannot link $built_at -> $repo; tests that read fixtures will fail"
    fi
    test_bins=$(ls -d test-bin/*)
else
    log "no bundle: building with cargo"
    cargo build --release || exit 1
    test_bins=$(cargo test --release --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        print(m["executable"])
')
fi
fear=target/release/fear
deadline=$(( $(date +%s) + 470 ))

log "machine"
{ nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1 || echo "nvidia-smi: not available"; } > "$out/gpu.txt"
cat "$out/gpu.txt" | tee -a "$out/log.txt"

log "fear doctor"
within 40 $fear doctor --json > "$out/doctor.json" 2>> "$out/log.txt" || failures+=("doctor")
within 30 $fear doctor > "$out/doctor.txt" 2>&1 || true

log "tests (FEAR_TEST_CUDA=1), 120 s in all"
: > "$out/tests.txt"
tests_end=$(( $(date +%s) + 120 ))
for t in $test_bins; do
    name=$(basename "$t")
    slice=$(( tests_end - $(date +%s) ))
    if [ "$slice" -le 5 ]; then
        log "  $name: skipped (the tests' 120 s are spent)"
        continue
    fi
    if FEAR_TEST_CUDA=1 within "$slice" "$t" --test-threads 4 >> "$out/tests.txt" 2>&1; then
        log "  $name: ok"
    else
        log "  $name: FAILED"
        failures+=("test $name")
    fi
done

# fear bench NAME ARGS...: one `fear bench --cuda-graph` of arch $arch into bench-fear-$device-arch$arch$NAME.json.
fear_bench() {
    local name=$1; shift
    log "fear bench --device $device --arch $arch --batch $batch --cuda-graph $*"
    if within 30 $fear bench --device "$device" --arch "$arch" --batch "$batch" --warmup 3 --steps 20 --cuda-graph "$@" --json \
            > "$out/bench-fear-$device-arch$arch$name.json" 2>> "$out/log.txt"; then
        cat "$out/bench-fear-$device-arch$arch$name.json" >> "$out/log.txt"
    else
        failures+=("bench arch $arch$name")
    fi
}

# In order of what matters most, should the time run out: FP32 and BF16 storage, PyTorch eager and
# tuned (channels_last + bf16 autocast + torch.compile) on the same GPU, then TF32, unfused and FP16.
for arch in 1 9930; do
    fear_bench "" --resident-data
    fear_bench "-bf16" --precision bf16
    arch_str=$($fear arch "$arch" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["arch"])')
    if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
        log "PyTorch eager on the same GPU, arch $arch"
        within 30 python3 bench/pytorch_cpu_step.py --device cuda --arch "$arch_str" --batch "$batch" --warmup 3 --steps 20 --json \
            > "$out/bench-torch-cuda-arch$arch.json" 2>> "$out/log.txt" || failures+=("torch arch $arch")
        log "PyTorch tuned (channels_last + bf16 autocast + torch.compile), arch $arch"
        within 90 python3 bench/pytorch_cpu_step.py --device cuda --arch "$arch_str" --batch "$batch" --warmup 5 --steps 20 --tuned --json \
            > "$out/bench-torch-cuda-arch$arch-tuned.json" 2>> "$out/log.txt" || failures+=("torch tuned arch $arch")
    else
        log "PyTorch with CUDA not available: no baseline"
    fi
done
for arch in 1 9930; do
    fear_bench "-tf32" --precision tf32
    # What the fused plan buys: the same steps planned unfused.
    fear_bench "-unfused" --no-fuse
    # The V100's mode (IEEE-half storage, m8n8k4 products, loss scaling), which sm_80+ run too.
    fear_bench "-fp16" --precision fp16
done

# FEAR end to end on the GPU (training images resident on the device, batches augmented there):
# two architectures on a 10k-image Synthetic CIFAR-10, NATS-Bench's network; time per arch.
log "fear rank --device $device (Synthetic CIFAR-10, 1000 images per class, archs 1 and 9930)"
if within 60 $fear rank --device "$device" --dataset synthetic-cifar10 --synthetic-size 1000 --archs 1,9930 \
        --cache-dir "$out/data-cache" --out "$out/rank-$device.jsonl" >> "$out/log.txt" 2>&1; then
    rm -rf "$out/data-cache"
else
    rm -rf "$out/data-cache"
    failures+=("rank")
fi

# compute-sanitizer over `fear doctor` and a few training steps (kernels launched one by one).
# It works on some GPU machines and not others (driver, permissions, containers): where it
# refuses, say so and carry on. FEAR_CUDA_SYNC=1 names the kernel of any fault.
: > "$out/sanitizer.txt"
if command -v compute-sanitizer > /dev/null; then
    for tool in memcheck racecheck synccheck initcheck; do
        log "compute-sanitizer --tool $tool: fear doctor, 2 training steps"
        for what in doctor steps; do
            if [ "$what" = doctor ]; then cmd=($fear doctor); else cmd=($fear bench --device "$device" --arch 1 --batch 16 --warmup 0 --steps 2); fi
            if FEAR_CUDA_SYNC=1 within 25 compute-sanitizer --tool "$tool" --error-exitcode 99 "${cmd[@]}" >> "$out/sanitizer.txt" 2>&1; then
                log "  $tool $what: clean"
            else
                rc=$?
                if [ "$rc" = 99 ]; then
                    log "  $tool $what: ERRORS (see sanitizer.txt)"
                    failures+=("sanitizer $tool $what")
                else
                    log "  $tool $what: could not run here (exit $rc; see sanitizer.txt); carrying on"
                fi
            fi
        done
    done
else
    log "compute-sanitizer not found: skipped"
fi

# Throughput of `fear rank` with 1, 2 and 4 workers on the GPU (--jobs): the demo network and
# data, 8 architectures; architectures per minute.
: > "$out/throughput.txt"
for jobs in 1 2 4; do
    log "fear rank --device $device --jobs $jobs (demo, 8 architectures)"
    start=$(date +%s)
    within 40 $fear rank --device "$device" --jobs "$jobs" --archs sample:8 --cache-dir "$out/data-cache" \
        --out "$out/rank-jobs$jobs.jsonl" >> "$out/log.txt" 2>&1
    rc=$?
    # Architectures finished per minute, also when the 40 s ran out first.
    python3 -c '
import sys, time
jobs, start, rc, path = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
secs = time.time() - start
try:
    done = sum(1 for line in open(path) if "\"ok\"" in line)
except OSError:
    done = 0
note = "" if rc == "0" else f" (stopped: exit {rc})"
print(f"jobs {jobs}: {done} archs ok in {secs:.1f} s, {done * 60 / secs:.1f} archs/min{note}")
' "$jobs" "$start" "$rc" "$out/rank-jobs$jobs.jsonl" | tee -a "$out/throughput.txt"
    [ "$rc" = 0 ] || [ "$rc" = 124 ] || failures+=("rank --jobs $jobs")
done
rm -rf "$out/data-cache"

python3 - "$out" <<'PY' | tee "$out/summary.md"
import glob, json, os, sys
out = sys.argv[1]
def load(path):
    try:
        return json.load(open(path))
    except Exception:
        return None
doctor = load(os.path.join(out, "doctor.json")) or {}
print("# fear GPU check\n")
print("GPU:", open(os.path.join(out, "gpu.txt")).read().strip().splitlines()[-1])
for t in doctor.get("self_tests", []):
    worst = max((c["max_rel_error"] for c in t["checks"]), default=0)
    print(f"- self-test on {t['device']}: {'pass' if t['passed'] else 'FAIL'} (worst relative error {worst:.1e})")
print("\n| arch | fear full ms | fear full, resident data ms | fear frozen ms | fear graph full ms | fear graph frozen ms | launches per graph (full) | torch full ms | torch frozen ms | fear/torch (full) | fear graph/torch (full) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
graph_errors = []
for arch in (1, 9930):
    f = next((load(p) for p in glob.glob(os.path.join(out, f"bench-fear-*-arch{arch}.json"))), None)
    t = load(os.path.join(out, f"bench-torch-cuda-arch{arch}.json"))
    cell = lambda d, k: f"{d[k]:.2f}" if d and k in d else "-"
    g = lambda which: (f or {}).get(which) or {}
    ratio = lambda ms: f"{ms / t['full_step_ms']:.2f}" if ms and t else "-"
    print(f"| {arch} | {cell(f, 'full_step_ms')} | {cell(f, 'full_resident_step_ms')} | {cell(f, 'frozen_step_ms')} | {cell(g('full_graph'), 'step_ms')} | "
          f"{cell(g('frozen_graph'), 'step_ms')} | {g('full_graph').get('launches', '-')} | {cell(t, 'full_step_ms')} | "
          f"{cell(t, 'frozen_step_ms')} | {ratio(f and f['full_step_ms'])} | {ratio(g('full_graph').get('step_ms'))} |")
    if f and f.get("graph_error"):
        graph_errors.append(f"arch {arch}: CUDA graph failed: {f['graph_error']}")
for e in graph_errors:
    print(f"\n{e}")
# Issue 14's targets: images/s of fear's best full step (CUDA graph) at each precision against
# PyTorch eager (>= 3x) and tuned (>= 1.2x), and the stage-2 step against fear's full (<= 0.35).
print("\n| arch | precision | fear graph full ms | fear graph frozen ms | frozen/full | x torch eager | x torch tuned |")
print("|---|---|---|---|---|---|---|")
for arch in (1, 9930):
    eager = load(os.path.join(out, f"bench-torch-cuda-arch{arch}.json"))
    tuned = load(os.path.join(out, f"bench-torch-cuda-arch{arch}-tuned.json"))
    for name, tag in (("fp32", ""), ("bf16", "-bf16"), ("tf32", "-tf32"), ("fp16", "-fp16"), ("fp32 unfused", "-unfused")):
        f = next((load(p) for p in glob.glob(os.path.join(out, f"bench-fear-*-arch{arch}{tag}.json"))), None) or {}
        full, frozen = (f.get("full_graph") or {}).get("step_ms"), (f.get("frozen_graph") or {}).get("step_ms")
        speedup = lambda t: f"{t['full_step_ms'] / full:.2f}" if t and full else "-"
        ms = lambda v: f"{v:.2f}" if v else "-"
        print(f"| {arch} | {name} | {ms(full)} | {ms(frozen)} | {ms(frozen / full if full and frozen else None)} | {speedup(eager)} | {speedup(tuned)} |")
rank = os.path.join(out, f"rank-{os.environ.get('FEAR_CHECK_DEVICE', 'cuda')}.jsonl")
if os.path.exists(rank):
    print("\n| fear rank arch | status | score | stage-1 epochs | stage 1 s | stage 2 s |")
    print("|---|---|---|---|---|---|")
    for line in open(rank):
        r = json.loads(line)
        print(f"| {r['index']} | {r.get('status')} | {r.get('score')} | {r.get('stage1_epochs', '-')} | "
              f"{r.get('stage1_s', '-')} | {r.get('stage2_s', '-')} |")
throughput = os.path.join(out, "throughput.txt")
if os.path.exists(throughput):
    print("\n`fear rank` throughput by workers per GPU (--jobs):\n")
    for line in open(throughput):
        print(f"- {line.strip()}")
PY

if [ ${#failures[@]} -gt 0 ]; then
    log "FAILED: ${failures[*]}"
    exit 1
fi
log "all passed"
