//! The Chinchilla law with its floor pinned (`E: entropy | <value>` of a `chinchilla` fit),
//! beside the free-E fit: L(N, D) = E₀ + A/N^α + B/D^β with E₀ given. A free floor is the
//! parameter small grids place worst (it trades against A and α); pinning it at a floor known
//! from elsewhere — the synthetic language's entropy rate, or a value from a larger study —
//! is how Marin (2025) forecast a run 333× past its ladder within 0.8 %.
//!
//! Fitted like the reduced `fixed_e` form ([`super::reduced`]: Huber δ on ln L, L-BFGS from a
//! 900-start grid over ln A, ln B, α, β), with bootstrap intervals (each resample refined from
//! the optimum), the compute-optimal allocation of every budget, and the study's hold-out
//! check refitted under the same floor. `fits.chinchilla` stays the free-E law; this one is
//! `fits.chinchilla.pinned`, and the final run follows it.

use serde::{Deserialize, Serialize};

use super::approach3::{allocation_reports, holdout_points, split};
use super::bootstrap::{self, Resampling};
use super::chinchilla::{Law, Point};
use super::diagnose::Warning;
use super::options::{Holdout, ParamsConvention, PinnedE};
use super::reduced::{aic, fit_fixed_e, refine_fixed_e};
use super::report::{AllocationReport, HoldoutReport, ParamIntervals};
use super::suite::{Request, Row, pair, points};

/// Parameters fitted with E pinned (A, B, α, β).
pub const PARAMETERS: usize = 4;

/// `fits.chinchilla.pinned`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PinnedReport {
    /// `entropy` (the data's known entropy rate) or `value` (the study's number).
    pub source: String,
    #[serde(flatten)]
    pub law: Law,
    /// Σ Huber_δ of the log residuals at the optimum.
    pub objective: f64,
    pub points: usize,
    /// Root mean squared log residual and AIC (n·ln(SSR/n) + 2·4): the same rows and
    /// residuals as `fits.chinchilla.reduced`, so the AICs compare.
    pub rmse_log: f64,
    pub aic: f64,
    pub confidence: f64,
    pub bootstrap_resamples: usize,
    /// Percentile intervals (E's is the pinned value at both ends).
    pub ci: Option<ParamIntervals>,
    /// Every successful bootstrap refit (bands anywhere are percentiles over these).
    pub bootstrap_laws: Vec<Law>,
    /// ln measured − ln fitted at each fitted run (the scatter a new run's interval carries).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub residuals: Vec<f64>,
    pub allocation: Vec<AllocationReport>,
    /// The study's hold-out check under the same floor.
    pub holdout: Option<HoldoutReport>,
    /// Runs whose measured loss is at or below the floor: no law with that floor reaches them.
    pub below_floor: Vec<String>,
}

/// What the pinned fit needs from the study's chinchilla options.
#[derive(Debug, Clone, Copy)]
pub(super) struct PinnedOptions {
    pub(super) floor: PinnedE,
    pub(super) resamples: u64,
    pub(super) confidence: f64,
    pub(super) delta: f64,
    pub(super) params: ParamsConvention,
}

/// The pinned law on `all`, or a warning saying why there is none.
pub(super) fn fit(
    all: &[&Row],
    request: &Request,
    options: PinnedOptions,
    warnings: &mut Vec<Warning>,
) -> Option<PinnedReport> {
    let (e, source) = match options.floor {
        PinnedE::Value(v) => (v, "value"),
        PinnedE::Entropy => match request.entropy {
            Some((h, _)) => (h, "entropy"),
            None => {
                warnings.push(Warning::problem(
                    "chinchilla.pinned: `E: entropy`, but the runs record no entropy rate; \
                     give the floor as a number",
                ));
                return None;
            }
        },
    };
    let pts = points(all, options.params);
    let Some((law, objective)) = fit_fixed_e(&pts, e, options.delta) else {
        warnings.push(Warning::problem(format!(
            "chinchilla.pinned: the law with E = {e} could not be fitted to {} run(s) (it needs \
             4 or more)",
            pts.len()
        )));
        return None;
    };
    let how = resampling(options, request.seed);
    let refit = |sample: &[Point]| refine_fixed_e(sample, e, options.delta, &law);
    let ci = (options.resamples > 0)
        .then(|| {
            bootstrap::resampled_law(
                &pts,
                &law,
                &request.budgets,
                &[],
                &how,
                &refit,
                "chinchilla.pinned",
            )
        })
        .flatten();
    if let Some(ci) = &ci {
        warnings.extend(ci.warnings.iter().cloned());
    }
    let (aic, rmse_log) = aic(&pts, &law, PARAMETERS);
    let below_floor: Vec<String> = all
        .iter()
        .filter(|r| r.loss <= e)
        .map(|r| r.name.clone())
        .collect();
    if !below_floor.is_empty() {
        warnings.push(floor_above_loss(e, source, &below_floor, all));
    }
    let allocation = allocation_reports(&law, &request.budgets, ci.as_ref());
    let holdout = request
        .holdout
        .and_then(|h| holdout(all, h, e, options, request.seed, warnings));
    Some(PinnedReport {
        source: source.into(),
        law,
        objective,
        points: pts.len(),
        rmse_log,
        aic,
        confidence: options.confidence,
        bootstrap_resamples: options.resamples as usize,
        ci: ci.as_ref().map(|c| ParamIntervals {
            e: [e, e],
            a: pair(c.a),
            b: pair(c.b),
            alpha: pair(c.alpha),
            beta: pair(c.beta),
        }),
        bootstrap_laws: ci.map(|c| c.laws).unwrap_or_default(),
        residuals: super::prediction::log_residuals(&pts, &law),
        allocation,
        holdout,
        below_floor,
    })
}

fn resampling(options: PinnedOptions, seed: u64) -> Resampling<'static> {
    Resampling {
        resamples: options.resamples as usize,
        confidence: options.confidence,
        seed,
        grid: None,
        pruned: false,
    }
}

/// `floor_above_loss`: runs measured at or below the pinned floor.
fn floor_above_loss(e: f64, source: &str, below: &[String], all: &[&Row]) -> Warning {
    let lowest = all.iter().map(|r| r.loss).fold(f64::INFINITY, f64::min);
    let mut w = Warning::new(
        "floor_above_loss",
        "chinchilla.pinned.E",
        format!(
            "E is pinned at {e:.4} ({}), but {} run(s) measured a loss at or below it (lowest \
             {lowest:.4}: {}): no law with this floor can fit them, and its predictions lie \
             above what the runs reach",
            if source == "entropy" {
                "the data's entropy rate"
            } else {
                "the study's value"
            },
            below.len(),
            below.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        ),
        "pin a lower floor (a loss floor lies below every measured loss), or leave E free",
    );
    w.values.insert("E".into(), e);
    w.values.insert("lowest_loss".into(), lowest);
    w.values.insert("runs".into(), below.len() as f64);
    w
}

/// The pinned law refitted (full start grid) without the runs `h` leaves out, and its
/// predictions of them with bootstrap intervals.
fn holdout(
    all: &[&Row],
    h: Holdout,
    e: f64,
    options: PinnedOptions,
    seed: u64,
    warnings: &mut Vec<Warning>,
) -> Option<HoldoutReport> {
    let (kind, k, train, test) = split(all, h, options.params);
    if test.is_empty() {
        return None;
    }
    let pts = points(&train, options.params);
    let Some((law, _)) = fit_fixed_e(&pts, e, options.delta) else {
        warnings.push(Warning::problem(
            "chinchilla.pinned: the hold-out fit failed (too few runs are left to fit)",
        ));
        return None;
    };
    let at: Vec<(f64, f64)> = test
        .iter()
        .map(|r| (r.n(options.params), r.tokens))
        .collect();
    let refit = |sample: &[Point]| refine_fixed_e(sample, e, options.delta, &law);
    let ci = (options.resamples > 0)
        .then(|| {
            bootstrap::resampled_law(
                &pts,
                &law,
                &[],
                &[],
                &resampling(options, seed),
                &refit,
                "chinchilla.pinned.holdout",
            )
        })
        .flatten();
    // Each held-out run is one run: its interval carries the fitted runs' scatter.
    let residuals = super::prediction::log_residuals(&pts, &law);
    let intervals = ci.as_ref().and_then(|c| {
        let confidence = options.confidence;
        super::prediction::one_run_each(&c.laws, &residuals, PARAMETERS, &at, confidence)
    });
    let (points, rel_error_max, rel_error_mean) = holdout_points(
        &test,
        options.params,
        |_, n, d| law.loss(n, d),
        intervals.as_deref(),
    );
    Some(HoldoutReport {
        kind: kind.into(),
        k,
        fitted_points: train.len(),
        rel_error_max,
        rel_error_mean,
        points,
        law,
        bootstrap_laws: ci.map(|c| c.laws).unwrap_or_default(),
    })
}
