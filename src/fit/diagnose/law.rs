//! The checks on a fitted Chinchilla law: too few levels, parameters at a bound, degenerate
//! intervals, E against the known entropy, implausible exponents, structured residuals and
//! reduced laws that fit as well.

use super::{Evidence, PLAUSIBLE_EXPONENTS, Warning, distinct};
use crate::fit::chinchilla::Point;
use crate::fit::reduced::Candidate;
use crate::fit::suite::ChinchillaReport;

pub(super) fn chinchilla(c: &ChinchillaReport, ev: &Evidence, out: &mut Vec<Warning>) {
    let pts = ev.points;
    let sizes = distinct(pts.iter().map(|p| p.n));
    let tokens = distinct(pts.iter().map(|p| p.d));
    if sizes < 3 || tokens < 3 || pts.len() < 10 {
        out.push(
            Warning::new(
                "too_few_levels",
                "chinchilla",
                format!(
                    "{sizes} sizes × {tokens} token counts ({} runs) for a 5-parameter law: each \
                     term needs 3+ levels of its variable and the law 2+ runs per parameter",
                    pts.len()
                ),
                "train at least 3 sizes and 3 token counts (4–5 of each, spanning a decade, is \
                 better)",
            )
            .with("sizes", sizes as f64)
            .with("token_counts", tokens as f64)
            .with("runs", pts.len() as f64),
        );
    }
    let min_loss = pts.iter().map(|p| p.loss).fold(f64::INFINITY, f64::min);
    at_bound(c, min_loss, out);
    degenerate_intervals(c, out);
    entropy_checks(c, ev.entropy, ev.val_floor, min_loss, out);
    for (name, v) in [("alpha", c.alpha), ("beta", c.beta)] {
        let [lo, hi] = PLAUSIBLE_EXPONENTS;
        if !(lo..=hi).contains(&v) {
            out.push(
                Warning::new(
                    "exponent_implausible",
                    &format!("chinchilla.{name}"),
                    format!(
                        "{} = {v:.3} is outside {lo}–{hi}, the span of published laws (Kaplan \
                         2020, Hoffmann 2022, Besiroglu 2024, DeepSeek 2024, Porian 2024: \
                         0.07–0.6)",
                        greek(name)
                    ),
                    "exponents this far out usually mean runs far from convergence or an lr \
                     that does not suit every size: tune the lr per size and widen the grid",
                )
                .with(name, v),
            );
        }
    }
    residual_runs(c, pts, out);
    reduced_preferred(c, ev.entropy, ev.val_floor, out);
}

/// A reduced law with an AIC at most 2 above the free-E law's (or below it) is worth a
/// warning when it says something the free fit hides: E = 0 fits as well with plausible
/// exponents (the data do not need a floor), or E fixed at the known entropy fits as well
/// while the free E's interval excludes that entropy.
fn reduced_preferred(
    c: &ChinchillaReport,
    entropy: Option<(f64, f64)>,
    val_floor: Option<f64>,
    out: &mut Vec<Warning>,
) {
    let Some(free) = c.reduced.iter().find(|r| r.form == "free_e") else {
        return;
    };
    // As in `entropy_checks`: E is held to the span between the entropy and the validation
    // set's own floor.
    let free_e_disagrees = match (entropy, c.ci.as_ref()) {
        (Some((h, se)), Some(ci)) => {
            let v = val_floor.filter(|v| v.is_finite()).unwrap_or(h);
            ci.e[1] < h.min(v) - 2.0 * se || ci.e[0] > h.max(v) + 2.0 * se
        }
        (Some((h, _)), None) => (c.e - h).abs() > 0.05 * h,
        (None, _) => false,
    };
    // An E-free law whose exponent is implausibly small only imitates a floor with a nearly
    // flat power law: it is no alternative reading of the data.
    let plausible = |r: &Candidate| {
        r.law.alpha >= PLAUSIBLE_EXPONENTS[0] && r.law.beta >= PLAUSIBLE_EXPONENTS[0]
    };
    let Some(best) = c
        .reduced
        .iter()
        .filter(|r| {
            (r.form == "zero_e" && plausible(r)) || (r.form == "fixed_e" && free_e_disagrees)
        })
        .filter(|r| r.aic <= free.aic + 2.0)
        .min_by(|a, b| a.aic.total_cmp(&b.aic))
    else {
        return;
    };
    out.push(
        Warning::new(
            "reduced_law_preferred",
            "chinchilla.E",
            format!(
                "the law with {} fits these runs as well as the free-E law with one parameter \
                 fewer (AIC {:.1} against {:.1}): the runs do not support E = {:.4} as a free \
                 parameter",
                form_words(&best.form),
                best.aic,
                free.aic,
                c.e
            ),
            "read the reduced law in \"Which law the data support\"; a free E needs runs \
             closer to convergence (more tokens per parameter)",
        )
        .with("aic_reduced", best.aic)
        .with("aic_free", free.aic),
    );
}

fn greek(name: &str) -> &str {
    match name {
        "alpha" => "α",
        "beta" => "β",
        other => other,
    }
}

/// What a reduced form's name means, in words.
pub fn form_words(form: &str) -> &'static str {
    match form {
        "free_e" => "E fitted",
        "fixed_e" => "E fixed at the data's entropy",
        "zero_e" => "E = 0 (no floor)",
        "pinned_e" => "E pinned",
        "overtrain" => "over-training (one exponent)",
        _ => "another form",
    }
}

fn at_bound(c: &ChinchillaReport, min_loss: f64, out: &mut Vec<Warning>) {
    if c.e < 1e-3 * min_loss {
        out.push(
            Warning::new(
                "param_at_bound",
                "chinchilla.E",
                format!(
                    "E = {:.3e} collapsed to zero (ln E = {:.1}): the fit drove the floor as low \
                     as it can, so the runs do not place it",
                    c.e,
                    c.e.ln()
                ),
                "do not read E (or the allocation) from this law; see the reduced laws, and add \
                 token counts several times larger than the largest",
            )
            .with("E", c.e),
        );
    }
    for (name, v) in [("alpha", c.alpha), ("beta", c.beta)] {
        if !(0.01..3.0).contains(&v) {
            out.push(
                Warning::new(
                    "param_at_bound",
                    &format!("chinchilla.{name}"),
                    format!(
                        "{} = {v:.3e} ran to the edge of the search (≤ 0.01 or ≥ 3)",
                        greek(name)
                    ),
                    "the term it belongs to is not resolved by this grid: widen the range of \
                     that variable",
                )
                .with(name, v),
            );
        }
    }
}

/// Relative width under which an interval counts as zero.
const DEGENERATE_WIDTH: f64 = 1e-6;

/// Names (`E`, `A`, `B`, `alpha`, `beta`) whose bootstrap interval is degenerate: (near) zero
/// width, or fewer than 10 % of the resamples moved the parameter off its fitted value.
pub fn degenerate(c: &ChinchillaReport) -> Vec<&'static str> {
    let Some(ci) = &c.ci else { return Vec::new() };
    let laws = &c.bootstrap_laws;
    type Param = (
        &'static str,
        f64,
        [f64; 2],
        fn(&crate::fit::chinchilla::Law) -> f64,
    );
    let params: [Param; 5] = [
        ("E", c.e, ci.e, |l| l.e),
        ("A", c.a, ci.a, |l| l.a),
        ("B", c.b, ci.b, |l| l.b),
        ("alpha", c.alpha, ci.alpha, |l| l.alpha),
        ("beta", c.beta, ci.beta, |l| l.beta),
    ];
    params
        .into_iter()
        .filter(|&(_, v, [lo, hi], get)| {
            let narrow = hi - lo <= DEGENERATE_WIDTH * v.abs().max(f64::MIN_POSITIVE);
            let moved = laws
                .iter()
                .filter(|l| (get(l) - v).abs() > 1e-9 * v.abs().max(1e-300))
                .count();
            narrow || (!laws.is_empty() && moved * 10 < laws.len())
        })
        .map(|(name, ..)| name)
        .collect()
}

fn degenerate_intervals(c: &ChinchillaReport, out: &mut Vec<Warning>) {
    let Some(ci) = &c.ci else { return };
    for name in degenerate(c) {
        let [lo, hi] = match name {
            "E" => ci.e,
            "A" => ci.a,
            "B" => ci.b,
            "alpha" => ci.alpha,
            _ => ci.beta,
        };
        out.push(
            Warning::new(
                "interval_degenerate",
                &format!("chinchilla.{name}"),
                format!(
                    "the bootstrap interval of {} is [{lo:.4e}, {hi:.4e}]: the resamples did not \
                     move it, so it is not a measure of uncertainty (the chapter shows no \
                     interval for it)",
                    greek(name)
                ),
                "treat the parameter as unidentified by these runs; more sizes and token \
                 counts, or a reduced law, are needed",
            )
            .with("lo", lo)
            .with("hi", hi),
        );
    }
}

fn entropy_checks(
    c: &ChinchillaReport,
    entropy: Option<(f64, f64)>,
    val_floor: Option<f64>,
    min_loss: f64,
    out: &mut Vec<Warning>,
) {
    let ci_e = c.ci.as_ref().map(|ci| ci.e);
    if let Some([lo, hi]) = ci_e
        && !degenerate(c).contains(&"E")
        && (hi - lo > c.e.abs() || lo < 1e-3 * min_loss)
    {
        out.push(
            Warning::new(
                "e_unidentified",
                "chinchilla.E",
                format!(
                    "E = {:.4} but its bootstrap interval [{lo:.4}, {hi:.4}] is wider than E \
                     itself or reaches zero: the runs do not pin the floor down",
                    c.e
                ),
                "compare the reduced laws (E fixed, E = 0) by AIC; add runs nearer \
                 convergence",
            )
            .with("E", c.e)
            .with("lo", lo)
            .with("hi", hi),
        );
    }
    let Some((h, se)) = entropy else { return };
    // The losses were measured on a finite validation set, whose own floor (the true mean
    // −ln p of its targets, when known) differs from the language's entropy by its sampling
    // luck; E estimates that floor. Both are the truth the fit can be held to: E is judged
    // against the span between them.
    let (floor_lo, floor_hi) = match val_floor {
        Some(v) if v.is_finite() => (h.min(v), h.max(v)),
        _ => (h, h),
    };
    let margin = 2.0 * se;
    let seen = match val_floor {
        Some(v) if v.is_finite() && (v - h).abs() > 5e-5 => {
            format!(" (this validation set's own floor: {v:.4})")
        }
        _ => String::new(),
    };
    // A point estimate a hair below the floor, with an interval that reaches it, is the floor
    // within the fit's uncertainty; below it by more than 1 %, or with the whole interval
    // below, it is an artefact.
    let interval_reaches = ci_e.is_some_and(|[_, hi]| hi >= floor_lo - margin);
    if c.e < floor_lo - margin && (!interval_reaches || c.e < 0.99 * floor_lo) {
        out.push(
            Warning::new(
                "e_below_entropy",
                "chinchilla.E",
                format!(
                    "E = {:.4} is below the data's entropy rate {h:.4} ± {se:.4}{seen}: no model \
                     can reach a loss under the entropy, so this floor is an artefact",
                    c.e
                ),
                "use the law with E fixed at the entropy (\"Which law the data support\"), or \
                 add runs that bring the loss closer to the floor",
            )
            .with("E", c.e)
            .with("entropy", h),
        );
    }
    if let Some([lo, hi]) = ci_e
        && (hi < floor_lo - margin || lo > floor_hi + margin)
    {
        out.push(
            Warning::new(
                "e_interval_excludes_entropy",
                "chinchilla.E",
                format!(
                    "E's interval [{lo:.4}, {hi:.4}] excludes the data's entropy rate {h:.4}{seen}: \
                     the fitted floor is {} the true one",
                    if lo > floor_hi { "above" } else { "below" }
                ),
                if lo > floor_hi {
                    "runs far from convergence bias E upward; larger models and more tokens per \
                     parameter move it toward the entropy; the fixed-E law is the honest reading"
                } else {
                    "a floor below the entropy comes from the law's curvature, not from the data; \
                     the fixed-E law is the honest reading, and runs nearer the floor help"
                },
            )
            .with("lo", lo)
            .with("hi", hi)
            .with("entropy", h),
        );
    }
}

/// Wald–Wolfowitz runs test on the signs of the log residuals, ordered by N (then D) and by
/// D (then N): z below −2 (too few sign changes) means the law misses a trend.
fn residual_runs(c: &ChinchillaReport, pts: &[Point], out: &mut Vec<Warning>) {
    if pts.len() < 8 {
        return;
    }
    let law = c.law();
    let resid: Vec<(f64, f64, f64)> = pts
        .iter()
        .map(|p| (p.n, p.d, p.loss.ln() - law.loss(p.n, p.d).ln()))
        .collect();
    for (axis, by_n) in [("N", true), ("D", false)] {
        let mut order = resid.clone();
        order.sort_by(|a, b| {
            let (x, y) = if by_n {
                ((a.0, a.1), (b.0, b.1))
            } else {
                ((a.1, a.0), (b.1, b.0))
            };
            x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1))
        });
        let signs: Vec<bool> = order.iter().map(|r| r.2 > 0.0).collect();
        if let Some(z) = runs_z(&signs)
            && z < -2.0
        {
            let runs = 1 + signs.windows(2).filter(|w| w[0] != w[1]).count();
            out.push(
                Warning::new(
                    "residual_structure",
                    &format!("chinchilla.residuals.{axis}"),
                    format!(
                        "ordered by {axis}, the {} residuals change sign only {} times (runs-test \
                         z = {z:.2}): the law misses a trend along {axis}",
                        signs.len(),
                        runs - 1
                    ),
                    "read the residuals chart; the law's form may not fit this range (a \
                     capability switching on, or runs not converged)",
                )
                .with("z", z)
                .with("runs", runs as f64),
            );
        }
    }
}

/// The runs test's z for a sign sequence (`None` when one sign is missing).
pub fn runs_z(signs: &[bool]) -> Option<f64> {
    let n1 = signs.iter().filter(|s| **s).count() as f64;
    let n2 = signs.len() as f64 - n1;
    if n1 == 0.0 || n2 == 0.0 {
        return None;
    }
    let runs = 1.0 + signs.windows(2).filter(|w| w[0] != w[1]).count() as f64;
    let n = n1 + n2;
    let mean = 2.0 * n1 * n2 / n + 1.0;
    let var = 2.0 * n1 * n2 * (2.0 * n1 * n2 - n) / (n * n * (n - 1.0));
    (var > 0.0).then(|| (runs - mean) / var.sqrt())
}
