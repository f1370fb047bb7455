"""Float64 PyTorch synflow (the zero-cost-nas definition, SPEC 5): the baseline `fear zero-cost
--proxy synflow` is timed against.

Per architecture: build TinyNetwork (bench/torch_tinynet.py, PyTorch default init), replace every
BatchNorm2d by the identity, convert to float64, replace every parameter and buffer by its
absolute value, forward one all-ones 1x3x32x32 image, backward the sum of the outputs, and sum
|W * dR/dW| over the conv and linear weights. The time per architecture covers all of it (model
construction included), as `fear zero-cost` times its own.

    python bench/torch_synflow.py --indices 1,6111,15624 --out torch-synflow.jsonl [--threads 2]
    python bench/torch_synflow.py --indices-file idx.txt --out torch-synflow.jsonl

Architecture strings come from ../shared/data/nats_tss_200ep_test_acc.csv (index order).
"""

import argparse
import csv
import json
import os
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_tinynet import TinyNetwork  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CSV = os.path.join(HERE, "..", "..", "shared", "data", "nats_tss_200ep_test_acc.csv")


def arch_strings(path=CSV):
    with open(path) as f:
        return {int(r["index"]): r["arch"] for r in csv.DictReader(f)}


def remove_bn(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.Identity())
        else:
            remove_bn(child)


def synflow(arch: str) -> float:
    net = TinyNetwork(arch)
    remove_bn(net)
    net = net.double()
    with torch.no_grad():
        for p in net.state_dict().values():
            p.abs_()
    net.zero_grad()
    out = net(torch.ones(1, 3, 32, 32, dtype=torch.float64))
    torch.sum(out).backward()
    score = 0.0
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.grad is not None:
            score += torch.sum(torch.abs(m.weight * m.weight.grad)).item()
    return score


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--indices", help="comma list of architecture indices")
    ap.add_argument("--indices-file", help="one index a line")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    if a.indices_file:
        with open(a.indices_file) as f:
            indices = [int(l) for l in f if l.strip() and not l.startswith("#")]
    else:
        indices = [int(i) for i in a.indices.split(",")]
    archs = arch_strings()
    start = time.perf_counter()
    with open(a.out, "w") as out:
        for i in indices:
            t = time.perf_counter()
            s = synflow(archs[i])
            out.write(json.dumps({"index": i, "synflow": s, "time_s": time.perf_counter() - t}) + "\n")
    print(f"{len(indices)} archs in {time.perf_counter() - start:.2f}s, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", file=sys.stderr)


if __name__ == "__main__":
    main()
