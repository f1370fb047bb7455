#!/usr/bin/env python3
"""Write PyTorch float64 reference values of AZ-NAS's three scores and ZiCo for
tests/modern_proxies.rs.

    python3 scripts/make_modern_proxy_fixtures.py [--out tests/fixtures/proxies/modern]

For each case, ``<name>.safetensors`` holds the network's parameters (PyTorch default init from
``torch.manual_seed``, float64, state_dict names), AZ-NAS's input batch ``az_input``, ZiCo's batch
``zico_input`` / ``zico_labels``, and in the metadata the arch, network size, seed and scores,
computed as the released code computes them (cvlab-yonsei/AZ-NAS NB201/ZeroShotProxy):

- AZ-NAS: train-mode forward of the cell features (stem output, then every cell's output);
  expressivity = sum of the entropies -p log(p + 1e-8) of the normalised eigenvalues of each
  feature's channel covariance (b*h*w samples, divided by their count); progressivity = the
  smallest increase between consecutive features; trainability = mean over cells of
  2 - s - 1/(s + 1e-6), s the largest singular value of pixel_unshuffle(g_in)^T g_out / (b*h*w),
  g_in = autograd.grad(f_out, f_in, g_out), -inf when g_in equals g_out. The cotangent g_out of
  feature j is fear's counter-hash random signs (SplitMix64 finaliser) from seed
  seed * 1000003 + j, so both sides use the same signs.
- MeCo (HamsterMimi/MeCo correlation/NAS_Bench_201.py): a forward hook on every module of a
  batch of one image (train mode); per output, the smallest real eigenvalue of
  torch.corrcoef(out[0].reshape(C, -1)) with NaN set to 0; summed. The network hooked there is
  foresight's NAS201Model, whose stem adds one more module around the stem's BN and whose stages
  are nn.Sequential (the last cell of each counted once more): those two are added here.
- SWAP (pym1024/SWAP src/metrics/swap.py): train-mode forward of the ZiCo batch; the outputs of
  every nn.ReLU with a 4-D input, flattened per sample and concatenated, their signs; the number
  of distinct rows of the transposed matrix (one row per unit), at the given weights.
- ZiCo: gradients of the mean cross-entropy w.r.t. every conv / linear weight on each half of
  the batch (train-mode BN); per layer log(sum over nonzero-std weights of mean|g| / std(g)).
Requires torch, safetensors, numpy.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
from torch_tinynet import TinyNetwork  # noqa: E402

# name, arch, C, N, classes, az batch, zico batch, image_size, torch seed
CASES = [
    ("mixed_c2n1", "|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|", 2, 1, 10, 4, 6, 8, 1),
    ("identity_c3n1", "|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|", 3, 1, 5, 3, 4, 8, 2),
]
AZ_SEED = 0
M64 = (1 << 64) - 1


def random_signs(seed, shape):
    """fear's cpu::random_signs: sign of a SplitMix64-finalised counter hash of each index."""
    with np.errstate(over="ignore"):
        i = np.arange(int(np.prod(shape)), dtype=np.uint64)
        z = np.uint64(seed) ^ (i * np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    signs = np.where((z >> np.uint64(63)) == 1, 1.0, -1.0)
    return torch.from_numpy(signs.reshape(shape))


def cell_features(net, x):
    feats = [net.stem(x)]
    for cell in net.cells:
        feats.append(cell(feats[-1]))
    return feats


def az_nas(net, x):
    net.train()
    feats = cell_features(net, x)
    expressivity = []
    for f in feats:
        b, c, h, w = f.shape
        m = f.detach().permute(0, 2, 3, 1).reshape(b * h * w, c)
        m = m - m.mean(dim=0, keepdim=True)
        sigma = m.T @ m / m.shape[0]
        s = torch.linalg.eigvalsh(sigma)
        p = s / s.sum()
        expressivity.append((-p * torch.log(p + 1e-8)).sum().item())
    e = np.array(expressivity)
    scores = []
    for i in reversed(range(1, len(feats))):
        f_out, f_in = feats[i], feats[i - 1]
        seed = (AZ_SEED * 1000003 + i) & M64
        g_out = random_signs(seed, tuple(f_out.shape))
        g_in = torch.autograd.grad(f_out, f_in, g_out, retain_graph=True)[0]
        if g_out.shape == g_in.shape and torch.all(g_in == g_out):
            scores.append(-np.inf)
            continue
        if g_out.shape[2] != g_in.shape[2]:
            g_in = F.pixel_unshuffle(g_in, g_in.shape[2] // g_out.shape[2])
        bo, co, ho, wo = g_out.shape
        ci = g_in.shape[1]
        mat = g_in.permute(0, 2, 3, 1).reshape(-1, ci).T @ g_out.permute(0, 2, 3, 1).reshape(-1, co) / (bo * ho * wo)
        smax = torch.linalg.svdvals(mat).max().item()
        scores.append(-smax - 1 / (smax + 1e-6) + 2)
    return {"az_expressivity": float(e.sum()), "az_progressivity": float(np.min(e[1:] - e[:-1])), "az_trainability": float(np.mean(scores))}


def meco(net, x):
    net.train()
    total = []

    def score(out):
        fea = out[0].detach().reshape(out.shape[1], -1)
        corr = torch.corrcoef(fea)
        corr[torch.isnan(corr)] = 0
        corr[torch.isinf(corr)] = 0
        return torch.min(torch.real(torch.linalg.eig(corr)[0])).item()

    def hook(times):
        return lambda _m, _i, out: total.append(times * score(out))

    handles = [m.register_forward_hook(hook(1)) for m in net.modules()]
    handles.append(net.stem[1].register_forward_hook(hook(1)))
    n = (len(net.cells) - 2) // 3
    for i in (n - 1, 2 * n, 3 * n + 1):
        handles.append(net.cells[i].register_forward_hook(hook(1)))
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return float(sum(total))


def swap(net, x):
    net.train()
    feats = []
    handles = [m.register_forward_hook(lambda _m, i, o: feats.append(o.detach()) if i[0].dim() == 4 else None)
               for m in net.modules() if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    acts = torch.sign(torch.cat([f.reshape(x.shape[0], -1) for f in feats], 1))
    return float(torch.unique(acts.T, dim=0).shape[0])


def zico(net, x, y):
    net.train()
    half = x.shape[0] // 2
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    grads = [[] for _ in layers]
    for part in range(2):
        net.zero_grad()
        F.cross_entropy(net(x[part * half:(part + 1) * half]), y[part * half:(part + 1) * half]).backward()
        for g, m in zip(grads, layers):
            g.append(m.weight.grad.detach().reshape(-1).numpy().copy())
    score = 0.0
    for g in grads:
        g = np.array(g)
        std = np.std(g, axis=0)
        nz = np.nonzero(std)[0]
        s = np.sum(np.mean(np.abs(g), axis=0)[nz] / std[nz])
        if s != 0:
            score += np.log(s)
    return float(score)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "proxies", "modern"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    for name, arch, C, N, classes, az_batch, zico_batch, size, seed in CASES:
        torch.manual_seed(seed)
        net = TinyNetwork(arch, C, N, classes).double()
        state = {k: v.clone() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
        az_x = torch.randn(az_batch, 3, size, size, dtype=torch.float64)
        zx = torch.randn(zico_batch, 3, size, size, dtype=torch.float64)
        zy = torch.randint(0, classes, (zico_batch,))
        scores = az_nas(net, az_x)
        net.load_state_dict(state, strict=False)
        scores["zico"] = zico(net, zx, zy)
        net.load_state_dict(state, strict=False)
        meco_x = torch.randn(1, 3, size, size, dtype=torch.float64)
        scores["meco"] = meco(net, meco_x)
        net.load_state_dict(state, strict=False)
        scores["swap"] = swap(net, zx)
        tensors = {f"param/{k}": v.contiguous() for k, v in state.items()}
        tensors.update({"az_input": az_x.contiguous(), "zico_input": zx.contiguous(), "zico_labels": zy.to(torch.int64), "meco_input": meco_x.contiguous()})
        meta = {"arch": arch, "C": str(C), "N": str(N), "classes": str(classes), "image_size": str(size),
                "az_seed": str(AZ_SEED), "scores": json.dumps(scores), "torch": torch.__version__}
        path = os.path.join(a.out, f"{name}.safetensors")
        save_file(tensors, path, metadata=meta)
        print(path, os.path.getsize(path), "bytes", json.dumps(scores))


if __name__ == "__main__":
    main()
