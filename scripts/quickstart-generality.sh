#!/usr/bin/env bash
# Does the quickstart's design hold on other facts languages? A seeded rule, fixed before
# any of them was trained, draws three settings — vocabulary from {48, 64, 96, 128}, facts
# log-uniform in [256, 768] (a multiple of 32), Zipf exponent uniform in [1.6, 2.0] (two
# decimals), data seed in 2..999 — and each is trained with reports/quickstart.yaml's design
# unchanged (sizes, token counts, learning rate, µP, final budget). Each becomes a published
# study (reports/generality-K.yaml, its records in reports/generality-K/ and its chapter in the
# book); the table of the four targets per setting is written to book/src/generality.md.
#
#   scripts/quickstart-generality.sh [path/to/scalebook]
#   TABLE_ONLY=1 scripts/quickstart-generality.sh     # rewrite the table from the published records
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-$root/target/release/scalebook}"
cd "$root"
settings=$(python3 - <<'PY'
import math, random
rng = random.Random(20261207)
for k in range(1, 4):
    vocab = rng.choice([48, 64, 96, 128])
    facts = int(round(math.exp(rng.uniform(math.log(256), math.log(768))) / 32)) * 32
    zipf = round(rng.uniform(1.6, 2.0), 2)
    seed = rng.randint(2, 999)
    print(k, vocab, facts, zipf, seed)
PY
)
while read -r k vocab facts zipf seed; do
    name="generality-$k"
    # The table alone reads the published studies as they are: their files are not rewritten.
    if [ -n "${TABLE_ONLY:-}" ]; then
        grep -q "vocab: $vocab, facts: $facts, zipf: $zipf" "reports/$name.yaml"
        continue
    fi
    sed -e "s/^name: quickstart$/name: $name/" \
        -e "s/^store: quickstart$/store: $name/" \
        -e "s/^seed: 1$/seed: $seed/" \
        -e "s/^title: .*/title: \"The quickstart's design on another facts language ($k of 3)\"/" \
        -e "s/^data: { source: synthetic, vocab: 64, facts: 384, zipf: 1.8 }$/data: { source: synthetic, vocab: $vocab, facts: $facts, zipf: $zipf }/" \
        -e "s|^# The quickstart study:.*|# reports/quickstart.yaml's design, unchanged but for the language and seed, drawn by|" \
        -e "s|^# built-in facts language (no download).*|# scripts/quickstart-generality.sh's seeded rule (setting $k of 3).|" \
        -e "/^# cores — and to yield/d" \
        -e "/\*\*How far to trust the pass/,/own luck\./d" \
        reports/quickstart.yaml > "reports/$name.yaml"
    grep -q "vocab: $vocab, facts: $facts, zipf: $zipf" "reports/$name.yaml"
    rm -rf "reports/$name" "book/src/$name"
    start=$(date +%s)
    "$bin" run "reports/$name.yaml" > "/tmp/$name.log" 2>&1 || true
    echo "$name: vocab $vocab, $facts facts, zipf $zipf, seed $seed: $(( $(date +%s) - start )) s" >&2
done <<< "$settings"
python3 - "$settings" <<'PY'
import json, sys
rows, results = [], []


def best_loss(name):
    """The lowest final validation loss among the study's grid runs (not the final run or
    its baseline)."""
    import glob
    losses = []
    for path in glob.glob(f"reports/{name}/runs/*/result.json"):
        r = json.load(open(path))
        if not r["name"].endswith(("-final", "-baseline")) and r.get("val_loss") is not None:
            losses.append(r["val_loss"])
    return min(losses)


def summary(results):
    n = len(results)
    count = lambda key: sum(r[key] for r in results)
    passed = sum(all(r[k] for k in ("e_ok", "ab_ok", "hold_ok", "final_ok", "q_ok")) for r in results)
    above = [r["e_above"] for r in results]
    verdict = (
        "The design holds on every drawn language."
        if passed == n
        else "**The design is not yet general**: the quickstart's own language meets the "
        f"targets, {'none of these does' if passed == 0 else 'not all of these do'} — read the "
        "quickstart's pass as one draw, not a property of the design."
    )
    return f"""
In {passed} of {n} settings the design meets all four targets with no warning that questions
the law. {verdict} Per target: E's interval reaches the floor in {count("e_ok")} of {n} (E lies
{min(above):+.2f} % to {max(above):+.2f} % from the higher of the entropy and the validation
floor; the best grid run of each ends {min(r["best_gap"] for r in results):.1f}–{max(r["best_gap"] for r in results):.1f} % above the validation floor, so E is left to
the law's curvature); α and β are
plausible in {count("ab_ok")}; the held-out width is predicted within 2 % in
{count("hold_ok")}; the final run lands inside its interval in {count("final_ok")}; no warning
questions the law in {count("q_ok")}.
"""


def bending(name):
    """The final run's width (same depth), from the grid's token counts to the final run's:
    each loss's excess over the validation floor, and the local exponent between
    consecutive token counts, −Δln(excess)/Δln D."""
    import glob, math
    runs = [json.load(open(p)) for p in glob.glob(f"reports/{name}/runs/*/result.json")]
    final = next(r for r in runs if r["name"].endswith("-final"))
    floor = final["val_entropy_nats"]
    series = sorted((r["tokens"], r["val_loss"] - floor) for r in runs
                    if (r["layers"], r["d_model"]) == (final["layers"], final["d_model"])
                    and not r["name"].endswith("-baseline") and r.get("val_loss") is not None)
    slopes = [math.log(a[1] / b[1]) / math.log(b[0] / a[0]) for a, b in zip(series, series[1:])]
    return final, floor, series, slopes


def bending_table(bends):
    out = ["| study | width | excess over the validation floor at D = … | local exponent between them |",
           "|---|---|---|---|"]
    for label, (final, floor, series, slopes) in bends.items():
        excess = ", ".join(f"{d / 1e6:.2g}M: {100 * e / floor:.2f} %" for d, e in series)
        out.append(f"| {label} | {final['layers']}-layer {final['d_model']} | {excess} | "
                   f"{' → '.join(f'{s:.2f}' for s in slopes)} |")
    return "\n".join(out) + "\n"


for line in sys.argv[1].splitlines():
    k, vocab, facts, zipf, seed = line.split()
    name = f"generality-{k}"
    fits = json.load(open(f"reports/{name}/studies/{name}/fits.json"))
    c = fits["chinchilla"]
    lo, hi = c["ci"]["E"]
    h = fits["entropy"][0]
    v = fits.get("val_floor", h)
    e_ok = lo <= max(h, v) and hi >= min(h, v)
    ab_ok = 0.05 < c["alpha"] < 1 and 0.05 < c["beta"] < 1
    hold = fits["holdout"]["rel_error_max"]
    chapter = open(f"book/src/{name}/index.md").read()
    final = "✅" if "inside its predicted interval | measured" in chapter and \
        chapter.split("inside its predicted interval | measured")[1].split("\n")[0].endswith("✅ yes |") else "❌"
    q = fits.get("questioning_codes", [])
    yes = lambda b: "✅" if b else "❌"
    results.append({"e_ok": e_ok, "ab_ok": ab_ok, "hold_ok": hold < 0.02,
                    "final_ok": final == "✅", "q_ok": not q,
                    "e_above": 100 * (c["E"] / max(h, v) - 1),
                    "best_gap": 100 * (best_loss(name) / v - 1)})
    rows.append(f"| [{k}]({name}/index.md) | {vocab} | {facts} | {zipf} | {seed} | "
                f"{h:.5f} / {v:.5f} | {c['E']:.5f} [{lo:.5f}, {hi:.5f}] {yes(e_ok)} | "
                f"{c['alpha']:.3f}, {c['beta']:.3f} {yes(ab_ok)} | {100 * hold:.2f} % {yes(hold < 0.02)} | "
                f"{final} | {', '.join(q) if q else 'none'} {yes(not q)} |")
with open("book/src/generality.md", "w") as f:
    f.write("""# The quickstart's design on other languages

`reports/quickstart.yaml` was designed on one facts language. To see whether its design —
four µP widths of 6k–46k parameters, three token counts over 4×, one learning rate, a final
budget 4.05× the largest grid run — is a design or a tuning, `scripts/quickstart-generality.sh`
draws three other facts languages by a seeded rule fixed before any was trained (vocabulary
from {48, 64, 96, 128}, facts log-uniform in [256, 768], Zipf exponent uniform in [1.6, 2.0],
a data seed in 2..999) and trains the design unchanged on each. Each is a published study
with its own chapter (the link in the first column); the table gives the four targets of
the quickstart's chapter for each.

```text
scripts/quickstart-generality.sh      # trains the three studies and writes this table
```

| setting | vocab | facts | zipf | seed | entropy / validation floor | E [interval] reaches the floor | α, β in 0.05–1 | held-out width error < 2 % | final run inside its interval | warnings that question the law |
|---|---:|---:|---:|---:|---|---|---|---|---|---|
""")
    f.write("\n".join(rows) + "\n")
    f.write(summary(results))
    names = [("quickstart", "quickstart")] + [
        (f"setting {l.split()[0]}", f"generality-{l.split()[0]}") for l in sys.argv[1].splitlines()]
    f.write("""
## Why E lands above the floor

A law E + A/N^α + B/D^β says that, at a fixed width, the loss's excess over E falls as one
power of D. Measured against the true floor instead, its local exponent −Δln(excess)/Δln D
stays at β when E is the floor, and falls as D grows only when E lies above it. The runs of the final run's width —
the grid's three token counts, then the final run itself, about 6× further — show what the
law is given to read (excess over each language's validation floor, from the records):

""")
    bends = {label: bending(name) for label, name in names}
    f.write(bending_table(bends))
    drops = {label: slopes[0] - slopes[1] for label, (_, _, _, slopes) in bends.items()}
    fall = all(d > 0 for d in drops.values())
    least = min(drops, key=drops.get)
    f.write(f"""
Inside the grid's 4× the exponent {"falls in every language" if fall else "falls in most languages"}, by
{min(drops.values()):.2f}–{max(drops.values()):.2f} between its two steps: the facts language's
excess is not one power of D (plausibly because the value noise's estimation error and the
rare facts' first sightings fall at different rates), so a single power law
over a free floor reads the bend as a floor above the truth, and its interval, from twelve
runs that the law fits within a fraction of a per cent, is too narrow to reach it. Beyond
the grid the exponent keeps falling on some languages and recovers on others, so what the
final run does against the prediction is not settled by the grid either. The language that
bends least inside the grid is {"the quickstart's own: its pass is that draw" if least == "quickstart" else least}.
""")
PY
echo "wrote book/src/generality.md" >&2
