//! What the data say about the fitted laws: structured warnings, each with a code, the
//! numbers behind it and a concrete suggestion. `fits.json` carries them, the chapter shows
//! them at the top, and `checks:` can gate on their codes (`fits.warning_codes`).
//!
//! | code | when |
//! |---|---|
//! | `runs_left_out` | planned runs failed or diverged and are not in the fits (named) |
//! | `too_few_levels` | under 3 distinct sizes or token counts, or under 2 runs per parameter |
//! | `param_at_bound` | a parameter ran to the edge of what the fit can express: E → 0 (below 10⁻³ of the lowest loss), an exponent ≤ 0.01 or ≥ 3 |
//! | `interval_degenerate` | a bootstrap interval of (near) zero width, or one the resamples did not move |
//! | `e_below_entropy` | E below the data's known entropy rate (no model can beat it), by more than 1 % or with its whole interval below |
//! | `e_interval_excludes_entropy` | E's interval does not reach the known entropy rate |
//! | `e_unidentified` | E's bootstrap interval is wider than E itself or reaches zero |
//! | `reduced_law_preferred` | a reduced law (E fixed, or E = 0) fits as well with fewer parameters (ΔAIC) |
//! | `exponent_implausible` | α or β outside [`PLAUSIBLE_EXPONENTS`] |
//! | `residual_structure` | the residuals' signs run in long blocks along N or D (Wald–Wolfowitz runs test) |
//! | `optimum_outside_grid` | the compute-optimal tokens per parameter lies outside the grid's range of D/N |
//! | `lr_at_edge` | a point's best learning rate is the smallest or largest swept |
//! | `extrapolation_far` | the final budget is more than [`FAR_EXTRAPOLATION`]× the largest trained run |
//! | `interval_understated`, `bootstrap_failures` | bootstrap intervals from few runs, or many failed refits |
//! | `fit_problem` | a law could not be fitted, or an IsoFLOP budget was refused (the message says why) |

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::chinchilla::Point;
use super::reduced::Candidate;
use super::suite::{ChinchillaReport, FitReport};

/// Exponents published laws report lie in 0.07–0.6: Kaplan et al. 2020 (α_N 0.076,
/// α_D 0.095), Hoffmann et al. 2022 (α 0.34, β 0.28), Besiroglu et al. 2024 (0.35, 0.37),
/// DeepSeek LLM 2024 and Porian et al. 2024 (within that span). A margin either side:
/// outside [0.05, 1.0] a fitted exponent is more likely an artefact of the grid than a law.
pub const PLAUSIBLE_EXPONENTS: [f64; 2] = [0.05, 1.0];

/// A final budget more than this many times the largest trained run's compute is flagged.
pub const FAR_EXTRAPOLATION: f64 = 10.0;

/// One structured warning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    /// Stable identifier (see the module table).
    pub code: String,
    /// What it is about: `chinchilla.E`, `runs`, `allocation`, …
    pub subject: String,
    pub message: String,
    /// What to do about it.
    pub suggestion: String,
    /// The numbers behind it.
    #[serde(default)]
    pub values: BTreeMap<String, f64>,
}

impl Warning {
    pub fn new(code: &str, subject: &str, message: String, suggestion: &str) -> Self {
        Warning {
            code: code.into(),
            subject: subject.into(),
            message,
            suggestion: suggestion.into(),
            values: BTreeMap::new(),
        }
    }

    /// A problem reported by a fit itself (a law not fitted, a refused budget).
    pub fn problem(message: impl Into<String>) -> Self {
        Warning::new(
            "fit_problem",
            "fits",
            message.into(),
            "see the message; more runs or a wider grid usually help",
        )
    }

    fn with(mut self, key: &str, value: f64) -> Self {
        self.values.insert(key.into(), value);
        self
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {} — {}", self.code, self.message, self.suggestion)
    }
}

/// A planned run that is not among the fitted points.
#[derive(Debug, Clone, PartialEq)]
pub struct LeftOut {
    pub name: String,
    /// `diverged` or `failed`.
    pub status: String,
    pub reason: String,
}

/// What the diagnostics need besides the fits.
#[derive(Debug, Clone, Default)]
pub struct Evidence<'a> {
    /// The fitted points (N in the convention of the Chinchilla fit).
    pub points: &'a [Point],
    /// Compute of each fitted run.
    pub flops: &'a [f64],
    /// The data's true entropy rate and its standard error (synthetic data).
    pub entropy: Option<(f64, f64)>,
    pub left_out: &'a [LeftOut],
    /// The final run's compute budget.
    pub final_budget: Option<f64>,
}

fn distinct(values: impl Iterator<Item = f64>) -> usize {
    let mut v: Vec<u64> = values.map(f64::to_bits).collect();
    v.sort_unstable();
    v.dedup();
    v.len()
}

/// Every warning the fits and the evidence call for, in a fixed order.
pub fn diagnose(report: &FitReport, evidence: &Evidence) -> Vec<Warning> {
    let mut out = Vec::new();
    if !evidence.left_out.is_empty() {
        let names: Vec<String> = evidence
            .left_out
            .iter()
            .map(|r| format!("{} ({}: {})", r.name, r.status, r.reason))
            .collect();
        out.push(
            Warning::new(
                "runs_left_out",
                "runs",
                format!(
                    "{} planned runs are not in the fits: {}",
                    names.len(),
                    names.join("; ")
                ),
                "read their learning curves; lower the lr for those sizes, or run \
                 `scalebook run --retry-failed` if the failure was transient",
            )
            .with("count", names.len() as f64),
        );
    }
    if let Some(c) = &report.chinchilla {
        chinchilla(c, evidence, &mut out);
    }
    allocation(report, evidence, &mut out);
    if let Some(h) = &report.hyper {
        learning_rates(h, &mut out);
    }
    out
}

fn learning_rates(h: &super::hyper::HyperReport, out: &mut Vec<Warning>) {
    let edge: Vec<String> = h
        .points
        .iter()
        .filter(|p| p.at_edge)
        .map(|p| format!("{} (best lr {:e})", p.point, p.lr))
        .collect();
    if !edge.is_empty() {
        out.push(
            Warning::new(
                "lr_at_edge",
                "learning rate",
                format!(
                    "at {} of {} points the best learning rate is the smallest or largest of the \
                     sweep, so the optimum may lie outside it: {}",
                    edge.len(),
                    h.points.len(),
                    edge.join(", ")
                ),
                "extend `train.lr` beyond that end (a factor of 2 per value is usual)",
            )
            .with("points", edge.len() as f64),
        );
    }
    if h.eta.is_none() {
        out.push(Warning::problem(
            "η*(N, D): the best learning rates cannot be fitted (they need 2+ sizes or token \
             counts, and 4+ points when both vary)",
        ));
    }
}

fn chinchilla(c: &ChinchillaReport, ev: &Evidence, out: &mut Vec<Warning>) {
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
    entropy_checks(c, ev.entropy, min_loss, out);
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
    reduced_preferred(c, ev.entropy, out);
}

/// A reduced law with an AIC at most 2 above the free-E law's (or below it) is worth a
/// warning when it says something the free fit hides: E = 0 fits as well with plausible
/// exponents (the data do not need a floor), or E fixed at the known entropy fits as well
/// while the free E's interval excludes that entropy.
fn reduced_preferred(c: &ChinchillaReport, entropy: Option<(f64, f64)>, out: &mut Vec<Warning>) {
    let Some(free) = c.reduced.iter().find(|r| r.form == "free_e") else {
        return;
    };
    let free_e_disagrees = match (entropy, c.ci.as_ref()) {
        (Some((h, se)), Some(ci)) => ci.e[1] < h - 2.0 * se || ci.e[0] > h + 2.0 * se,
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
        fn(&super::chinchilla::Law) -> f64,
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
    let margin = 2.0 * se;
    // A point estimate a hair below the floor, with an interval that reaches it, is the floor
    // within the fit's uncertainty; below it by more than 1 %, or with the whole interval
    // below, it is an artefact.
    let interval_reaches = ci_e.is_some_and(|[_, hi]| hi >= h - margin);
    if c.e < h - margin && (!interval_reaches || c.e < 0.99 * h) {
        out.push(
            Warning::new(
                "e_below_entropy",
                "chinchilla.E",
                format!(
                    "E = {:.4} is below the data's entropy rate {h:.4} ± {se:.4}: no model can \
                     reach a loss under the entropy, so this floor is an artefact",
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
        && (hi < h - margin || lo > h + margin)
    {
        out.push(
            Warning::new(
                "e_interval_excludes_entropy",
                "chinchilla.E",
                format!(
                    "E's interval [{lo:.4}, {hi:.4}] excludes the data's entropy rate {h:.4}: the \
                     fitted floor is {} the true one",
                    if lo > h { "above" } else { "below" }
                ),
                if lo > h {
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

fn allocation(report: &FitReport, ev: &Evidence, out: &mut Vec<Warning>) {
    let ratios: Vec<f64> = ev.points.iter().map(|p| p.d / p.n).collect();
    let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ratios.iter().copied().fold(0.0, f64::max);
    for a in &report.allocation {
        if !ratios.is_empty() && !(lo..=hi).contains(&a.tokens_per_param) {
            out.push(
                Warning::new(
                    "optimum_outside_grid",
                    "allocation",
                    format!(
                        "for C = {:.3e} FLOPs the law puts the optimum at {:.3} tokens per \
                         parameter, outside the {lo:.3}–{hi:.3} the runs span: the split is an \
                         extrapolation of the law's shape",
                        a.compute, a.tokens_per_param
                    ),
                    "add runs whose tokens per parameter bracket the optimum (an IsoFLOP sweep \
                     at that budget does it directly)",
                )
                .with("tokens_per_param", a.tokens_per_param)
                .with("grid_lo", lo)
                .with("grid_hi", hi),
            );
        }
    }
    let largest = ev.flops.iter().copied().fold(0.0, f64::max);
    if let Some(budget) = ev.final_budget
        && largest > 0.0
        && budget > FAR_EXTRAPOLATION * largest
    {
        out.push(
            Warning::new(
                "extrapolation_far",
                "final",
                format!(
                    "the final budget {budget:.3e} FLOPs is {:.1}× the largest trained run \
                     ({largest:.3e}): more than {FAR_EXTRAPOLATION}× past the data",
                    budget / largest
                ),
                "add a larger size or token count to the grid, or lower `final.budget`",
            )
            .with("ratio", budget / largest),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::chinchilla::Law;
    use crate::fit::suite::{AllocationReport, ParamIntervals, Request, Row, fit_all};
    use crate::rng::SplitMix64;
    use crate::study::{BootstrapStarts, FitSpec, GridKind, ParamsConvention};

    const CHINCHILLA: Law = crate::fit::chinchilla::CHINCHILLA_2022;

    /// A hand-made Chinchilla report of `law` with interval `ci` for every parameter
    /// (± `rel` of each value; 0 gives zero width) and bootstrap laws spread the same way.
    fn report(law: Law, rel: f64) -> ChinchillaReport {
        let iv = |v: f64| [v * (1.0 - rel), v * (1.0 + rel)];
        let spread = |k: f64| Law {
            e: law.e * (1.0 + rel * k),
            a: law.a * (1.0 + rel * k),
            b: law.b * (1.0 + rel * k),
            alpha: law.alpha * (1.0 + rel * k),
            beta: law.beta * (1.0 + rel * k),
        };
        ChinchillaReport {
            e: law.e,
            a: law.a,
            b: law.b,
            alpha: law.alpha,
            beta: law.beta,
            objective: 0.0,
            starts: 1,
            starts_at_best: 1,
            grad_norm: 0.0,
            delta: 1e-3,
            params: ParamsConvention::Total,
            points: 25,
            ci: Some(ParamIntervals {
                e: iv(law.e),
                a: iv(law.a),
                b: iv(law.b),
                alpha: iv(law.alpha),
                beta: iv(law.beta),
            }),
            bootstrap_resamples: 40,
            confidence: 0.95,
            bootstrap_laws: (0..40).map(|i| spread(i as f64 / 20.0 - 1.0)).collect(),
            degenerate: Vec::new(),
            reduced: Vec::new(),
        }
    }

    /// 5 sizes × 5 token counts around Chinchilla's optimum, from `law`.
    fn points(law: &Law) -> Vec<Point> {
        let mut out = Vec::new();
        for i in 0..5 {
            for j in 0..5 {
                let n = 1e7 * 3f64.powi(i);
                let d = 2e8 * 3f64.powi(j);
                out.push(Point {
                    n,
                    d,
                    loss: law.loss(n, d),
                });
            }
        }
        out
    }

    fn codes(c: ChinchillaReport, pts: &[Point], entropy: Option<(f64, f64)>) -> Vec<String> {
        let fits = FitReport {
            chinchilla: Some(c),
            ..FitReport::default()
        };
        let flops: Vec<f64> = pts.iter().map(|p| 6.0 * p.n * p.d).collect();
        diagnose(
            &fits,
            &Evidence {
                points: pts,
                flops: &flops,
                entropy,
                ..Evidence::default()
            },
        )
        .into_iter()
        .map(|w| w.code)
        .collect()
    }

    #[test]
    fn a_sound_law_raises_nothing() {
        let pts = points(&CHINCHILLA);
        assert_eq!(
            codes(report(CHINCHILLA, 0.05), &pts, Some((1.69, 0.01))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn e_at_zero_with_a_zero_width_interval() {
        let law = Law {
            e: 5.9e-24,
            ..CHINCHILLA
        };
        let got = codes(report(law, 0.0), &points(&law), None);
        assert!(got.contains(&"param_at_bound".into()), "{got:?}");
        assert!(got.contains(&"interval_degenerate".into()), "{got:?}");
        // Zero width for every parameter: five degenerate intervals.
        assert_eq!(
            got.iter().filter(|c| *c == "interval_degenerate").count(),
            5
        );
    }

    /// An interval of honest width whose resamples almost all returned the fitted value is
    /// degenerate too.
    #[test]
    fn resamples_that_did_not_move() {
        let mut c = report(CHINCHILLA, 0.05);
        for l in c.bootstrap_laws.iter_mut().skip(2) {
            l.e = CHINCHILLA.e;
        }
        assert_eq!(degenerate(&c), vec!["E"]);
        assert!(degenerate(&report(CHINCHILLA, 0.05)).is_empty());
    }

    #[test]
    fn e_below_the_entropy_and_an_interval_that_excludes_it() {
        let law = Law {
            e: 1.2,
            ..CHINCHILLA
        };
        let got = codes(report(law, 0.05), &points(&law), Some((2.295, 0.002)));
        assert!(got.contains(&"e_below_entropy".into()), "{got:?}");
        assert!(
            got.contains(&"e_interval_excludes_entropy".into()),
            "{got:?}"
        );
        let law = Law {
            e: 3.35,
            ..CHINCHILLA
        };
        let got = codes(report(law, 0.03), &points(&law), Some((2.295, 0.002)));
        assert!(!got.contains(&"e_below_entropy".into()), "{got:?}");
        assert!(
            got.contains(&"e_interval_excludes_entropy".into()),
            "{got:?}"
        );
        // 0.1 % below the floor with an interval that reaches it: the floor, within the fit's
        // uncertainty.
        let law = Law {
            e: 0.9979,
            ..CHINCHILLA
        };
        let got = codes(report(law, 0.01), &points(&law), Some((0.999, 0.0)));
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn an_interval_wider_than_e_means_unidentified() {
        let mut c = report(CHINCHILLA, 0.05);
        c.ci.as_mut().unwrap().e = [0.1, 2.5];
        let got = codes(c, &points(&CHINCHILLA), None);
        assert_eq!(got, vec!["e_unidentified".to_string()]);
    }

    #[test]
    fn steep_exponents_are_implausible() {
        let law = Law {
            alpha: 1.29,
            beta: 1.01,
            ..CHINCHILLA
        };
        let got = codes(report(law, 0.05), &points(&law), None);
        assert_eq!(
            got.iter().filter(|c| *c == "exponent_implausible").count(),
            2
        );
    }

    #[test]
    fn too_few_sizes_for_five_parameters() {
        let pts: Vec<Point> = points(&CHINCHILLA).into_iter().take(10).collect();
        let got = codes(report(CHINCHILLA, 0.05), &pts, None);
        assert_eq!(got, vec!["too_few_levels".to_string()]);
    }

    /// Residuals positive for the small models and negative for the large ones: the law
    /// misses a trend along N; alternating signs raise nothing.
    #[test]
    fn residual_signs_in_blocks() {
        let mut pts = points(&CHINCHILLA);
        for (i, p) in pts.iter_mut().enumerate() {
            p.loss *= if i < 12 { 1.01 } else { 0.99 };
        }
        let got = codes(report(CHINCHILLA, 0.05), &pts, None);
        assert_eq!(got, vec!["residual_structure".to_string()], "{got:?}");
        let mut pts = points(&CHINCHILLA);
        for (i, p) in pts.iter_mut().enumerate() {
            // A checkerboard over (size, tokens): signs alternate along N and along D.
            p.loss *= if (i / 5 + i % 5) % 2 == 0 { 1.01 } else { 0.99 };
        }
        assert!(codes(report(CHINCHILLA, 0.05), &pts, None).is_empty());
        assert!(runs_z(&[true, true, true, true, false, false, false, false]).unwrap() < -2.0);
        assert_eq!(runs_z(&[true, true]), None);
    }

    #[test]
    fn allocation_outside_the_grid_and_far_extrapolation() {
        let pts = points(&CHINCHILLA);
        let flops: Vec<f64> = pts.iter().map(|p| 6.0 * p.n * p.d).collect();
        let largest = flops.iter().copied().fold(0.0, f64::max);
        let alloc = |tpp: f64| AllocationReport {
            compute: 1e21,
            n_opt: 1e9,
            d_opt: 1e9 * tpp,
            tokens_per_param: tpp,
            loss: 2.0,
            ci: None,
        };
        let run = |tpp: f64, budget: f64| -> Vec<String> {
            let fits = FitReport {
                allocation: vec![alloc(tpp)],
                ..FitReport::default()
            };
            let ev = Evidence {
                points: &pts,
                flops: &flops,
                final_budget: Some(budget),
                ..Evidence::default()
            };
            diagnose(&fits, &ev).into_iter().map(|w| w.code).collect()
        };
        // The grid's D/N spans 20·3⁻⁴ ≈ 0.25 to 20·3⁴ = 1620.
        assert_eq!(run(5000.0, 2.0 * largest), vec!["optimum_outside_grid"]);
        assert_eq!(run(20.0, 100.0 * largest), vec!["extrapolation_far"]);
        assert!(run(20.0, 2.0 * largest).is_empty());
    }

    #[test]
    fn runs_left_out_are_named() {
        let left = [LeftOut {
            name: "l2-d64-t4e5".into(),
            status: "diverged".into(),
            reason: "training loss became NaN at step 12".into(),
        }];
        let w = diagnose(
            &FitReport::default(),
            &Evidence {
                left_out: &left,
                ..Evidence::default()
            },
        );
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].code, "runs_left_out");
        assert!(
            w[0].message
                .contains("l2-d64-t4e5 (diverged: training loss became NaN")
        );
        assert!(diagnose(&FitReport::default(), &Evidence::default()).is_empty());
    }

    #[test]
    fn a_reduced_law_that_fits_as_well() {
        let cand = |form: &str, aic: f64| Candidate {
            form: form.into(),
            law: Law {
                e: 0.0,
                ..CHINCHILLA
            },
            parameters: if form == "free_e" { 5 } else { 4 },
            rmse_log: 0.01,
            aic,
            delta_aic: 0.0,
        };
        let mut c = report(CHINCHILLA, 0.05);
        c.reduced = vec![cand("free_e", -100.0), cand("zero_e", -101.0)];
        let got = codes(c.clone(), &points(&CHINCHILLA), None);
        assert_eq!(got, vec!["reduced_law_preferred".to_string()]);
        // An E-free law with α ≈ 0.02 only imitates a floor: nothing to say.
        c.reduced[1].law.alpha = 0.02;
        assert!(codes(c.clone(), &points(&CHINCHILLA), None).is_empty());
        // E fixed at the entropy fits as well, but the free E agrees with it: nothing to say.
        c.reduced = vec![cand("free_e", -100.0), cand("fixed_e", -101.0)];
        assert!(codes(c.clone(), &points(&CHINCHILLA), Some((1.69, 0.01))).is_empty());
        // ... and when the free E's interval excludes the entropy, the fixed law is named.
        let got = codes(c, &points(&CHINCHILLA), Some((2.3, 0.01)));
        assert!(got.contains(&"reduced_law_preferred".into()), "{got:?}");
    }

    fn fit(rows: &[Row], entropy: Option<(f64, f64)>) -> FitReport {
        let fits = [FitSpec::Chinchilla {
            bootstrap: 40,
            confidence: 0.95,
            delta: 1e-3,
            grid: GridKind::Coarse,
            bootstrap_starts: BootstrapStarts::Warm,
            params: ParamsConvention::Total,
        }];
        fit_all(
            rows,
            &Request {
                fits: &fits,
                curves: &[],
                holdout: None,
                budgets: vec![6.0 * 3e8 * 6e9],
                seed: 3,
                wall_budget: None,
                max_params: None,
                entropy,
                left_out: Vec::new(),
                final_budget: None,
                sweep: Vec::new(),
            },
        )
    }

    fn rows(law: &Law, noise: f64, sizes: usize, tokens: usize) -> Vec<Row> {
        let mut rng = SplitMix64::new(9);
        let mut out = Vec::new();
        for i in 0..sizes {
            for j in 0..tokens {
                let n = 1e7 * 3f64.powi(i as i32);
                let d = 2e8 * 3f64.powi(j as i32);
                let eps = 1.0 + noise * (2.0 * rng.next_f64() - 1.0);
                out.push(Row {
                    name: format!("r{i}{j}"),
                    params_total: n,
                    params_non_embedding: n,
                    tokens: d,
                    loss: law.loss(n, d) * eps,
                    flops: 6.0 * n * d,
                    budget: None,
                    wall_seconds: None,
                    peak_rss_bytes: None,
                });
            }
        }
        out
    }

    /// End to end through `fit_all`: a known law plus 0.3 % noise is trusted (E's interval
    /// holds the floor, no warning about E); the same law with E = 0 and a pure power law
    /// each say E is at its bound; a 2 × 3 grid says it is too small.
    #[test]
    fn fitted_reports_warn_where_the_data_call_for_it() {
        let good = fit(&rows(&CHINCHILLA, 0.003, 5, 5), Some((1.69, 0.001)));
        let c = good.chinchilla.as_ref().unwrap();
        let ci = c.ci.as_ref().unwrap();
        assert!(ci.e[0] <= 1.69 && 1.69 <= ci.e[1], "{:?}", ci.e);
        for code in [
            "param_at_bound",
            "e_below_entropy",
            "e_interval_excludes_entropy",
            "exponent_implausible",
            "too_few_levels",
            "interval_degenerate",
        ] {
            assert!(
                !good.warning_codes.contains(&code.into()),
                "{:?}",
                good.warnings
            );
        }
        assert_eq!(c.reduced.len(), 3);

        let zero = Law {
            e: 0.0,
            ..CHINCHILLA
        };
        let r = fit(&rows(&zero, 0.003, 5, 5), None);
        assert!(
            r.warning_codes.contains(&"param_at_bound".into())
                || r.warning_codes.contains(&"reduced_law_preferred".into()),
            "{:?}",
            r.warnings
        );

        let small = fit(&rows(&CHINCHILLA, 0.003, 2, 3), Some((1.69, 0.001)));
        assert!(
            small.warning_codes.contains(&"too_few_levels".into()),
            "{:?}",
            small.warnings
        );
    }
}
