"""Times `fear zero-cost --proxy synflow` against float64 PyTorch synflow (bench/torch_synflow.py)
on the same architectures, alternating blocks so both see the same machine load, and
extrapolates each to all 15625 architectures. Also reports the Spearman correlation of the two
score lists (different random initialisations, so close to but not exactly 1).

    python bench/compare_synflow.py --sample 500 --block 50 --out bench/results/synflow-cpu-2core-DATE.json

PyTorch runs as two single-threaded processes side by side by default (its best use of two
cores here: one process with two threads was 18x slower than with one while other builds ran,
its OpenMP threads waiting on each other); --torch-procs 1 --torch-threads 2 times that too.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time

from scipy.stats import spearmanr

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmds):
    """Runs the commands concurrently; returns the wall time until all have finished."""
    t = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in cmds]
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"failed: {p.args}")
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample", type=int, default=500)
    ap.add_argument("--block", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fear", default=os.path.join(HERE, "..", "target", "release", "fear"))
    ap.add_argument("--threads", type=int, default=2, help="fear's threads")
    ap.add_argument("--torch-procs", type=int, default=2,
                    help="PyTorch processes run side by side on a share of each block each")
    ap.add_argument("--torch-threads", type=int, default=1, help="threads per PyTorch process")
    ap.add_argument("--out")
    a = ap.parse_args()
    indices = random.Random(a.seed).sample(range(15625), a.sample)
    tmp = tempfile.mkdtemp()
    totals = {"torch": 0.0, "fear": 0.0}
    scores = {"torch": {}, "fear": {}}
    for b in range(0, len(indices), a.block):
        block = indices[b:b + a.block]
        idx_file = os.path.join(tmp, f"block{b}.txt")
        with open(idx_file, "w") as f:
            f.write("\n".join(map(str, block)) + "\n")
        parts = [block[k::a.torch_procs] for k in range(a.torch_procs)]
        order = ["torch", "fear"] if (b // a.block) % 2 == 0 else ["fear", "torch"]
        for who in order:
            if who == "torch":
                outs = [os.path.join(tmp, f"torch{b}-{k}.jsonl") for k in range(len(parts))]
                cmds = [[sys.executable, os.path.join(HERE, "torch_synflow.py"), "--indices", ",".join(map(str, part)),
                         "--threads", str(a.torch_threads), "--out", out] for part, out in zip(parts, outs)]
            else:
                outs = [os.path.join(tmp, f"fear{b}.jsonl")]
                cmds = [[a.fear, "zero-cost", "--proxy", "synflow", "--archs", f"file:{idx_file}",
                         "--threads", str(a.threads), "--out", outs[0]]]
            totals[who] += run(cmds)
            for out in outs:
                for line in open(out):
                    r = json.loads(line)
                    scores[who][r["index"]] = r["synflow"]
        print(f"block {b // a.block}: torch {totals['torch']:.1f}s fear {totals['fear']:.1f}s so far", file=sys.stderr)
    common = sorted(scores["torch"])
    rho = spearmanr([scores["torch"][i] for i in common], [scores["fear"][i] for i in common]).correlation
    result = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "archs": len(indices),
        "block": a.block,
        "fear_threads": a.threads,
        "torch_procs": a.torch_procs,
        "torch_threads_per_proc": a.torch_threads,
        "torch_s": totals["torch"],
        "fear_s": totals["fear"],
        "torch_s_per_arch": totals["torch"] / len(indices),
        "fear_s_per_arch": totals["fear"] / len(indices),
        "torch_extrapolated_15625_min": totals["torch"] / len(indices) * 15625 / 60,
        "fear_extrapolated_15625_min": totals["fear"] / len(indices) * 15625 / 60,
        "speedup": totals["torch"] / totals["fear"],
        "spearman_torch_vs_fear_scores": rho,
        "load_average_at_end": os.getloadavg(),
        "machine": "the project's shared 2-core CPU machine (other builds running: see load_average)",
        "note": "wall time of whole processes (startup, model construction, scoring), blocks alternating; "
                "PyTorch as --torch-procs processes of --torch-threads threads side by side",
    }
    print(json.dumps(result, indent=2))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
