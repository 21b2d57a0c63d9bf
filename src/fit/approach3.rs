//! Approach 3 within the suite: the full fit from the start grid, its bootstrap intervals,
//! the reduced laws beside it, the compute-optimal allocation of each budget, and the hold-out
//! check (the law refitted without the held-out runs, asked to predict them).

use super::bootstrap;
use super::chinchilla::{self, StartGrid, allocate};
use super::diagnose::{self, Warning};
use super::law::{At, ScalingLaw};
use super::options::{BootstrapStarts, GridKind, Holdout, ParamsConvention, PinnedE};
use super::reduced;
use super::suite::{
    AllocationReport, ChinchillaReport, FitReport, HoldoutPoint, HoldoutReport, ParamIntervals,
    Request, Row, grid, pair, points,
};

/// The approach-3 options of a study's `chinchilla` fit.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChinchillaOptions {
    pub(super) resamples: u64,
    pub(super) confidence: f64,
    pub(super) delta: f64,
    pub(super) kind: GridKind,
    pub(super) bootstrap_starts: BootstrapStarts,
    pub(super) params: ParamsConvention,
    pub(super) pinned: Option<PinnedE>,
    pub(super) vpnls: bool,
}

impl ChinchillaOptions {
    /// The start grid each bootstrap resample runs (`None`: warm starts).
    fn resample_grid(&self) -> Option<StartGrid> {
        (self.bootstrap_starts != BootstrapStarts::Warm).then(|| grid(self.kind))
    }

    fn pruned(&self) -> bool {
        self.bootstrap_starts == BootstrapStarts::Pruned
    }
}

pub(super) fn fit_chinchilla(
    all: &[&Row],
    request: &Request,
    report: &mut FitReport,
    options: &ChinchillaOptions,
) {
    let &ChinchillaOptions {
        resamples,
        confidence,
        delta,
        kind,
        params,
        ..
    } = options;
    let resample_grid = options.resample_grid();
    let pts = points(all, params);
    let full = match chinchilla::fit(&pts, delta, &grid(kind)) {
        Ok(f) => f,
        Err(e) => {
            report.warnings.push(Warning::problem(e.to_string()));
            return;
        }
    };
    let ci = (resamples > 0)
        .then(|| {
            bootstrap::chinchilla(
                &pts,
                delta,
                &full,
                &request.budgets,
                &[],
                &bootstrap::Resampling {
                    resamples: resamples as usize,
                    confidence,
                    seed: request.seed,
                    grid: resample_grid.as_ref(),
                    pruned: options.pruned(),
                },
            )
        })
        .flatten();
    if let Some(ci) = &ci {
        report.warnings.extend(ci.warnings.iter().cloned());
    }
    let law = full.law;
    let reduced = reduced::compare(&pts, &law, request.entropy.map(|e| e.0), delta);
    let mut chin = ChinchillaReport {
        e: law.e,
        a: law.a,
        b: law.b,
        alpha: law.alpha,
        beta: law.beta,
        objective: full.objective,
        starts: full.starts,
        starts_at_best: full.starts_at_best,
        grad_norm: full.grad_norm,
        delta,
        params,
        points: pts.len(),
        ci: ci.as_ref().map(|c| ParamIntervals {
            e: pair(c.e),
            a: pair(c.a),
            b: pair(c.b),
            alpha: pair(c.alpha),
            beta: pair(c.beta),
        }),
        bootstrap_resamples: resamples as usize,
        confidence,
        bootstrap_laws: ci.as_ref().map(|c| c.laws.clone()).unwrap_or_default(),
        residuals: super::prediction::log_residuals(&pts, &law),
        degenerate: Vec::new(),
        reduced,
        pinned: None,
        vpnls: None,
    };
    chin.pinned = options.pinned.and_then(|floor| {
        let pinned = super::pinned::PinnedOptions {
            floor,
            resamples,
            confidence,
            delta,
            params,
        };
        super::pinned::fit(all, request, pinned, &mut report.warnings)
    });
    if options.vpnls {
        chin.vpnls =
            super::vpnls::report(&pts, &law, delta, chin.pinned.as_ref(), &request.budgets);
    }
    chin.degenerate = diagnose::degenerate(&chin)
        .into_iter()
        .map(String::from)
        .collect();
    report.chinchilla = Some(chin);
    report.allocation = allocation_reports(&law, &request.budgets, ci.as_ref());
    if let Some(holdout) = request.holdout {
        report.holdout = fit_holdout(all, holdout, options, request.seed, &mut report.warnings);
    }
    let overtrain = request
        .fits
        .iter()
        .any(|f| matches!(f, super::options::LawRequest::Overtrain { .. }));
    let fold_grid = grid(kind);
    let laws = super::rollout::FoldLaws {
        delta,
        grid: &fold_grid,
        known_e: request.entropy.map(|e| e.0),
        overtrain,
    };
    if request.rollout {
        report.rollout = super::rollout::rollout(&pts, &laws);
        if report.rollout.is_none() {
            report.warnings.push(Warning::problem(format!(
                "rollout: the audit needs more than {} model sizes",
                super::rollout::MIN_FITTED_SIZES
            )));
        }
    }
    if request.leave_one_out_tokens {
        report.leave_one_out = super::rollout::leave_one_out_tokens(&pts, &laws);
        if report.leave_one_out.is_none() {
            report.warnings.push(Warning::problem(format!(
                "leave_one_out: leaving out a token count needs more than {} of them",
                super::rollout::MIN_FITTED_TOKEN_COUNTS
            )));
        }
    }
}

/// Which of `all` a hold-out leaves out: its kind's name, k, and a flag per row.
pub(super) fn held_out(
    all: &[&Row],
    holdout: Holdout,
    params: ParamsConvention,
) -> (&'static str, u64, Vec<bool>) {
    match holdout {
        Holdout::Largest(k) => {
            let mut sizes: Vec<f64> = all.iter().map(|r| r.n(params)).collect();
            sizes.sort_by(f64::total_cmp);
            sizes.dedup();
            let cut = sizes.len().saturating_sub(k as usize);
            let threshold = sizes.get(cut).copied().unwrap_or(f64::INFINITY);
            (
                "largest",
                k,
                all.iter().map(|r| r.n(params) >= threshold).collect(),
            )
        }
        Holdout::Budgets(k) => {
            let mut budgets: Vec<f64> = all.iter().filter_map(|r| r.budget).collect();
            budgets.sort_by(f64::total_cmp);
            budgets.dedup();
            let cut = budgets.len().saturating_sub(k as usize);
            let threshold = budgets.get(cut).copied().unwrap_or(f64::INFINITY);
            (
                "budgets",
                k,
                all.iter()
                    .map(|r| r.budget.is_some_and(|b| b >= threshold))
                    .collect(),
            )
        }
        Holdout::EpochsAbove(k) => (
            "epochs_above",
            k,
            all.iter()
                .map(|r| r.unique_tokens.is_some_and(|u| r.tokens > k as f64 * u))
                .collect(),
        ),
    }
}

/// The runs a hold-out fits and the runs it predicts: its kind's name, k, (train, test).
pub(super) fn split<'a>(
    all: &[&'a Row],
    holdout: Holdout,
    params: ParamsConvention,
) -> (&'static str, u64, Vec<&'a Row>, Vec<&'a Row>) {
    let (kind, k, held) = held_out(all, holdout, params);
    let side = |want: bool| -> Vec<&Row> {
        all.iter()
            .zip(&held)
            .filter(|(_, h)| **h == want)
            .map(|(r, _)| *r)
            .collect()
    };
    (kind, k, side(false), side(true))
}

/// Each budget's optimum under `law`, with the bootstrap's intervals when there are any.
pub(super) fn allocation_reports(
    law: &chinchilla::Law,
    budgets: &[f64],
    ci: Option<&bootstrap::ChinchillaIntervals>,
) -> Vec<AllocationReport> {
    budgets
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let a = allocate(law, c);
            AllocationReport {
                compute: c,
                n_opt: a.n_opt,
                d_opt: a.d_opt,
                tokens_per_param: a.tokens_per_param,
                loss: a.loss,
                ci: ci.map(|c| c.allocations[i].map(pair)),
            }
        })
        .collect()
}

/// The held-out runs as `predict(row, N, D)` predicts them, with the bootstrap's interval
/// per run when there is one; and the largest and the mean relative error.
pub(super) fn holdout_points(
    test: &[&Row],
    params: ParamsConvention,
    predict: impl Fn(&Row, f64, f64) -> f64,
    ci: Option<&[bootstrap::Interval]>,
) -> (Vec<HoldoutPoint>, f64, f64) {
    let points: Vec<HoldoutPoint> = test
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (n, d) = (r.n(params), r.tokens);
            let predicted = predict(r, n, d);
            HoldoutPoint {
                name: r.name.clone(),
                n,
                d,
                measured: r.loss,
                predicted,
                rel_error: (predicted / r.loss - 1.0).abs(),
                predicted_ci: ci.map(|c| pair(c[i])),
            }
        })
        .collect();
    let max = points.iter().map(|p| p.rel_error).fold(0.0, f64::max);
    let mean = points.iter().map(|p| p.rel_error).sum::<f64>() / points.len() as f64;
    (points, max, mean)
}

fn fit_holdout(
    all: &[&Row],
    holdout: Holdout,
    options: &ChinchillaOptions,
    seed: u64,
    warnings: &mut Vec<Warning>,
) -> Option<HoldoutReport> {
    let &ChinchillaOptions {
        resamples,
        confidence,
        delta,
        kind,
        params,
        ..
    } = options;
    let resample_grid = options.resample_grid();
    let (label, k, train, test) = split(all, holdout, params);
    if test.is_empty() {
        warnings.push(Warning::problem("holdout: no run is held out"));
        return None;
    }
    let pts = points(&train, params);
    // The full start grid again: a hold-out check must not inherit the full fit's optimum.
    let fitted = match chinchilla::fit(&pts, delta, &grid(kind)) {
        Ok(f) => f,
        Err(e) => {
            warnings.push(Warning::problem(format!("holdout: {e}")));
            return None;
        }
    };
    let at: Vec<(f64, f64)> = test.iter().map(|r| (r.n(params), r.tokens)).collect();
    let ci = (resamples > 0)
        .then(|| {
            bootstrap::chinchilla(
                &pts,
                delta,
                &fitted,
                &[],
                &[],
                &bootstrap::Resampling {
                    resamples: resamples as usize,
                    confidence,
                    seed,
                    grid: resample_grid.as_ref(),
                    pruned: options.pruned(),
                },
            )
        })
        .flatten();
    let predict = |r: &Row, n: f64, d: f64| {
        let at = At {
            n,
            d,
            flops: r.flops,
            schedule: None,
        };
        ScalingLaw::loss(&fitted.law, &at).unwrap_or(f64::NAN)
    };
    // Each held-out run is one run: its interval carries the fitted runs' scatter.
    let residuals = super::prediction::log_residuals(&pts, &fitted.law);
    let intervals = ci.as_ref().and_then(|c| {
        let k = chinchilla::PARAMETERS;
        super::prediction::one_run_each(&c.laws, &residuals, k, &at, confidence)
    });
    let (points, rel_error_max, rel_error_mean) =
        holdout_points(&test, params, predict, intervals.as_deref());
    Some(HoldoutReport {
        kind: label.to_string(),
        k,
        fitted_points: train.len(),
        rel_error_max,
        rel_error_mean,
        points,
        law: fitted.law,
        bootstrap_laws: ci.map(|c| c.laws).unwrap_or_default(),
    })
}
