#!/usr/bin/env python3
"""Side-by-side CPU step times: `fear bench` against PyTorch, same architecture, batch, threads.

    python3 bench/compare_cpu.py [--archs 1,9930] [--batch 64] [--threads 2] [--steps 10] [--out FILE]

Builds nothing: run `cargo build --release` first. For each architecture it runs PyTorch
(`bench/pytorch_cpu_step.py`) and `fear bench` back to back, alternating which goes first each
round (--rounds), and reports the median step times, the ratio fear / PyTorch for the full step,
and fear's frozen / full ratio. The targets (engine foundation issue): full step at most 1.5x
PyTorch's, frozen step at most 0.55x fear's own full step. Results go to --out as JSON.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FEAR = os.path.join(ROOT, "target", "release", "fear")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", default="1,9930")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    if not os.path.exists(FEAR):
        sys.exit(f"{FEAR} not found: run `cargo build --release` first")
    common = ["--batch", str(a.batch), "--threads", str(a.threads), "--steps", str(a.steps), "--warmup", str(a.warmup)]
    rows = []
    for index in a.archs.split(","):
        arch = run_json([FEAR, "arch", index, "--json"])["arch"]
        torch_runs, fear_runs = [], []
        for r in range(a.rounds):
            order = ["torch", "fear"] if r % 2 == 0 else ["fear", "torch"]
            for who in order:
                if who == "torch":
                    torch_runs.append(run_json([sys.executable, os.path.join(HERE, "pytorch_cpu_step.py"), "--arch", arch, "--json"] + common))
                else:
                    fear_runs.append(run_json([FEAR, "bench", "--device", "cpu", "--arch", index, "--json"] + common))
        med = lambda runs, key: statistics.median(x[key] for x in runs)
        row = {
            "index": int(index),
            "arch": arch,
            "torch_full_step_ms": med(torch_runs, "full_step_ms"),
            "torch_frozen_step_ms": med(torch_runs, "frozen_step_ms"),
            "fear_full_step_ms": med(fear_runs, "full_step_ms"),
            "fear_frozen_step_ms": med(fear_runs, "frozen_step_ms"),
            "fear_full_saved_bytes": fear_runs[-1]["full_saved_bytes"],
            "fear_frozen_saved_bytes": fear_runs[-1]["frozen_saved_bytes"],
            "fear_full_backward_nodes": fear_runs[-1]["full_backward_nodes"],
            "fear_frozen_backward_nodes": fear_runs[-1]["frozen_backward_nodes"],
            "torch_version": torch_runs[-1].get("torch_version"),
        }
        row["full_ratio_vs_torch"] = row["fear_full_step_ms"] / row["torch_full_step_ms"]
        row["fear_frozen_over_full"] = row["fear_frozen_step_ms"] / row["fear_full_step_ms"]
        rows.append(row)
        print(f"arch {index}: PyTorch full {row['torch_full_step_ms']:.0f} ms, frozen {row['torch_frozen_step_ms']:.0f} ms | "
              f"fear full {row['fear_full_step_ms']:.0f} ms ({row['full_ratio_vs_torch']:.2f}x PyTorch), "
              f"frozen {row['fear_frozen_step_ms']:.0f} ms ({row['fear_frozen_over_full']:.2f}x own full)", flush=True)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores",
        "batch": a.batch, "threads": a.threads, "steps": a.steps, "warmup": a.warmup, "rounds": a.rounds,
        "command": " ".join(sys.argv),
        "results": rows,
    }
    if a.out:
        with open(a.out, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
