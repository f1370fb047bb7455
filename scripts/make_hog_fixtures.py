#!/usr/bin/env python3
"""Write HoG reference fixtures for tests/hog.rs (src/features/hog.rs).

Each case is a uint8 image stored planar [3, S, S] (R, G, B planes, as our datasets store it)
and the features scikit-image computes for it with
    hog(img_hwc, orientations=9, pixels_per_cell=(c, c), cells_per_block=(3, 3),
        block_norm='L2-Hys', channel_axis=-1)
on the uint8 HWC image passed directly (skimage converts it to float64 in 0..255, no rescaling).

Output (tests/fixtures/hog/):
  hog.json  header: skimage version, and per case: name, size, cell, orientations, block,
            img_offset (bytes into hog.bin, 3*S*S u8), feat_offset, feat_len (f64 little-endian)
  hog.bin   the raw bytes
Run: python3 scripts/make_hog_fixtures.py
"""
import json
import os

import numpy as np
import skimage
from skimage.feature import hog

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "hog")


def smooth_noise(rng, s):
    x = rng.random((s, s, 3))
    for _ in range(3):
        x = (x + np.roll(x, 1, 0) + np.roll(x, -1, 0) + np.roll(x, 1, 1) + np.roll(x, -1, 1)) / 5
    x = (x - x.min()) / (x.max() - x.min())
    return (x * 255).round().astype(np.uint8)


def structured(s, kind):
    yy, xx = np.mgrid[0:s, 0:s]
    img = np.zeros((s, s, 3), dtype=np.float64)
    if kind == "edges_ramps":
        img[..., 0] = np.where(xx >= s // 2, 200, 30)           # vertical edge (0 / 180 deg)
        img[..., 1] = np.where(yy >= s // 3, 10, 240)           # horizontal edge (90 deg), falling
        img[..., 2] = (xx * 3 + yy * 5) % 256                   # diagonal ramp with wraps
    elif kind == "circle_checker":
        r = np.hypot(yy - s / 2 + 0.5, xx - s / 2 + 0.5)
        img[..., 0] = np.where(r < s / 3, 255, 0)
        img[..., 1] = np.where(((yy // 3) + (xx // 5)) % 2 == 0, 180, 60)
        img[..., 2] = 128                                        # constant channel
    elif kind == "gray_stripes":
        v = 127 + 120 * np.sin(xx * 0.7 + yy * 0.4)
        img[...] = v[..., None]                                  # equal channels: argmax ties
    return img.round().clip(0, 255).astype(np.uint8)


def main():
    rng = np.random.default_rng(20240601)
    cases = [
        ("rand32", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), 8),
        ("smooth32", smooth_noise(rng, 32), 8),
        ("edges32", structured(32, "edges_ramps"), 8),
        ("circle32", structured(32, "circle_checker"), 8),
        ("stripes32", structured(32, "gray_stripes"), 8),
        ("rand16", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), 4),
        ("smooth16", smooth_noise(rng, 16), 4),
        ("edges16", structured(16, "edges_ramps"), 4),
    ]
    blob = bytearray()
    meta = []
    for name, img_hwc, cell in cases:
        s = img_hwc.shape[0]
        f = hog(img_hwc, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(3, 3),
                block_norm="L2-Hys", channel_axis=-1)
        f = np.asarray(f, dtype="<f8")
        planar = np.ascontiguousarray(img_hwc.transpose(2, 0, 1))
        img_off = len(blob)
        blob += planar.tobytes()
        feat_off = len(blob)
        blob += f.tobytes()
        meta.append(dict(name=name, size=s, cell=cell, orientations=9, block=3,
                         img_offset=img_off, feat_offset=feat_off, feat_len=int(f.size)))
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "hog.bin"), "wb") as fh:
        fh.write(bytes(blob))
    with open(os.path.join(OUT, "hog.json"), "w") as fh:
        json.dump(dict(skimage=skimage.__version__, cases=meta), fh, indent=1)
    print(f"{len(cases)} cases, {len(blob)} bytes")


if __name__ == "__main__":
    main()
