#!/usr/bin/env bash
# One command for a GPU machine: every test (the real-GPU kernel and CUDA graph tests included),
# `fear doctor`, `fear bench --cuda-graph` on the GPU for archs 1 and 9930 (each step launched
# kernel by kernel and replayed as a CUDA graph) beside PyTorch on the same GPU, and a short
# `fear rank` on the GPU (training data resident on the device); writes a short
# table (summary.md) and JSON files into the folder given as its argument.
#
#   scripts/gpu-check.sh OUT_DIR
#
# Uses gpu-bundle/bundle.tar.gz from scripts/gpu-bundle.sh when there (a machine with no Rust
# toolchain), else builds with cargo. Runs within about 5 minutes on an H100.
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

if [ -f gpu-bundle/bundle.tar.gz ]; then
    log "unpacking gpu-bundle/bundle.tar.gz"
    tar -xzf gpu-bundle/bundle.tar.gz
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

log "machine"
{ nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1 || echo "nvidia-smi: not available"; } > "$out/gpu.txt"
cat "$out/gpu.txt" | tee -a "$out/log.txt"

log "fear doctor"
$fear doctor --json > "$out/doctor.json" 2>> "$out/log.txt" || failures+=("doctor")
$fear doctor > "$out/doctor.txt" 2>&1 || true

log "tests (FEAR_TEST_CUDA=1)"
: > "$out/tests.txt"
for t in $test_bins; do
    name=$(basename "$t")
    if FEAR_TEST_CUDA=1 timeout 240 "$t" --test-threads 4 >> "$out/tests.txt" 2>&1; then
        log "  $name: ok"
    else
        log "  $name: FAILED"
        failures+=("test $name")
    fi
done

for arch in 1 9930; do
    log "fear bench --device $device --arch $arch --batch $batch --cuda-graph --resident-data"
    if $fear bench --device "$device" --arch "$arch" --batch "$batch" --warmup 3 --steps 20 --cuda-graph --resident-data --json > "$out/bench-fear-$device-arch$arch.json" 2>> "$out/log.txt"; then
        cat "$out/bench-fear-$device-arch$arch.json" >> "$out/log.txt"
    else
        failures+=("bench arch $arch")
    fi
    arch_str=$($fear arch "$arch" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["arch"])')
    if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
        log "PyTorch on the same GPU, arch $arch"
        python3 bench/pytorch_cpu_step.py --device cuda --arch "$arch_str" --batch "$batch" --warmup 3 --steps 20 --json \
            > "$out/bench-torch-cuda-arch$arch.json" 2>> "$out/log.txt" || failures+=("torch arch $arch")
    else
        log "PyTorch with CUDA not available: no baseline"
    fi
done

# FEAR end to end on the GPU (training images resident on the device, batches augmented there):
# two architectures on a 10k-image Synthetic CIFAR-10, NATS-Bench's network; time per arch.
log "fear rank --device $device (Synthetic CIFAR-10, 1000 images per class, archs 1 and 9930)"
if timeout 180 $fear rank --device "$device" --dataset synthetic-cifar10 --synthetic-size 1000 --archs 1,9930 \
        --cache-dir "$out/data-cache" --out "$out/rank-$device.jsonl" >> "$out/log.txt" 2>&1; then
    rm -rf "$out/data-cache"
else
    rm -rf "$out/data-cache"
    failures+=("rank")
fi

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
rank = os.path.join(out, f"rank-{os.environ.get('FEAR_CHECK_DEVICE', 'cuda')}.jsonl")
if os.path.exists(rank):
    print("\n| fear rank arch | status | score | stage-1 epochs | stage 1 s | stage 2 s |")
    print("|---|---|---|---|---|---|")
    for line in open(rank):
        r = json.loads(line)
        print(f"| {r['index']} | {r.get('status')} | {r.get('score')} | {r.get('stage1_epochs', '-')} | "
              f"{r.get('stage1_s', '-')} | {r.get('stage2_s', '-')} |")
PY

if [ ${#failures[@]} -gt 0 ]; then
    log "FAILED: ${failures[*]}"
    exit 1
fi
log "all passed"
