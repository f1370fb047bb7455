#!/usr/bin/env python3
"""Write PyTorch reference fixtures for the TinyNetwork engine tests.

    python3 scripts/pytorch_oracle.py [--out tests/fixtures]

For each case, one ``tests/fixtures/oracle_<name>.safetensors`` holding the
input, labels, default-initialised parameters, logits, loss, gradients, BN
running statistics after the forward, and parameters after one SGD step
(see tests/fixtures/README.md). Requires torch, safetensors, numpy.

The case (parameters, input, labels) is drawn in float32, so it is exactly
representable in both precisions. The reference outputs are the float64 truth:
the same model with those float32 parameters, converted with ``.double()``,
runs the forward, loss, backward, BN running-stat update and SGD step in
float64. The same step is also run in float32 (PyTorch's own float32 result);
its error against the float64 truth, per reference tensor, goes into the
``torch_f32_err`` metadata entry (see ``rel_err``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import struct
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
from torch_tinynet import TinyNetwork  # noqa: E402

ARCH_1 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
ARCH_123 = "|avg_pool_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
ARCH_15624 = "|nor_conv_1x1~0|+|none~0|nor_conv_1x1~1|+|none~0|nor_conv_1x1~1|nor_conv_1x1~2|"
ARCH_LIGHT = "|avg_pool_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"

LR, MOMENTUM, WEIGHT_DECAY, NESTEROV = 0.1, 0.9, 5e-4, True

# Storage dtype of the float64 reference tensors (logits, loss, grad/*,
# running_after/*, param_after/*). Stored as float64 the five files would total
# about 2.84 MB, over the 2 MB budget, so they hold the float64 results rounded
# once to float32 (relative rounding <= 6e-8 per value).
REF_DTYPE = torch.float32
REF_PREFIXES = ("logits", "loss", "grad/", "running_after/", "param_after/")

# name, arch, C, N, classes, batch, image_size, seed
CASES = [
    ("arch1_c4n1", ARCH_1, 4, 1, 10, 8, 32, 1),
    ("arch123_c4n1", ARCH_123, 4, 1, 10, 8, 32, 123),
    ("arch15624_c4n1", ARCH_15624, 4, 1, 10, 8, 32, 15624),
    ("arch1_c4n1_16px_120cls", ARCH_1, 4, 1, 120, 8, 16, 7),
    ("light_c16n5", ARCH_LIGHT, 16, 5, 10, 4, 32, 2024),
]


def run_step(model, x, y):
    """One train-mode forward, mean cross-entropy, backward and SGD step, in the
    model's own dtype. Returns the reference tensors (logits, loss, grad/*,
    running_after/*, param_after/*) in that dtype. Modifies ``model``."""
    params = dict(model.named_parameters())
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM,
                          weight_decay=WEIGHT_DECAY, nesterov=NESTEROV)
    opt.zero_grad(set_to_none=True)
    logits = model(x)
    loss = F.cross_entropy(logits, y, reduction="mean")
    loss.backward()
    out = {"logits": logits.detach().clone(), "loss": loss.detach().reshape(1).clone()}
    for k, p in params.items():
        out[f"grad/{k}"] = p.grad.detach().clone()
    for k, v in model.state_dict().items():
        if k.endswith("running_mean") or k.endswith("running_var"):
            out[f"running_after/{k}"] = v.detach().clone()
    opt.step()
    for k, p in params.items():
        out[f"param_after/{k}"] = p.detach().clone()
    return out


def rel_err(a, b, floor):
    """max|a - b| / max(max|b|, floor), in float64; ``b`` is the truth.

    The same measure as ``rel_err`` in tests/oracle.rs."""
    a, b = a.double(), b.double()
    scale = max(b.abs().max().item(), floor)
    return (a - b).abs().max().item() / scale


def f32_errors(ref64, ref32):
    """Error of PyTorch's float32 run against the float64 truth, per reference
    tensor. Floor: 1e-6 * (largest |grad| over all grad/* tensors) for grad/*,
    1e-6 for everything else."""
    grad_max = max(v.abs().max().item() for k, v in ref64.items() if k.startswith("grad/"))
    errs = {}
    for k, b in ref64.items():
        floor = 1e-6 * grad_max if k.startswith("grad/") else 1e-6
        errs[k] = rel_err(ref32[k], b, floor)
    return errs


def make_case(name, arch, C, N, classes, batch, size, seed):
    # Parameters: PyTorch default init right after torch.manual_seed(seed), in float32.
    torch.manual_seed(seed)
    model = TinyNetwork(arch, C=C, N=N, num_classes=classes).float()
    # Data from a separate generator so the parameter draw is independent of it.
    gen = torch.Generator().manual_seed(seed + 1_000_003)
    x = torch.randn(batch, 3, size, size, generator=gen, dtype=torch.float32)
    y = torch.randint(0, classes, (batch,), generator=gen, dtype=torch.int64)

    out = {"input": x.clone(), "labels": y.clone()}
    for k, p in model.named_parameters():
        out[f"param/{k}"] = p.detach().clone()

    # float64 truth: a fresh model holding the same float32 parameters (and the
    # initial BN buffers), converted to float64; input converted exactly.
    model64 = TinyNetwork(arch, C=C, N=N, num_classes=classes)
    model64.load_state_dict(copy.deepcopy(model.state_dict()))
    model64.double()
    ref64 = run_step(model64, x.double(), y)
    # PyTorch's float32 run of the same step (what the fixtures held before).
    ref32 = run_step(model, x, y)
    assert ref64.keys() == ref32.keys()
    for k, v in ref64.items():
        assert v.dtype == torch.float64 and ref32[k].dtype == torch.float32, k

    errs = f32_errors(ref64, ref32)
    for k, v in ref64.items():
        out[k] = v.to(REF_DTYPE)

    out = {k: v.contiguous() for k, v in out.items()}
    for k, v in out.items():
        if k == "labels":
            want = torch.int64
        elif k.startswith(REF_PREFIXES):
            want = REF_DTYPE
        else:
            want = torch.float32
        assert v.dtype == want, k
    assert set(errs) == {k for k in out if k.startswith(REF_PREFIXES)}
    meta = {
        "arch": arch,
        "C": str(C),
        "N": str(N),
        "classes": str(classes),
        "batch": str(batch),
        "image_size": str(size),
        "lr": repr(LR),
        "momentum": repr(MOMENTUM),
        "weight_decay": repr(WEIGHT_DECAY),
        "nesterov": "true" if NESTEROV else "false",
        "seed": str(seed),
        "bn_momentum": "0.1",
        "bn_eps": "1e-05",
        "reference": "float64",
        "reference_dtype": str(REF_DTYPE).replace("torch.", ""),
        # 3 significant digits: a short header, and the same text on every run.
        "torch_f32_err": json.dumps({k: float(f"{e:.3e}") for k, e in errs.items()},
                                    sort_keys=True, separators=(",", ":")),
        "torch_version": torch.__version__,
    }
    n_params = sum(p.numel() for p in model.parameters())
    return out, meta, n_params, ref64["loss"].item(), errs


def write_canonical(path, tensors, meta):
    """safetensors.torch.save, then re-emit the JSON header with sorted keys.

    The safetensors writer keeps ``__metadata__`` in a hash map, so its key
    order (and so the file bytes) changes from run to run. The tensor data
    layout is deterministic; only the header is rewritten, which keeps the
    files byte-identical across regenerations.
    """
    blob = save(tensors, metadata=meta)
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    hbytes = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    hbytes += b" " * (-len(hbytes) % 8)
    if os.path.exists(path):
        os.remove(path)  # start from a fresh file (normal umask permissions)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)) + hbytes + data)
    back = load_file(path)  # round-trip check through the safetensors reader
    assert back.keys() == tensors.keys()
    assert all(torch.equal(back[k], tensors[k]) for k in tensors)


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.backends.mkldnn.enabled = True

    total = 0
    for case in CASES:
        name = case[0]
        tensors, meta, n_params, loss, errs = make_case(*case)
        path = os.path.join(args.out, f"oracle_{name}.safetensors")
        write_canonical(path, tensors, meta)
        sz = os.path.getsize(path)
        total += sz
        worst = sorted(errs.items(), key=lambda kv: -kv[1])
        print(f"{path}: {len(tensors)} tensors, {n_params} params, loss {loss:.6f}, {sz} bytes")
        print(f"  worst torch_f32_err {worst[0][1]:.3e} in {worst[0][0]}"
              f" (next: {worst[1][1]:.3e} {worst[1][0]}; {worst[2][1]:.3e} {worst[2][0]})")
    print(f"total {total} bytes ({total / 2**20:.3f} MiB)")
    if total > 2_000_000:
        print("WARNING: fixtures exceed the 2 MB budget", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
