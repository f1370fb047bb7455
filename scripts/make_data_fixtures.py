#!/usr/bin/env python3
"""Writes the small pickle fixtures of tests/data.rs into tests/fixtures/data/.

Each file holds what an ImageNet16 batch holds: a dict with 'data' (uint8, N x 768), 'labels'
(a list of ints 1..1000) and 'mean' (float64, 768), for N = 7 images with known values:

    data[i, j] = (i * 37 + j * 11 + j // 256 * 5) % 256      (every byte value, quotes and
                                                              backslashes included)
    labels     = [1, 120, 121, 5, 1000, 60, 2]
    mean[j]    = j / 768

Files:
  py2_proto2.pkl   Python 2 cPickle protocol 2, written by hand opcode by opcode as cPickle
                   writes it (SHORT_BINSTRING keys, BINSTRING payload, BINPUT/BINGET memo):
                   what the real ImageNet16 files are. Python 3 cannot produce it.
  py2_proto0.pkl   Python 2 protocol 0 (text: STRING with repr escapes, INT, PUT/GET), by hand.
  py3_proto{0,2,4,5}.pkl   pickle.dumps(obj, protocol=P) from this Python 3 / numpy.

Every file is checked by loading it back with pickle.loads(..., encoding='latin1').
Needs numpy. Run from the repository root: python3 scripts/make_data_fixtures.py
"""
import os
import pickle
import struct

import numpy as np

N = 7
LABELS = [1, 120, 121, 5, 1000, 60, 2]
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "data")


def expected():
    i = np.arange(N)[:, None]
    j = np.arange(768)[None, :]
    data = ((i * 37 + j * 11 + j // 256 * 5) % 256).astype(np.uint8)
    mean = np.arange(768, dtype=np.float64) / 768
    return data, mean


class P2:
    """A by-hand writer of cPickle's protocol-2 output."""

    def __init__(self):
        self.b = bytearray(b"\x80\x02")
        self.memo = 0
        self.globals = {}

    def put(self):
        self.b += b"q" + bytes([self.memo])
        self.memo += 1
        return self.memo - 1

    def get(self, i):
        self.b += b"h" + bytes([i])

    def short_str(self, s):
        s = s.encode("latin1") if isinstance(s, str) else s
        self.b += b"U" + bytes([len(s)]) + s
        self.put()

    def long_str(self, s):
        self.b += b"T" + struct.pack("<i", len(s)) + s
        self.put()

    def int(self, v):
        if 0 <= v < 256:
            self.b += b"K" + bytes([v])
        elif 0 <= v < 65536:
            self.b += b"M" + struct.pack("<H", v)
        else:
            self.b += b"J" + struct.pack("<i", v)

    def glob(self, module, name):
        key = (module, name)
        if key in self.globals:
            self.get(self.globals[key])
        else:
            self.b += b"c" + module.encode() + b"\n" + name.encode() + b"\n"
            self.globals[key] = self.put()

    def dtype(self, code, order):
        self.glob("numpy", "dtype")
        self.short_str(code)
        self.int(0)
        self.int(1)
        self.b += b"\x87"
        self.put()
        self.b += b"R"
        self.put()
        self.b += b"("
        self.int(3)
        self.short_str(order)
        self.b += b"NNN"
        self.b += b"J" + struct.pack("<i", -1)
        self.b += b"J" + struct.pack("<i", -1)
        self.int(0)
        self.b += b"t"
        self.put()
        self.b += b"b"

    def array(self, arr, code, order):
        self.glob("numpy.core.multiarray", "_reconstruct")
        self.glob("numpy", "ndarray")
        self.int(0)
        self.b += b"\x85"
        self.put()
        self.short_str("b")
        self.b += b"\x87"
        self.put()
        self.b += b"R"
        self.put()
        self.b += b"("
        self.int(1)
        for d in arr.shape:
            self.int(d)
        self.b += {1: b"\x85", 2: b"\x86"}[arr.ndim]
        self.put()
        self.dtype(code, order)
        self.b += b"\x89"  # NEWFALSE: not Fortran order
        self.long_str(arr.tobytes())
        self.b += b"t"
        self.put()
        self.b += b"b"


def py2_proto2(data, mean):
    w = P2()
    w.b += b"}"
    w.put()
    w.b += b"("
    w.short_str("data")
    w.array(data, "u1", "|")
    w.short_str("labels")
    w.b += b"]"
    w.put()
    w.b += b"("
    for v in LABELS:
        w.int(v)
    w.b += b"e"
    w.short_str("mean")
    w.array(mean, "f8", "<")
    w.b += b"u."
    return bytes(w.b)


def py2_proto0(data, mean):
    memo = [0]
    out = []

    def put():
        out.append("p%d\n" % memo[0])
        memo[0] += 1
        return memo[0] - 1

    def s(x):
        x = x.encode("latin1") if isinstance(x, str) else x
        out.append("S" + repr(x)[1:] + "\n")  # bytes repr == Python 2 str repr
        put()

    globs = {}

    def glob(m, n):
        if (m, n) in globs:
            out.append("g%d\n" % globs[(m, n)])
        else:
            out.append("c%s\n%s\n" % (m, n))
            globs[(m, n)] = put()

    def array(arr, code, order):
        glob("numpy.core.multiarray", "_reconstruct")
        out.append("(")
        glob("numpy", "ndarray")
        out.append("(I0\nt")
        put()
        s("b")
        out.append("t")
        put()
        out.append("R")
        put()
        out.append("(I1\n(")
        for d in arr.shape:
            out.append("I%d\n" % d)
        out.append("t")
        put()
        glob("numpy", "dtype")
        out.append("(")
        s(code)
        out.append("I0\nI1\nt")
        put()
        out.append("R")
        put()
        out.append("(I3\n")
        s(order)
        out.append("NNNI-1\nI-1\nI0\nt")
        put()
        out.append("bI00\n")
        s(arr.tobytes())
        out.append("t")
        put()
        out.append("b")

    out.append("(d")
    put()
    s("data")
    array(data, "u1", "|")
    out.append("s")
    s("labels")
    out.append("(l")
    put()
    for v in LABELS:
        out.append("I%d\na" % v)
    out.append("s")
    s("mean")
    array(mean, "f8", "<")
    out.append("s.")
    return "".join(out).encode("latin1")


def check(name, blob, data, mean):
    for enc in ("latin1", "bytes"):
        d = pickle.loads(blob, encoding=enc)
        key = (lambda k: k.encode()) if enc == "bytes" and b"data" in d else (lambda k: k)
        assert np.array_equal(d[key("data")], data), (name, enc)
        assert d[key("data")].dtype == np.uint8
        assert list(d[key("labels")]) == LABELS, (name, enc)
        assert np.array_equal(d[key("mean")], mean), (name, enc)


def main():
    os.makedirs(OUT, exist_ok=True)
    data, mean = expected()
    obj = {"data": data, "labels": LABELS, "mean": mean}
    files = {
        "py2_proto2.pkl": py2_proto2(data, mean),
        "py2_proto0.pkl": py2_proto0(data, mean),
    }
    for p in (0, 2, 4, 5):
        files["py3_proto%d.pkl" % p] = pickle.dumps(obj, protocol=p)
    total = 0
    for name, blob in sorted(files.items()):
        check(name, blob, data, mean)
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(blob)
        total += len(blob)
        print("%-16s %6d bytes" % (name, len(blob)))
    print("total %d bytes" % total)


if __name__ == "__main__":
    main()
