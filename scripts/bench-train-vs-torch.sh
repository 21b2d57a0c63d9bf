#!/usr/bin/env bash
# Training throughput of scalebook vs PyTorch eager on the reference configs S1–S4
# (../shared/bench/README.md), alternated config by config for ROUNDS rounds (default 3) in
# one run, so machine noise hits both alike; the summary gives each side's median and the
# median of the per-round ratios (each round's pair ran back to back).
# Needs: a release build (cargo build --release), python3 with torch (pip install torch numpy).
# Prints per measurement: impl config tokens/s step-ms MFU% peak-RSS-MiB (RSS via
# /usr/bin/time for PyTorch, getrusage for scalebook), then one summary line per config.
set -euo pipefail
cd "$(dirname "$0")/.."
SB=${SCALEBOOK:-target/release/scalebook}
# What the local executor gives every training run (src/exec/local.rs).
export MIMALLOC_PURGE_DELAY=${MIMALLOC_PURGE_DELAY:--1}
REF=${REF:-../shared/bench/gpt_torch.py}
ROUNDS=${ROUNDS:-3}
declare -A CFG=([S1]="2 128 4" [S2]="4 256 4" [S3]="6 384 6" [S4]="8 512 8")
# (timed steps, warm-up steps) for scalebook; the reference script uses its own table.
declare -A ST=([S1]="10 2" [S2]="6 2" [S3]="3 1" [S4]="3 1")
out=$(mktemp)
for round in $(seq "$ROUNDS"); do
  for s in ${CONFIGS:-S1 S2 S3 S4}; do
    read -r L D H <<< "${CFG[$s]}"
    read -r N W <<< "${ST[$s]}"
    torch_json=$(/usr/bin/time -f "%M" -o "/tmp/rss.torch.$s" python3 "$REF" --configs "$s" --threads 2)
    rss_kib=$(cat "/tmp/rss.torch.$s")
    echo "$torch_json" | python3 -c "import json,sys; r=json.loads(sys.stdin.read()); print('torch', '$s', round(r['tok_per_s']), round(r['step_s_median']*1000,1), '-', $rss_kib//1024)" | tee -a "$out"
    "$SB" bench train --layers "$L" --d-model "$D" --heads "$H" --steps "$N" --warmup "$W" \
        --threads 2 --peak-gflops "${PEAK_GFLOPS:-349}" --format json \
      | python3 -c "import json,sys; r=json.loads(sys.stdin.read()); print('scalebook', '$s', round(r['tokens_per_second']), round(r['step_ms_median'],1), round(r['mfu']*100,1), r['peak_rss_bytes']>>20)" | tee -a "$out"
  done
done
python3 - "$out" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print("\nmedians: config torch-tok/s scalebook-tok/s ratio-of-medians median-of-round-ratios"
      " [round ratios] torch-peak-RSS-MiB scalebook-peak-RSS-MiB")
for s in sorted({r[1] for r in rows}):
    t = [float(r[2]) for r in rows if r[0] == "torch" and r[1] == s]
    b = [float(r[2]) for r in rows if r[0] == "scalebook" and r[1] == s]
    # Each round's pair ran back to back, so its ratio is the least disturbed by the
    # machine's slow and fast phases.
    rounds = [y / x for x, y in zip(t, b)]
    tr = max(int(r[5]) for r in rows if r[0] == "torch" and r[1] == s)
    br = max(int(r[5]) for r in rows if r[0] == "scalebook" and r[1] == s)
    mt, mb = statistics.median(t), statistics.median(b)
    listed = ", ".join(f"{r:.2f}" for r in rounds)
    print(f"{s} {mt:.0f} {mb:.0f} {mb / mt:.2f}x {statistics.median(rounds):.2f}x [{listed}] {tr} {br}")
PY
rm -f "$out"
