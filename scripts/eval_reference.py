#!/usr/bin/env python3
"""Writes the fixtures of tests/eval.rs: a small ground truth, noisy results files and what
`fear evaluate` must report for them, computed here independently (scipy's spearmanr and
kendalltau; numpy and plain loops for the orderings).

    python3 scripts/eval_reference.py [--csv ../shared/data/nats_tss_200ep_test_acc.csv]

Outputs, in tests/fixtures/eval/:
  ground_truth.csv    300 real NATS-Bench rows (index, arch, cifar10, cifar100), among them
                      6111 and 13714, tied at the top of cifar10 (94.37)
  fear_noisy.jsonl    a FEAR-like results file: score = accuracy / 100 plus noise sized so that
                      Spearman is about 0.87 (what 12 epochs of training give, SPEC 5), rounded
                      to 3 decimals (ties), and 12 lines `capped` without a score
  zero_cost.jsonl     synflow, jacob_cov and snip with their times (for `vote`)
  reference.json      the expected metrics
"""

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "eval"
BINS = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
TOP_K = [1, 10, 50]


def strict_order(values, index):
    """Positions best first; ties by index ascending (numpy's lexsort: last key is primary)."""
    return list(np.lexsort((np.asarray(index), -np.asarray(values))))


def finite_for_ranks(score):
    """Missing scores (None) rank below every score: replaced by something lower than all."""
    known = [s for s in score if s is not None]
    low = min(known) - 1.0
    return np.array([low if s is None else s for s in score], dtype=float)


def none_if_nan(x):
    x = float(x)
    return None if np.isnan(x) else x


def spearman_or_none(a, b):
    if len(a) < 2 or len(set(a)) < 2 or len(set(b)) < 2:
        return None
    return none_if_nan(spearmanr(a, b).statistic)


def metrics(index, truth, score, time):
    """Every metric of one method, by direct computation."""
    n = len(index)
    s = finite_for_ranks(score)
    t_order = strict_order(truth, index)
    s_order = strict_order(s, index)
    bins = []
    for pct in BINS:
        k = n * pct // 100
        members = t_order[:k]
        bins.append({
            "top_pct": pct,
            "n": k,
            "spearman": spearman_or_none(truth[members], s[members]),
            "common_ratio": len(set(members) & set(s_order[:k])) / k if k else None,
            "mean_time_s": float(np.mean(time[members])) if k else None,
        })
    top_k = []
    for k in TOP_K:
        if k > n:
            top_k.append({"k": k, "precision": None, "regret": None})
            continue
        top_k.append({
            "k": k,
            "precision": len(set(t_order[:k]) & set(s_order[:k])) / k,
            "regret": float(truth.max() - truth[s_order[:k]].max()),
        })
    return {
        "n": n,
        "not_ok": sum(x is None for x in score),
        "spearman": none_if_nan(spearmanr(truth, s).statistic),
        "kendall": none_if_nan(kendalltau(truth, s, variant="b").statistic),
        "pairwise_accuracy": pairwise_accuracy(truth, [s_order]),
        "mean_time_s": float(np.mean(time)),
        "top_k": top_k,
        "bins": bins,
    }


def pairwise_accuracy(truth, orders):
    """Over pairs with different ground truth: the share where the majority of `orders` (one
    order: that order) puts the better one first. Plain loops, O(n^2)."""
    n = len(truth)
    places = []
    for order in orders:
        place = [0] * n
        for rank, p in enumerate(order):
            place[p] = rank
        places.append(place)
    correct = comparable = 0
    for i in range(n):
        for j in range(i + 1, n):
            if truth[i] == truth[j]:
                continue
            comparable += 1
            votes_i = sum(pl[i] < pl[j] for pl in places)
            correct += (votes_i * 2 > len(places)) == (truth[i] > truth[j])
    return correct / comparable


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", default=str(Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "nats_tss_200ep_test_acc.csv"))
    args = ap.parse_args()
    rows = {int(r["index"]): r for r in csv.DictReader(open(args.csv))}
    rng = np.random.default_rng(20240612)
    picked = sorted(set(rng.choice(15625, 298, replace=False).tolist()) | {6111, 13714})[:300]
    assert {6111, 13714} <= set(picked)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "ground_truth.csv", "w") as f:
        f.write("index,arch,cifar10,cifar100\n")
        for i in picked:
            r = rows[i]
            f.write(f"{i},{r['arch']},{r['cifar10']},{r['cifar100']}\n")

    index = np.array(picked)
    truth = np.array([float(rows[i]["cifar10"]) for i in picked])
    # Noise sized for a Spearman near 0.87 over these 300; rounding to 3 decimals makes ties.
    noise = rng.normal(0.0, 0.010, len(picked))
    score = [round(float(t / 100 + e), 3) for t, e in zip(truth, noise)]
    capped = set(rng.choice(len(picked), 12, replace=False).tolist())
    stage1 = np.round(np.maximum(1.0, (100 - truth) * 3 + rng.normal(0, 5, len(picked))), 3)
    time = np.round(stage1 + 40.0, 3)
    fear_score = [None if p in capped else s for p, s in enumerate(score)]
    with open(OUT / "fear_noisy.jsonl", "w") as f:
        for p, i in enumerate(picked):
            ok = p not in capped
            f.write(json.dumps({
                "index": i, "arch": rows[i]["arch"], "status": "ok" if ok else "capped",
                "score": fear_score[p], "reached_threshold": ok, "stage1_s": float(stage1[p]),
                "stage2_s": 40.0 if ok else 0.0, "time_s": float(time[p] if ok else stage1[p]),
                "threshold": 0.6, "dataset": "cifar10", "seed": 0,
            }) + "\n")
    fear_time = np.array([time[p] if p not in capped else stage1[p] for p in range(len(picked))])

    proxies = {}
    for name, sd in [("synflow", 2.5), ("jacob_cov", 3.5), ("snip", 5.0)]:
        proxies[name] = [round(float(t + e), 1) for t, e in zip(truth, rng.normal(0, sd, len(picked)))]
    proxy_time = {name: np.round(0.05 + rng.random(len(picked)) * 0.1, 4) for name in proxies}
    with open(OUT / "zero_cost.jsonl", "w") as f:
        for p, i in enumerate(picked):
            line = {"index": i, "arch": rows[i]["arch"]}
            for name in proxies:
                line[name] = proxies[name][p]
                line[f"{name}_time_s"] = float(proxy_time[name][p])
            f.write(json.dumps(line) + "\n")

    reference = {"fear": metrics(index, truth, fear_score, fear_time)}
    for name in proxies:
        reference[name] = metrics(index, truth, proxies[name], proxy_time[name])
    orders = [strict_order(np.array(proxies[name]), index) for name in ["synflow", "jacob_cov", "snip"]]
    reference["vote"] = {"n": len(picked), "pairwise_accuracy": pairwise_accuracy(truth, orders)}
    with open(OUT / "reference.json", "w") as f:
        json.dump(reference, f, indent=1)
        f.write("\n")
    print(f"fear: spearman {reference['fear']['spearman']:.4f}, kendall {reference['fear']['kendall']:.4f}; "
          f"vote pairwise {reference['vote']['pairwise_accuracy']:.4f}; written to {OUT}")


if __name__ == "__main__":
    main()
