//! `law: overtrain` in `fits.json`: the fitted law with its bootstrap intervals, its AIC
//! beside the Chinchilla forms', its own hold-out check (the study's `holdout:` split) and
//! the compute-optimal allocation it implies.

use serde::{Deserialize, Serialize};

use super::approach3::{holdout_points, split};
use super::chinchilla::{Point, allocate};
use super::diagnose::Warning;
use super::options::{Holdout, ParamsConvention};
use super::overtrain::{self, OvertrainLaw};
use super::suite::{FitReport, HoldoutPoint, Request, Row, points};

/// The options of `law: overtrain`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OvertrainOptions {
    pub resamples: u64,
    pub confidence: f64,
    pub delta: f64,
    pub params: ParamsConvention,
    /// Also estimate the law by variable projection (least squares in L).
    pub vpnls: bool,
}

/// `estimator: vpnls`: the law estimated by least squares in L (the paper's own objective)
/// by variable projection, and — under the study's `holdout:` — refitted so without the
/// held-out runs and asked for them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OvertrainVpnls {
    #[serde(flatten)]
    pub law: OvertrainLaw,
    /// Σ(L̂ − L)² at the optimum, and the Huber-on-log fit's on the same runs.
    pub sse: f64,
    pub huber_fit_sse: f64,
    pub holdout: Option<OvertrainHoldout>,
}

/// Percentile intervals of the paper's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OvertrainCi {
    #[serde(rename = "E")]
    pub e: [f64; 2],
    pub a: [f64; 2],
    pub b: [f64; 2],
    pub eta: [f64; 2],
}

/// The law fitted without the held-out runs, and how it predicts them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OvertrainHoldout {
    /// `largest` or `budgets`, and k.
    pub kind: String,
    pub k: u64,
    pub fitted_points: usize,
    pub law: OvertrainLaw,
    pub points: Vec<HoldoutPoint>,
    pub rel_error_max: f64,
    pub rel_error_mean: f64,
}

/// The optimum for one budget under the law (C = 6ND).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OvertrainAllocation {
    pub compute: f64,
    pub n_opt: f64,
    pub d_opt: f64,
    pub loss: f64,
}

/// `fits.overtrain`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OvertrainReport {
    #[serde(flatten)]
    pub law: OvertrainLaw,
    /// The same law as E + A/N^α + B/D^β (β = α = 2η).
    pub chinchilla_form: super::chinchilla::Law,
    pub params: ParamsConvention,
    pub delta: f64,
    /// Σ Huber_δ of the log residuals at the optimum, the starts searched and how many
    /// reached the optimum.
    pub objective: f64,
    pub starts: usize,
    pub starts_at_best: usize,
    pub points: usize,
    /// Root mean squared log residual and AIC (n·ln(SSR/n) + 2·4), comparable with the
    /// Chinchilla forms' (`fits.chinchilla.reduced`): same rows, same residuals.
    pub rmse_log: f64,
    pub aic: f64,
    pub confidence: f64,
    pub bootstrap_resamples: u64,
    pub ci: Option<OvertrainCi>,
    pub holdout: Option<OvertrainHoldout>,
    pub allocation: Vec<OvertrainAllocation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpnls: Option<OvertrainVpnls>,
}

/// Fit `law: overtrain` to `all` into `report.overtrain`; a problem is a warning.
pub(super) fn fit_overtrain(
    all: &[&Row],
    request: &Request,
    report: &mut FitReport,
    options: OvertrainOptions,
) {
    let pts = points(all, options.params);
    let Some(fitted) = overtrain::fit(&pts, options.delta) else {
        report.warnings.push(Warning::problem(format!(
            "overtrain: the law could not be fitted to {} run(s) (it needs 4 or more with \
             positive N, D and loss)",
            pts.len()
        )));
        return;
    };
    let law = fitted.law;
    let n = pts.len() as f64;
    let ssr: f64 = pts
        .iter()
        .map(|p| (law.loss(p.n, p.d).ln() - p.loss.ln()).powi(2))
        .sum();
    let ci = (options.resamples > 0)
        .then(|| {
            overtrain::intervals(
                &pts,
                options.delta,
                &fitted,
                &[],
                options.resamples as usize,
                options.confidence,
                request.seed,
            )
        })
        .flatten()
        .map(|v| OvertrainCi {
            e: v[0],
            a: v[1],
            b: v[2],
            eta: v[3],
        });
    let allocation = request
        .budgets
        .iter()
        .map(|&c| {
            let a = allocate(&law.chinchilla(), c);
            OvertrainAllocation {
                compute: c,
                n_opt: a.n_opt,
                d_opt: a.d_opt,
                loss: law.loss(a.n_opt, a.d_opt),
            }
        })
        .collect();
    let holdout = request
        .holdout
        .and_then(|h| holdout(all, h, &options, &mut report.warnings, fit_huber));
    let vpnls = options
        .vpnls
        .then(|| vpnls(all, request, &options, &law, &mut report.warnings))
        .flatten();
    report.overtrain = Some(OvertrainReport {
        law,
        chinchilla_form: law.chinchilla(),
        params: options.params,
        delta: options.delta,
        objective: fitted.objective,
        starts: fitted.starts,
        starts_at_best: fitted.starts_at_best,
        points: pts.len(),
        rmse_log: (ssr / n).sqrt(),
        aic: n * (ssr.max(1e-300) / n).ln() + 2.0 * 4.0,
        confidence: options.confidence,
        bootstrap_resamples: options.resamples,
        ci,
        holdout,
        allocation,
        vpnls,
    });
}

/// An over-training fit of some points: the law, or `None` when it cannot be fitted.
type Fitter = fn(&[Point], &OvertrainOptions) -> Option<OvertrainLaw>;

fn fit_huber(pts: &[Point], options: &OvertrainOptions) -> Option<OvertrainLaw> {
    overtrain::fit(pts, options.delta).map(|f| f.law)
}

/// Least squares in L with one shared exponent, by variable projection, in the paper's
/// parameters.
fn fit_vpnls(pts: &[Point], _: &OvertrainOptions) -> Option<OvertrainLaw> {
    super::vpnls::fit_shared(pts).map(|v| OvertrainLaw::from_chinchilla(&v.law))
}

/// `fits.overtrain.vpnls`: the least-squares law and its own hold-out check.
fn vpnls(
    all: &[&Row],
    request: &Request,
    options: &OvertrainOptions,
    huber: &OvertrainLaw,
    warnings: &mut Vec<Warning>,
) -> Option<OvertrainVpnls> {
    let pts = points(all, options.params);
    let Some(law) = fit_vpnls(&pts, options) else {
        warnings.push(Warning::problem(format!(
            "overtrain: variable projection could not fit {} run(s) (it needs 4 or more)",
            pts.len()
        )));
        return None;
    };
    let sse = |l: &OvertrainLaw| super::vpnls::sse(&pts, &l.chinchilla());
    Some(OvertrainVpnls {
        law,
        sse: sse(&law),
        huber_fit_sse: sse(huber),
        holdout: request
            .holdout
            .and_then(|h| holdout(all, h, options, warnings, fit_vpnls)),
    })
}

/// The law refitted (full start grid) without the runs `holdout` leaves out, and its
/// predictions of them.
fn holdout(
    all: &[&Row],
    h: Holdout,
    options: &OvertrainOptions,
    warnings: &mut Vec<Warning>,
    fit: Fitter,
) -> Option<OvertrainHoldout> {
    let (kind, k, train, test) = split(all, h, options.params);
    if test.is_empty() {
        return None;
    }
    let Some(law) = fit(&points(&train, options.params), options) else {
        warnings.push(Warning::problem(
            "overtrain: the hold-out fit failed (too few runs are left to fit)",
        ));
        return None;
    };
    let (points, rel_error_max, rel_error_mean) =
        holdout_points(&test, options.params, |_, n, d| law.loss(n, d), None);
    Some(OvertrainHoldout {
        kind: kind.into(),
        k,
        fitted_points: train.len(),
        law,
        rel_error_max,
        rel_error_mean,
        points,
    })
}
