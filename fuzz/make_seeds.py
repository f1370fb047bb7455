#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus into fuzz/corpus/<target>/: a few small valid inputs per
target (and a few near misses), so the fuzzers start from the formats' real structure.

Needs numpy and Pillow. Run from the repository root: python3 fuzz/make_seeds.py
The ImageNet16 pickles come from scripts/make_data_fixtures.py's writers, cut to one image.
"""
import io
import os
import pickle
import sys

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "..", "scripts"))
import make_data_fixtures as fixtures  # noqa: E402

ARCH1 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
SEP = b"FEAR-NEXT-FILE"


def write(target, name, blob):
    d = os.path.join(ROOT, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(blob if isinstance(blob, bytes) else blob.encode())


def image(fmt, size, mode="RGB"):
    rng = np.random.default_rng(size)
    channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
    px = rng.integers(0, 256, (size, size, channels), dtype=np.uint8)
    img = Image.fromarray(px.squeeze(-1) if channels == 1 else px, mode)
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


def main():
    for name, s in [("index", "6111"), ("string", ARCH1), ("none", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"),
                    ("bad_op", "|nor_conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|")]:
        write("arch", name, s)

    for name, blob in [("all", b"\x00all"), ("sample", b"\x02sample:5"), ("list", b"\x00 1, 6111 ," + ARCH1.encode()),
                       ("file", b"\x01# archs\n1\n\n" + ARCH1.encode() + b"  # a comment\n15624\n")]:
        write("arch_list", name, blob)

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, 3072, dtype=np.uint8).tobytes()
    write("cifar", "cifar10_one_record", b"\x00" + b"\x07" + pixels)
    write("cifar", "cifar100_one_record", b"\x01" + b"\x13\x63" + pixels)

    fixtures.N = 1
    fixtures.LABELS = [5]
    data, mean = fixtures.expected()
    mean = mean[:2]
    write("imagenet16", "py2_proto2", fixtures.py2_proto2(data, mean))
    write("imagenet16", "py2_proto0", fixtures.py2_proto0(data, mean))
    for p in (2, 4):
        write("imagenet16", "py3_proto%d" % p, pickle.dumps({"data": data, "labels": [5]}, protocol=p))

    png, jpg = image("PNG", 4), image("JPEG", 8)
    write("image_folder", "four_png", SEP.join([png, image("PNG", 4, "L"), image("PNG", 4, "RGBA"), png]))
    write("image_folder", "jpeg_train_only", SEP.join([jpg, jpg, b"", jpg]))
    write("image_folder", "sizes_differ", SEP.join([png, image("PNG", 5), png, png]))

    line = lambda i, score: '{"index":%d,"arch":"a","status":"ok","score":%s,"dataset":"d","seed":0}\n' % (i, score)
    write("results", "two_lines", line(1, "0.5") + line(6111, "null"))
    write("results", "torn", line(1, "0.5") + '{"index":7,"sco')
    write("results", "failed", '{"index":3,"status":"failed","reason":"injected","score":null}\n\n')

    fear_line = lambda i, status, score: ('{"index":%d,"arch":"a","status":"%s","score":%s,"reached_threshold":%s,'
                                          '"stage1_s":1.5,"stage2_s":2.0,"time_s":3.5,"dataset":"cifar10","seed":0}\n'
                                          % (i, status, score, "true" if score != "null" else "false"))
    write("evaluate", "fear", fear_line(0, "ok", "0.8") + fear_line(1, "ok", "0.9") + fear_line(3, "capped", "null")
          + fear_line(6111, "failed", "null") + fear_line(15624, "ok", "0.5"))
    write("evaluate", "shortreg", "".join('{"index":%d,"status":"ok","score":%s,"epochs":10,"batch":256,"time_s":9}\n'
                                          % (i, s) for i, s in [(0, 0.4), (1, 0.6), (2, 0.1), (6111, 0.7)]))
    write("evaluate", "zero_cost", "".join('{"index":%d,"status":"ok","synflow":%s,"synflow_time_s":0.1,"snip":%s,'
                                           '"snip_time_s":0.2,"jacob_cov":%s,"jacob_cov_time_s":0.3}\n' % (i, a, b, c)
                                           for i, a, b, c in [(0, 1e3, 2.5, -40), (1, 5e4, 3.0, -20), (2, 0, 0, "null"),
                                                              (15624, 10, 1.0, -60)]))

    write("ground_truth", "three_rows", b"\x00index,arch,cifar10,cifar100\n1," + ARCH1.encode() + b",93.5,71.0\n6111,,94.0,73.1\n")
    write("ground_truth", "no_arch_column", b"\x01index,cifar100,imagenet16_120\n 5 , 60.5 , 30.25 \n")
    write("ground_truth", "bad_index", b"\x02index,imagenet16_120\n15625,1.0\n")


if __name__ == "__main__":
    main()
