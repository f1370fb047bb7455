#!/usr/bin/env python3
"""Write PyTorch reference values of the zero-cost proxies (SPEC 5) for tests/zero_cost.rs.

    python3 scripts/make_proxy_fixtures.py [--out tests/fixtures/proxies]

For each case, ``proxies_<name>.safetensors`` holds the network's parameters and BN buffers
(PyTorch default init from ``torch.manual_seed``, float64, state_dict names), the input batch,
the labels, grasp's Hessian-gradient product ``hg/<weight>`` per conv / linear weight, and in
the metadata the arch, network size and every proxy's score, all computed in float64 with
autograd as the zero-cost-nas code computes them:

- snip, grad_norm: from dL/dW of the mean cross-entropy (train-mode BN);
- grasp: the exact Hessian-gradient product by double backward (z = sum(g * dL/dW), z.backward());
- fisher: per conv / linear output channel 0.5 * mean_n (sum_hw act * dL/dact)^2, times the
  weights per channel;
- jacob_cov: input gradient of sum(logits), np.corrcoef, eigenvalues, -sum(log(l+k) + 1/(l+k));
- naswot: K from the codes (input > 0) of every nn.ReLU, log|det K| (np.linalg.slogdet);
- synflow: BN replaced by the identity, |params|, all-ones input of batch 1, sum |W * dR/dW|;
- synflow_bn: the same keeping BN (train mode).
Requires torch, safetensors, numpy.
"""

import argparse
import copy
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

# name, arch, C, N, classes, batch, image_size, seed
CASES = [
    ("arch6111_c2n1", "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|", 2, 1, 10, 6, 8, 1),
    ("arch9_c3n1", "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|", 3, 1, 5, 5, 8, 2),
]


def scored(net):
    return [(n, m) for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def gradient_proxies(net, x, y):
    net = copy.deepcopy(net).train()
    layers = scored(net)
    weights = [m.weight for _, m in layers]
    acts = {}

    def keep(name):
        def hook(_m, _i, out):
            acts[name] = out
        return hook

    handles = [m.register_forward_hook(keep(n)) for n, m in layers]
    loss = F.cross_entropy(net(x), y)
    for h in handles:
        h.remove()
    names = [n for n, _ in layers]
    both = torch.autograd.grad(loss, weights + [acts[n] for n in names])
    grads = both[:len(weights)]
    act_grads = dict(zip(names, both[len(weights):]))
    snip = sum((w * g).abs().sum().item() for w, g in zip(weights, grads))
    grad_norm = sum(g.norm().item() for g in grads)
    fisher = 0.0
    for (n, m) in layers:
        a, ga = acts[n].detach(), act_grads[n]
        g_nk = (a * ga).sum(dim=tuple(range(2, a.dim()))) if a.dim() > 2 else a * ga
        per_channel = g_nk.pow(2).mean(0).mul(0.5)
        fisher += per_channel.sum().item() * int(np.prod(m.weight.shape[1:]))
    # grasp: the exact Hessian-gradient product by double backward.
    net2 = copy.deepcopy(net)
    for p in net2.parameters():
        p.grad = None
    w2 = [m.weight for _, m in scored(net2)]
    loss2 = F.cross_entropy(net2(x), y)
    grad_f = torch.autograd.grad(loss2, w2, create_graph=True)
    z = sum((g.detach() * gf).sum() for g, gf in zip(grads, grad_f))
    hg = torch.autograd.grad(z, w2)
    grasp = sum((-w.detach() * h).sum().item() for w, h in zip(w2, hg))
    hg_named = {f"hg/{n}.weight": h.detach().clone().contiguous() for (n, _), h in zip(scored(net2), hg)}
    return {"snip": snip, "grad_norm": grad_norm, "fisher": fisher, "grasp": grasp}, hg_named


def jacob_cov(net, x):
    net = copy.deepcopy(net).train()
    x = x.clone().requires_grad_(True)
    net(x).backward(torch.ones(x.shape[0], net.classifier.out_features, dtype=x.dtype))
    j = x.grad.reshape(x.shape[0], -1).numpy()
    corrs = np.corrcoef(j)
    v = np.linalg.eigvalsh(corrs)
    k = 1e-5
    return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


def naswot(net, x):
    net = copy.deepcopy(net).train()
    n = x.shape[0]
    K = np.zeros((n, n))

    def hook(_m, inp, _out):
        c = (inp[0].reshape(n, -1) > 0).double().numpy()
        K[:] += c @ c.T + (1 - c) @ (1 - c).T

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    sign, logdet = np.linalg.slogdet(K)
    return float(logdet)


def remove_bn(module):
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.Identity())
        else:
            remove_bn(child)


def synflow(net, image_size, bn):
    net = copy.deepcopy(net).train()
    if not bn:
        remove_bn(net)
    with torch.no_grad():
        for v in net.state_dict().values():
            v.abs_()
    out = net(torch.ones(1, 3, image_size, image_size, dtype=torch.float64))
    out.sum().backward()
    return sum((m.weight * m.weight.grad).abs().sum().item() for _, m in scored(net) if m.weight.grad is not None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "proxies"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    for name, arch, C, N, classes, batch, size, seed in CASES:
        torch.manual_seed(seed)
        net = TinyNetwork(arch, C, N, classes).double()
        x = torch.randn(batch, 3, size, size, dtype=torch.float64)
        y = torch.randint(0, classes, (batch,))
        state = {k: v.clone() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
        scores, hg = gradient_proxies(net, x, y)
        scores["jacob_cov"] = jacob_cov(net, x)
        scores["naswot"] = naswot(net, x)
        scores["synflow"] = synflow(net, size, bn=False)
        scores["synflow_bn"] = synflow(net, size, bn=True)
        tensors = {f"param/{k}": v.contiguous() for k, v in state.items()}
        tensors.update({k: v.contiguous() for k, v in hg.items()})
        tensors["input"] = x.contiguous()
        tensors["labels"] = y.to(torch.int64)
        meta = {"arch": arch, "C": str(C), "N": str(N), "classes": str(classes), "batch": str(batch),
                "image_size": str(size), "scores": json.dumps(scores), "torch": torch.__version__}
        path = os.path.join(a.out, f"proxies_{name}.safetensors")
        save_file(tensors, path, metadata=meta)
        print(path, os.path.getsize(path), "bytes", json.dumps(scores))


if __name__ == "__main__":
    main()
