#!/usr/bin/env python3
# A model of the implicit-GEMM convolutions for arch 1 at batch 256 (NOT a measurement): mirrors
# src/engine/ops/conv/launch.rs (tile_plan, backward_weight_plan; keep the constants in step) and reads
# registers from the ptxas reports of the last release build. Prints the JSON that
# bench/results/plan-stats-arch1-b256-igemm-2026-11-29.json holds under ptx_model.
# Usage: python3 scripts/conv-model.py
import json, math, re, glob, os, sys
PIX, CO, THREADS, WTHREADS = 4, 8, 128, 128
BUDGET = (32 << 10) // 4 - 4; MAX_CHUNK = 16
def npow2(x): return 1 << (x - 1).bit_length()
def tile_plan(n, c_src, c_dst, taps, step, phases, qh, qw):
    groups = npow2(math.ceil(min(c_dst, 64) / CO)); glog2 = groups.bit_length() - 1
    slots = THREADS // groups * PIX; tc = min(qw, slots); tr = min(qh, slots // tc)
    ti = max(1, min(slots // (tr * tc), n)) if (tr == qh and tc == qw) else 1
    cw = CO << glog2
    per = lambda tr: ti * ((tr - 1) * step + taps) * ((tc - 1) * step + taps) + taps * taps * cw
    while tr > 1 and per(tr) > BUDGET: tr = math.ceil(tr / 2)
    chunk = min(max(BUDGET // per(tr), 1), MAX_CHUNK, c_src)
    halo = ti * ((tr - 1) * step + taps) * ((tc - 1) * step + taps)
    smem = ((chunk * halo + 3) // 4 * 4 + chunk * taps * taps * cw) * 4
    tiles = math.ceil(qh / tr) * math.ceil(qw / tc)
    blocks = math.ceil(n / ti) * phases * tiles * math.ceil(c_dst / cw)
    return dict(ti=ti, tr=tr, tc=tc, chunk=chunk, channels_per_pass=cw, blocks=blocks, dynamic_smem_bytes=smem, halo=halo)
def wgrad_plan(n, cin, cout, k, s, h, oh, scratch=8 << 20):
    tc = min(max(oh, 1), 32); tr = max(min(oh, 64 // tc), 1)
    items = n * math.ceil(oh / tr) * math.ceil(oh / tc)
    per_split = math.ceil(cin / 8) * math.ceil(cout / 64)
    splits = max(min(512 // per_split, items, scratch // (cout * cin * k * k * 4)), 1)
    halo = ((tr - 1) * s + k) * ((tc - 1) * s + k)
    return dict(tr=tr, tc=tc, splits=splits, blocks=splits * per_split, dynamic_smem_bytes=(tr * tc * 68 + 8 * halo) * 4, items=items, halo=halo)
regs = {}
for sm in (70, 80, 90):
    f = sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'target/release/build/fear-*/out/ptxas_sm%d.txt') % sm), key=os.path.getmtime)[-1]
    t = open(f).read()
    regs[sm] = {m.group(1): int(m.group(2)) for m in re.finditer(r"properties for (fear_conv\w+)\n.*\n.*Used (\d+) registers", t)}
def per_sm(threads, r, smem):  # H100: 65536 registers, 228 KB shared (1 KB reserved per block), 2048 threads, 32 blocks
    by_regs = 65536 // (math.ceil(r * threads / 256) * 256); by_smem = (228 << 10) // (smem + 1024); by_threads = 2048 // threads
    return min(by_regs, by_smem, by_threads, 32)
n = 256; out = {}
for stage, (c, side) in enumerate([(16, 32), (32, 16), (64, 8)], 1):
    k, s = 3, 1
    macs = n * c * c * 9 * side * side
    f = tile_plan(n, c, c, 3, 1, 1, side, side)
    d = tile_plan(n, c, c, 3, 1, 1, side, side)
    w = wgrad_plan(n, c, c, 3, 1, side, side)
    def fwd_global(p, c_src, c_dst, side):
        x = p['blocks'] * c_src * p['halo'] * 4
        wts = p['blocks'] * c_src * 9 * p['channels_per_pass'] * 4
        y = n * c_dst * side * side * 4
        return (x + wts + y) / macs, dict(input_with_halo=x, weights=wts, output=y)
    fb, fparts = fwd_global(f, c, c, side)
    wx = w['items'] * math.ceil(c / 8) * 8 * w['halo'] * 4   # x halo per (item, input-channel block)
    wdy = w['items'] * math.ceil(c / 8) * 64 * w['tr'] * w['tc'] * 4  # dy tile per (item, input-channel block)
    wpart = w['splits'] * c * c * 9 * 4
    wred = wpart + 2 * c * c * 9 * 4
    for name, p, thr in [('fear_conv_forward', f, THREADS), ('fear_conv_backward_input', d, THREADS), ('fear_conv_backward_weight', w, WTHREADS)]:
        p = dict(p); p['waves_on_132_sms'] = round(p['blocks'] / (132 * per_sm(thr, regs[90][name], p['dynamic_smem_bytes'])), 2)
        p['resident_blocks_per_sm_h100_sm90_regs'] = per_sm(thr, regs[90][name], p['dynamic_smem_bytes'])
        p.pop('halo', None); p.pop('items', None)
        if name == 'fear_conv_backward_weight':
            p['global_bytes_per_mac'] = round((wx + wdy + wpart) / macs, 4)
            p['reduce_bytes'] = wred
        else:
            p['global_bytes_per_mac'] = round(fb, 4)
        out.setdefault('stage%d_%dch_%dx%d_conv3x3' % (stage, c, side, side), {})[name] = p
json.dump(dict(regs=regs, stages=out), sys.stdout, indent=1)
