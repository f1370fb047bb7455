#!/usr/bin/env python3
"""PyTorch baseline for one TinyNetwork training step (full size, C=16, N=5), on the CPU or a GPU.

    python3 bench/pytorch_cpu_step.py --arch ARCH_STRING --batch 64 --threads 2 \
        --warmup 3 --steps 10 [--device cpu|cuda] [--tuned] [--json]

--tuned is the tuned baseline of issue 14: channels_last tensors, bf16 autocast (the
convolutions and matmuls in bfloat16, as `fear --precision bf16` stores its tensors) and
torch.compile; its warm-up steps include the compilation (give it a few more).

On a GPU every timed step ends with torch.cuda.synchronize(), as `fear bench` waits for its
step (it reads the loss back).

(a) full step: zero_grad, forward (train mode), mean CE, backward,
    SGD(lr .1, momentum .9, nesterov, wd 5e-4) step, all parameters.
(b) FEAR stage-2 step: only cells.13-16, lastact and classifier trainable
    (requires_grad False elsewhere), fresh SGD over those, every BN in train
    mode (running stats of frozen BNs still update).
Reports the median wall time of each over --steps timed steps after --warmup.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_tinynet import TinyNetwork  # noqa: E402

STAGE2_PREFIXES = ("cells.13.", "cells.14.", "cells.15.", "cells.16.", "lastact.", "classifier.")


def make_sgd(params):
    return torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(model, opt, x, y, warmup, steps, autocast=False):
    model.train()
    times = []
    for i in range(warmup + steps):
        sync(x.device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        sync(x.device)
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
    return statistics.median(times), times


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--tuned", action="store_true", help="channels_last + bf16 autocast + torch.compile")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    device = torch.device(a.device)

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    x = torch.randn(a.batch, 3, a.image_size, a.image_size).to(device)
    y = torch.randint(0, a.classes, (a.batch,)).to(device)

    # (a) full training step
    model = TinyNetwork(a.arch, C=16, N=5, num_classes=a.classes).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    run = model
    if a.tuned:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        run = torch.compile(model)
    full_s, full_all = time_steps(run, make_sgd(model.parameters()), x, y, a.warmup, a.steps, a.tuned)

    # (b) FEAR stage 2: fresh model state, freeze all but the last cells + head
    trainable = []
    for name, p in model.named_parameters():
        keep = name.startswith(STAGE2_PREFIXES)
        p.requires_grad_(keep)
        if keep:
            trainable.append(p)
    n_trainable = sum(p.numel() for p in trainable)
    frozen_s, frozen_all = time_steps(run, make_sgd(trainable), x, y, a.warmup, a.steps, a.tuned)

    res = {
        "arch": a.arch,
        "baseline": "channels_last + bf16 autocast + torch.compile" if a.tuned else "eager fp32",
        "batch": a.batch,
        "image_size": a.image_size,
        "params": n_params,
        "stage2_trainable_params": n_trainable,
        "full_step_ms": full_s * 1e3,
        "frozen_step_ms": frozen_s * 1e3,
        "images_per_s": a.batch / full_s,
        "frozen_images_per_s": a.batch / frozen_s,
        "full_step_ms_all": [t * 1e3 for t in full_all],
        "frozen_step_ms_all": [t * 1e3 for t in frozen_all],
        "warmup": a.warmup,
        "steps": a.steps,
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "machine": platform.machine(),
        "loadavg_after": list(os.getloadavg()),
    }
    if a.json:
        print(json.dumps(res))
    else:
        print(f"torch {res['torch_version']}  threads {res['threads']}  batch {a.batch}  params {n_params}"
              f"  (stage-2 trainable {n_trainable})")
        print(f"full_step_ms   {res['full_step_ms']:.1f}  ({res['images_per_s']:.1f} images/s)")
        print(f"frozen_step_ms {res['frozen_step_ms']:.1f}  ({res['frozen_images_per_s']:.1f} images/s)")


if __name__ == "__main__":
    main()
