"""Self-contained PyTorch TinyNetwork (NATS-Bench topology search space).

Module structure, and therefore every ``state_dict()`` name, follows
NATS-Bench's ``xautodl.models.cell_infers.tiny_network.TinyNetwork`` (see
SPEC.md sections 1-2), so that parameters can be exchanged by name:

    stem.0.weight                      conv3x3 3->C, no bias
    stem.1.{weight,bias,running_mean,running_var,num_batches_tracked}
    cells.{i}.layers.{e}.op.1.weight   ReLUConvBN conv (normal cell, edge e)
    cells.{i}.layers.{e}.op.2.*        ReLUConvBN BN
    cells.{i}.conv_a.op.{1,2}.*        reduction block, stride-2 ReLUConvBN
    cells.{i}.conv_b.op.{1,2}.*        reduction block, stride-1 ReLUConvBN
    cells.{i}.downsample.1.weight      AvgPool2d(2,2) -> conv1x1 shortcut
    lastact.0.*                        head BN (lastact = BN, ReLU)
    classifier.{weight,bias}

Only ``torch`` is required. ``forward`` returns the logits only (NATS-Bench's
returns ``(features, logits)``).
"""

from __future__ import annotations

import torch
import torch.nn as nn

OP_NAMES = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (dst, src) in the order NATS-Bench creates a cell's layers.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


def parse_arch(arch: str):
    """'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' -> list of 6 op names in EDGES order."""
    nodes = arch.strip().split("+")
    if len(nodes) != 3:
        raise ValueError(f"expected 3 nodes in arch string, got {arch!r}")
    ops = []
    for dst, node in enumerate(nodes, start=1):
        items = [t for t in node.split("|") if t]
        if len(items) != dst:
            raise ValueError(f"node {dst} must have {dst} inputs: {node!r}")
        for want_src, item in enumerate(items):
            op, src = item.split("~")
            if int(src) != want_src:
                raise ValueError(f"node {dst}: inputs must be in source order: {node!r}")
            if op not in OP_NAMES:
                raise ValueError(f"unknown op {op!r}")
            ops.append(op)
    return ops


class ReLUConvBN(nn.Module):
    def __init__(self, c_in, c_out, kernel, stride, padding):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True),
        )

    def forward(self, x):
        return self.op(x)


class Zero(nn.Module):
    def forward(self, x):
        return x.mul(0.0)


class Identity(nn.Module):
    def forward(self, x):
        return x


class Pooling(nn.Module):
    """avg_pool_3x3 with C_in == C_out: no preprocess, ``op`` is the pool."""

    def __init__(self):
        super().__init__()
        self.op = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    def forward(self, x):
        return self.op(x)


def make_op(name: str, c: int) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3, 1, 1)
    if name == "avg_pool_3x3":
        return Pooling()
    raise ValueError(name)


class InferCell(nn.Module):
    def __init__(self, ops, c):
        super().__init__()
        self.layers = nn.ModuleList(make_op(op, c) for op in ops)
        self.ops = list(ops)

    def forward(self, x):
        nodes = [x]
        e = 0
        for dst in (1, 2, 3):
            acc = None
            for src in range(dst):
                y = self.layers[e](nodes[src])
                acc = y if acc is None else acc + y
                e += 1
            nodes.append(acc)
        return nodes[3]


class ResNetBasicblock(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
        )

    def forward(self, x):
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class TinyNetwork(nn.Module):
    def __init__(self, arch: str, C: int = 16, N: int = 5, num_classes: int = 10):
        super().__init__()
        ops = parse_arch(arch)
        self.arch = arch
        self.stem = nn.Sequential(
            nn.Conv2d(3, C, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(C)
        )
        chans = [C] * N + [2 * C] + [2 * C] * N + [4 * C] + [4 * C] * N
        reds = [False] * N + [True] + [False] * N + [True] + [False] * N
        self.cells = nn.ModuleList()
        c_prev = C
        for c_cur, red in zip(chans, reds):
            if red:
                self.cells.append(ResNetBasicblock(c_prev, c_cur))
            else:
                self.cells.append(InferCell(ops, c_cur))
            c_prev = c_cur
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x):
        h = self.stem(x)
        for cell in self.cells:
            h = cell(h)
        h = self.lastact(h)
        h = self.global_pooling(h).flatten(1)
        return self.classifier(h)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="print parameter count / state_dict names")
    ap.add_argument("--arch", required=True)
    ap.add_argument("--C", type=int, default=16)
    ap.add_argument("--N", type=int, default=5)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--names", action="store_true")
    a = ap.parse_args()
    m = TinyNetwork(a.arch, a.C, a.N, a.classes)
    print(count_params(m))
    if a.names:
        for k, v in m.state_dict().items():
            print(k, tuple(v.shape))
