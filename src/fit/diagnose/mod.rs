//! What the data say about the fitted laws: structured warnings, each with a code, the
//! numbers behind it and a concrete suggestion. `fits.json` carries them, the chapter shows
//! them at the top, and `checks:` can gate on their codes (`fits.warning_codes`).
//!
//! | code | when |
//! |---|---|
//! | `runs_left_out` | planned runs failed or diverged and are not in the fits (named) |
//! | `runs_missing` | planned runs are not in the store at all (named, with the sizes and token counts the fits lost) |
//! | `runs_corrupt` | planned runs' records do not read back (named, with why and what the fits lost) |
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
//! | `lr_transfer_outside_sweep` | a transferred learning rate lies outside the swept range |
//! | `lr_transfer_loses` | a checked size's transferred run loses to its own sweep by more than 1 % |
//! | `extrapolation_far` | the final budget is more than [`FAR_EXTRAPOLATION`]× the largest trained run |
//! | `interval_understated`, `bootstrap_failures` | bootstrap intervals from few runs, or many failed refits |
//! | `fit_problem` | a law could not be fitted, or an IsoFLOP budget was refused (the message says why) |
//! | `params_mismatch` | an external trainer built another parameter count than the plan (added by the pipeline, which reads the records) |
//! | `curve_heldout_error` | the curve law's held-out error exceeds its targets (mean 0.5 %, worst 1 % of the final loss) |
//! | `curve_runs_unusable` | runs the curve law could not use (too few points after the burn-in, a rising or unrecorded schedule; named with why) |
//! | `data_repeated` | runs train on more tokens than their unique pool holds (named past 4 epochs; added by [`super::data_constrained_report`], which then fits the data-constrained law too) |
//! | `floor_above_loss` | E is pinned (`E:` of a chinchilla fit) at or above some runs' measured loss (added by [`super::pinned`]) |
//! | `repetition_weakly_identified` | the data-constrained law's R_D* or R_N* fits within 0.1 % of the best objective over more than a factor of 2, or its bootstrap interval spans more than 10× (added by [`super::data_constrained_report`]) |
//! | `metric_flat` | the metric law's error (or a two-step or direct law's accuracy) does not move across the runs (spread within 3 RMS residuals, or moving the wrong way with scale; added by [`super::metric_report`] and [`super::accuracy_report`]) |
//! | `metric_linear` | the metric law barely bends over the runs' losses (γ·ΔL < 0.1): ε and k are not identified apart (added by [`super::metric_report`]) |
//! | `metric_extrapolated` | a run the metric law is asked for lies below the lowest loss it was fitted on (added by [`super::metric_report`]) |
//! | `metric_midpoint_outside` | the two-step law's sigmoid turns at a task loss outside the runs' range (added by [`super::accuracy_report`]) |
//! | `metric_sigmoid_step` | the two-step law's sigmoid turns over a task-loss range holding fewer than 3 runs (added by [`super::accuracy_report`]) |
//! | `cost_mixed_machines` | the cost law's runs were timed on more than one machine (host, CPU, device; added by the pipeline) |

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

mod absent;
mod law;
#[cfg(test)]
mod tests;

pub use law::{degenerate, form_words, runs_z};

use super::chinchilla::Point;
use super::suite::FitReport;

/// Exponents published laws report lie in 0.07–0.6: Kaplan et al. 2020 (α_N 0.076,
/// α_D 0.095), Hoffmann et al. 2022 (α 0.34, β 0.28), Besiroglu et al. 2024 (0.35, 0.37),
/// DeepSeek LLM 2024 and Porian et al. 2024 (within that span). A margin either side:
/// outside [0.05, 1.0] a fitted exponent is more likely an artefact of the grid than a law.
pub const PLAUSIBLE_EXPONENTS: [f64; 2] = [0.05, 1.0];

/// The codes that question the law itself — its parameters, their intervals or the runs
/// under it — rather than qualifying what is read from it (`book/src/trust.md` lists every
/// code with this verdict). A law meets its targets only with none of these.
pub const QUESTIONING_CODES: [&str; 18] = [
    "runs_left_out",
    "runs_missing",
    "runs_corrupt",
    "too_few_levels",
    "param_at_bound",
    "interval_degenerate",
    "e_unidentified",
    "e_below_entropy",
    "e_interval_excludes_entropy",
    "exponent_implausible",
    "residual_structure",
    "interval_understated",
    "bootstrap_failures",
    "fit_problem",
    "curve_heldout_error",
    "lr_transfer_loses",
    "floor_above_loss",
    "metric_flat",
];

/// Whether warning `code` questions the law (see [`QUESTIONING_CODES`]).
pub fn questions_the_law(code: &str) -> bool {
    QUESTIONING_CODES.contains(&code)
}

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

    /// The warning with one more number behind it.
    pub fn with(mut self, key: &str, value: f64) -> Self {
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
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LeftOut {
    pub name: String,
    /// `diverged` or `failed` (recorded so), `missing` (no record) or `corrupt` (a record
    /// that does not read back).
    pub status: String,
    pub reason: String,
    /// Its planned parameters (in the fits' convention) and tokens.
    pub n: f64,
    pub d: f64,
}

impl LeftOut {
    /// Whether the run has no usable record at all (as opposed to a recorded failure).
    pub fn absent(&self) -> bool {
        matches!(self.status.as_str(), "missing" | "corrupt")
    }
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
    /// The validation set's own floor (synthetic data).
    pub val_floor: Option<f64>,
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
    let mut out = absent::warnings(evidence);
    let recorded: Vec<&LeftOut> = evidence.left_out.iter().filter(|r| !r.absent()).collect();
    if !recorded.is_empty() {
        let names: Vec<String> = recorded
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
        law::chinchilla(c, evidence, &mut out);
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
    if let Some(t) = &h.transfer {
        transfer(t, out);
    }
    if let Some(b) = &h.batch {
        batch_sizes(h, b, out);
    }
    if h.eta.is_none() && h.swept.len() > 1 {
        out.push(Warning::problem(
            "η*(N, D): the best learning rates cannot be fitted (they need 2+ sizes or token \
             counts, and 4+ points when both vary)",
        ));
    }
}

/// A batch sweep: a point whose best batch size is at an end of the sweep, and a B* law that
/// could not be fitted.
fn batch_sizes(
    h: &super::hyper::HyperReport,
    b: &super::batch::BatchReport,
    out: &mut Vec<Warning>,
) {
    let edge: Vec<String> = h
        .points
        .iter()
        .filter_map(|p| Some((p, p.batch.as_ref()?)))
        .filter(|(_, c)| c.at_edge)
        .map(|(p, c)| format!("{} (best batch {})", p.point, c.batch))
        .collect();
    if !edge.is_empty() {
        out.push(
            Warning::new(
                "batch_at_edge",
                "batch size",
                format!(
                    "at {} of {} points the best batch size is the smallest or largest of the \
                     sweep, so the optimum may lie outside it and B*(D) is bent toward the \
                     sweep's ends: {}",
                    edge.len(),
                    h.points.len(),
                    edge.join(", ")
                ),
                "extend `train.batch` beyond that end (a factor of 2 per value is usual)",
            )
            .with("points", edge.len() as f64),
        );
    }
    if let Some(why) = &b.unfitted {
        out.push(Warning::new(
            "batch_law_unfitted",
            "batch size",
            format!("the batch-size laws could not be fitted: {why}"),
            "sweep the batch size at 2 or more token counts; the final run trains at \
             `train.batch`'s first value meanwhile",
        ));
    }
}

/// Learning-rate transfer: a transferred learning rate outside the swept range, and a
/// checked size whose transferred run loses to its own sweep by more than the margin.
fn transfer(t: &super::hyper::TransferReport, out: &mut Vec<Warning>) {
    let outside: Vec<String> = t
        .points
        .iter()
        .filter(|p| p.outside_sweep)
        .map(|p| format!("{} (lr {:e})", p.point, p.lr))
        .collect();
    if !outside.is_empty() {
        out.push(
            Warning::new(
                "lr_transfer_outside_sweep",
                "learning rate",
                format!(
                    "{} transferred point(s) train at a learning rate outside the swept {:e}–{:e}, \
                     an extrapolation of the sweep: {}",
                    outside.len(),
                    t.swept_range[0],
                    t.swept_range[1],
                    outside.join(", ")
                ),
                "widen `train.lr` toward those values, or sweep a size nearer them \
                 (`train.lr_transfer.sweep`)",
            )
            .with("points", outside.len() as f64),
        );
    }
    let losing: Vec<(String, f64)> = t
        .points
        .iter()
        .filter_map(|p| Some((p, p.check.as_ref()?)))
        .filter(|(_, c)| c.excess > t.margin)
        .map(|(p, c)| {
            (
                format!(
                    "{} (lr {:e}: {:.2} % above its own best, lr {:e})",
                    p.point,
                    p.lr,
                    100.0 * c.excess,
                    c.best_lr
                ),
                c.excess,
            )
        })
        .collect();
    if !losing.is_empty() {
        let worst = losing.iter().map(|l| l.1).fold(0.0, f64::max);
        out.push(
            Warning::new(
                "lr_transfer_loses",
                "learning rate",
                format!(
                    "the transferred learning rate loses to the checked size's own sweep by more \
                     than {:.0} %: {} — the transferred sizes' points may sit above their \
                     optimum, which bends the law",
                    100.0 * t.margin,
                    losing
                        .iter()
                        .map(|l| l.0.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "sweep that size too (`train.lr_transfer.sweep`), or every size",
            )
            .with("worst_excess", worst),
        );
    }
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
