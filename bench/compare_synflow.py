"""Times `fear zero-cost --proxy synflow` against float64 PyTorch synflow (bench/torch_synflow.py)
on the same architectures, alternating blocks so both see the same machine load, and
extrapolates each to all 15625 architectures. Also reports the Spearman correlation of the two
score lists (different random initialisations, so close to but not exactly 1).

    python bench/compare_synflow.py --sample 500 --block 50 --fear target/release/fear --out bench/results/synflow-....json
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


def run(cmd):
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample", type=int, default=500)
    ap.add_argument("--block", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fear", default=os.path.join(HERE, "..", "target", "release", "fear"))
    ap.add_argument("--threads", type=int, default=2)
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
        order = ["torch", "fear"] if (b // a.block) % 2 == 0 else ["fear", "torch"]
        for who in order:
            out = os.path.join(tmp, f"{who}{b}.jsonl")
            if who == "torch":
                cmd = [sys.executable, os.path.join(HERE, "torch_synflow.py"), "--indices-file", idx_file,
                       "--threads", str(a.threads), "--out", out]
            else:
                cmd = [a.fear, "zero-cost", "--proxy", "synflow", "--archs", f"file:{idx_file}",
                       "--threads", str(a.threads), "--out", out]
            totals[who] += run(cmd)
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
        "threads": a.threads,
        "torch_s": totals["torch"],
        "fear_s": totals["fear"],
        "torch_s_per_arch": totals["torch"] / len(indices),
        "fear_s_per_arch": totals["fear"] / len(indices),
        "torch_extrapolated_15625_min": totals["torch"] / len(indices) * 15625 / 60,
        "fear_extrapolated_15625_min": totals["fear"] / len(indices) * 15625 / 60,
        "speedup": totals["torch"] / totals["fear"],
        "spearman_torch_vs_fear_scores": rho,
        "load_average_at_end": os.getloadavg(),
        "note": "wall time of whole processes (startup, model construction, scoring), blocks alternating",
    }
    print(json.dumps(result, indent=2))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
