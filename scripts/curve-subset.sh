#!/usr/bin/env bash
# The curve-informed L(N, D) from a subset of the reference grid against the full grid's
# endpoint law. The subset rule, fixed before fitting: every other learning rate of the
# sweep (7.5e-4, 3e-3, 1.2e-2) at the two shorter horizons (8e5 and 1.6e6 tokens), every
# size — 30 of the 75 grid runs, 25.7 % of the grid's training compute (3 of 5 learning
# rates × 2.4 of 5.6 million tokens per size), the learning-rate sweep it needs included.
# Nothing is trained: the subset's runs are the published records, read from a copy of the
# store (the published one is never written).
#
#   scripts/curve-subset.sh [path/to/scalebook]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-$root/target/release/scalebook}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$root/reports/reference" "$work/store"
sed -e 's/^name: reference$/name: reference-subset/' \
    -e 's/^store: reference$/store: store/' \
    -e 's/^tokens: \[8e5, 1.6e6, 3.2e6\]/tokens: [8e5, 1.6e6]/' \
    -e 's/lr: \[7.5e-4, 1.5e-3, 3e-3, 6e-3, 1.2e-2\]/lr: [7.5e-4, 3e-3, 1.2e-2]/' \
    -e '/^final:/d' \
    -e '/^report:/,$d' \
    "$root/reports/reference.yaml" > "$work/subset.yaml"
"$bin" fit "$work/subset.yaml" --format json > "$work/subset.json" 2> "$work/subset.err"
python3 - "$root/reports/reference/studies/reference/fits.json" "$work/subset.json" <<'PY'
import json, sys
full = json.load(open(sys.argv[1]))["chinchilla"]
sub = json.load(open(sys.argv[2]))
informed, endpoint = sub["curve"]["informed"], sub["chinchilla"]
print(f"subset: {sub['points']} points (the best learning rate of each), "
      f"{sum(len(g['runs']) for g in sub['curve']['groups'])} curves")
print("param  full grid (endpoint) [interval]      subset curve-informed [interval]   subset endpoint  inside")
for k in ["E", "alpha", "beta"]:
    lo, hi = full["ci"][k]
    c = informed["ci"][k] if informed["ci"] else [float("nan")] * 2
    inside = "yes" if lo <= informed[k] <= hi else "no"
    print(f"{k:6} {full[k]:.4f} [{lo:.4f}, {hi:.4f}]   {informed[k]:.4f} [{c[0]:.4f}, {c[1]:.4f}]   "
          f"{endpoint[k]:.4f}          {inside}")
PY
