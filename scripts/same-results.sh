#!/usr/bin/env bash
# Shows that two builds of fear compute the same numbers: runs the same small jobs with both
# binaries (FEAR on the CPU and on the emulated GPU, shortreg, zero-cost proxies on both devices,
# the plan statistics) and diffs their results with the timing fields removed. For refactors
# that must not change behaviour (e.g. `scripts/same-results.sh /tmp/fear-before target/release/fear`).
# Exit status 0 when every result is identical, 1 otherwise.
set -euo pipefail
old=$(realpath "$1")
new=$(realpath "$2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Every field whose name says it is a time (seconds, dates), dropped before comparing.
strip_times='walk(if type == "object" then with_entries(select(.key | test("time|seconds|_s$|date|elapsed|started|finished") | not)) else . end)'
# One job: NAME and the fear arguments; its --out (if any) is a results file written in the job's folder.
jobs=(
  "rank-cpu|rank --archs 1,6111,123 --max-stage1-epochs 2 --threshold 0.001 --stage2-epochs 1 --out results.jsonl"
  "rank-emulated|rank --device emulated --channels 8 --cells-per-stage 1 --synthetic-size 20 --archs 1,6111 --max-stage1-epochs 2 --threshold 0.001 --stage2-epochs 1 --out results.jsonl"
  "shortreg-cpu|shortreg --archs 1,123 --epochs 2 --batch 64 --out results.jsonl"
  "zero-cost-cpu|zero-cost --proxy az_nas,meco,zico,snip,grad_norm,naswot,fisher,jacob_cov --archs 1,6111,123,15624 --out results.jsonl"
  "zero-cost-emulated|zero-cost --device emulated --channels 8 --cells-per-stage 1 --proxy az_nas,meco,zico,snip,grad_norm,naswot,fisher --batch 24 --archs 1,123 --out results.jsonl"
  "plan-stats-emulated|bench --plan-stats --device emulated --arch 1 --batch 256 --json"
  "plan-stats-cpu|bench --plan-stats --device cpu --arch 9930 --batch 64 --json"
)
status=0
for job in "${jobs[@]}"; do
  name=${job%%|*}
  args=${job#*|}
  for side in old new; do
    bin=$old
    [ "$side" = new ] && bin=$new
    dir="$work/$side/$name"
    mkdir -p "$dir"
    # shellcheck disable=SC2086
    if ! (cd "$dir" && FEAR_CACHE_DIR="$work/cache" "$bin" $args > stdout.txt 2> stderr.txt); then
      echo "FAILED    $name ($side): fear $args"
      tail -5 "$dir/stderr.txt"
      exit 1
    fi
    out="$dir/stdout.txt"
    [ -f "$dir/results.jsonl" ] && out="$dir/results.jsonl"
    if [[ "$name" == plan-stats* ]]; then
      jq -S . "$out" > "$dir/compare.json"
    else
      jq -cS "$strip_times" "$out" > "$dir/compare.json"
    fi
  done
  if cmp -s "$work/old/$name/compare.json" "$work/new/$name/compare.json"; then
    echo "same      $name ($(wc -l < "$work/new/$name/compare.json") lines; $SECONDS s so far)"
  else
    echo "DIFFERENT $name"
    diff "$work/old/$name/compare.json" "$work/new/$name/compare.json" | head -20
    status=1
  fi
done
exit $status
