#!/usr/bin/env bash
# Issue 14 item 5's evidence: does a lower precision rank architectures as FP32 does? FEAR scores
# the same architectures three times: FP32 with seed 0, the lower precision with seed 0, FP32
# with seed 1. The lower precision is as good as FP32 for ranking when its Spearman with FP32
# (same seed) is no lower than the Spearman between the two FP32 seeds (the ranking's own noise).
#
#   scripts/precision-agreement.sh OUT_DIR [PRECISION [ARCHS [fear rank args...]]]
#
# PRECISION defaults to bf16, ARCHS to 24 indices drawn once (a fixed list, so every run scores
# the same architectures; `sample:N` would draw by seed). Without --dataset this is the demo
# (a small synthetic set and network): a check of the pipeline, not evidence for the paper's
# setting; pass e.g. `--device cuda --dataset cifar10:DIR` for that. Writes the three results
# files and agreement.json (both Spearmans, the archs, the command) into OUT_DIR.
set -euo pipefail
out=${1:?usage: scripts/precision-agreement.sh OUT_DIR [PRECISION [ARCHS [fear rank args...]]]}
precision=${2:-bf16}
archs=${3:-$(python3 -c 'import random; r = random.Random(14); print(",".join(str(i) for i in sorted(r.sample(range(15625), 24))))')}
shift $(( $# < 3 ? $# : 3 ))
rank_args=("$@")
mkdir -p "$out"
cd "$(dirname "$0")/.."
fear=${FEAR:-target/release/fear}
[ -x "$fear" ] || cargo build --release
for run in "fp32 0" "$precision 0" "fp32 1"; do
    read -r p seed <<< "$run"
    echo "[precision-agreement] fear rank --precision $p --seed $seed ${rank_args[*]}" >&2
    "$fear" rank --archs "$archs" --precision "$p" --seed "$seed" --out "$out/rank-$p-seed$seed.jsonl" ${rank_args[@]+"${rank_args[@]}"} > /dev/null
done
python3 - "$out" "$precision" "$archs" <<'PY'
import json, sys
out, precision, archs = sys.argv[1], sys.argv[2], sys.argv[3]
def scores(path):
    rows = [json.loads(line) for line in open(path)]
    return {r["index"]: r["score"] for r in rows if r.get("status") == "ok" and r.get("score") is not None}
def ranks(v):
    order = sorted(range(len(v)), key=lambda i: v[i])
    r = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2
        i = j + 1
    return r
def spearman(a, b):
    keys = sorted(set(a) & set(b))
    x, y = ranks([a[k] for k in keys]), ranks([b[k] for k in keys])
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((p - mx) * (q - my) for p, q in zip(x, y))
    sxx, syy = sum((p - mx) ** 2 for p in x), sum((q - my) ** 2 for q in y)
    return (sxy / (sxx * syy) ** 0.5 if sxx and syy else float("nan")), len(keys)
fp32, low, seed1 = (scores(f"{out}/rank-{p}-seed{s}.jsonl") for p, s in (("fp32", 0), (precision, 0), ("fp32", 1)))
(rho_low, n_low), (rho_seeds, n_seeds) = spearman(fp32, low), spearman(fp32, seed1)
result = {"precision": precision, "archs": archs, f"spearman_fp32_vs_{precision}": rho_low, "spearman_fp32_seed0_vs_seed1": rho_seeds,
          "archs_compared": min(n_low, n_seeds), "ranks_like_fp32": rho_low >= rho_seeds}
json.dump(result, open(f"{out}/agreement.json", "w"), indent=1)
print(json.dumps(result, indent=1))
PY
