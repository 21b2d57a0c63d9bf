//! `law: metric` in `fits.json`: a downstream metric's law fitted to the runs' recorded
//! metrics, its bootstrap intervals, and the runs it is asked for — predicted from their
//! measured loss, and from compute alone through the study's loss law fitted without them.

use serde::{Deserialize, Serialize};

use super::approach3::split;
use super::diagnose::Warning;
use super::metric::{self, ErrorLaw, ErrorPoint};
use super::options::{MetricForm, MetricRequest, ParamsConvention};
use super::suite::{FitReport, Request, Row};

/// One run the law is asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricPoint {
    pub name: String,
    pub n: f64,
    pub d: f64,
    /// Its measured loss and metric, and the metric the law gives at that loss.
    pub loss: f64,
    pub measured: f64,
    pub predicted: f64,
    pub predicted_ci: Option<[f64; 2]>,
    pub abs_error: f64,
    pub rel_error: f64,
    /// From compute alone: the loss law's prediction of its loss, and the metric there.
    pub predicted_loss: Option<f64>,
    pub predicted_from_compute: Option<f64>,
    pub rel_error_from_compute: Option<f64>,
}

/// The runs the law is asked for and how it does on them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricHoldout {
    /// `predict` (the law's own list) or the study's hold-out (`largest`, `budgets`, …).
    pub kind: String,
    pub fitted_points: usize,
    pub law: ErrorLaw,
    /// Σ(Êrr − Err)² of that fit on its own runs, and the lowest loss among them.
    pub sse: f64,
    pub lowest_fitted_loss: f64,
    pub points: Vec<MetricPoint>,
    pub mean_abs_error: f64,
    pub rel_error_max: f64,
    pub rel_error_mean: f64,
    /// The loss law that predicted the runs' losses from (N, D), fitted without the study's
    /// hold-out: `overtrain`, `overtrain (vpnls)` or `chinchilla`.
    pub loss_law: Option<String>,
    pub rel_error_from_compute_max: Option<f64>,
}

/// Percentile intervals of the law's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricCi {
    pub epsilon: [f64; 2],
    pub k: [f64; 2],
    pub gamma: [f64; 2],
}

/// `fits.metric`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricReport {
    pub form: MetricForm,
    /// The metrics the law's error averages: Err = 1 − their mean.
    pub metrics: Vec<String>,
    pub points: usize,
    #[serde(flatten)]
    pub law: ErrorLaw,
    /// Σ(Êrr − Err)² and its root mean square.
    pub sse: f64,
    pub rmse: f64,
    pub confidence: f64,
    pub bootstrap_resamples: u64,
    pub ci: Option<MetricCi>,
    /// Each run's (loss, measured error) the law was fitted to: the chart's points.
    pub fitted: Vec<[f64; 2]>,
    pub holdout: Option<MetricHoldout>,
}

/// The mean error over `metrics` of a row, when it records every one.
fn error_of(row: &Row, metrics: &[String]) -> Option<f64> {
    let values: Option<Vec<f64>> = metrics
        .iter()
        .map(|m| row.metrics.get(m).copied())
        .collect();
    let values = values?;
    Some(1.0 - values.iter().sum::<f64>() / values.len() as f64)
}

/// The metrics the law averages: the request's, else every metric the first row records.
fn metric_names(all: &[&Row], request: &MetricRequest) -> Vec<String> {
    if !request.metrics.is_empty() {
        return request.metrics.clone();
    }
    all.first()
        .map(|r| r.metrics.keys().cloned().collect())
        .unwrap_or_default()
}

/// Fit `law: metric` to `all` into `report.metric`, after the loss laws (the prediction from
/// compute goes through their hold-out fits); a problem is a warning.
pub(super) fn fit_metric(
    all: &[&Row],
    request: &Request,
    report: &mut FitReport,
    options: &MetricRequest,
) {
    let names = metric_names(all, options);
    let rows: Vec<&Row> = all
        .iter()
        .copied()
        .filter(|r| error_of(r, &names).is_some())
        .collect();
    let missing = all.len() - rows.len();
    if names.is_empty() || rows.len() < 4 {
        report.warnings.push(Warning::problem(format!(
            "metric: the law needs 4 or more runs that record {} ({} of {} do)",
            if names.is_empty() {
                "a metric (add `results.metrics`)".to_string()
            } else {
                names.join(", ")
            },
            rows.len(),
            all.len()
        )));
        return;
    }
    if missing > 0 {
        report.warnings.push(Warning::problem(format!(
            "metric: {missing} run(s) do not record every one of {} and are left out",
            names.join(", ")
        )));
    }
    let point = |r: &Row| ErrorPoint {
        loss: r.loss,
        error: error_of(r, &names).unwrap_or(f64::NAN),
    };
    let pts: Vec<ErrorPoint> = rows.iter().map(|r| point(r)).collect();
    let Some(fitted) = metric::fit(&pts) else {
        report.warnings.push(Warning::problem(
            "metric: the law could not be fitted (the runs' losses do not vary)",
        ));
        return;
    };
    let ci = (options.bootstrap > 0)
        .then(|| {
            metric::intervals(
                &pts,
                &[],
                options.bootstrap as usize,
                options.confidence,
                request.seed,
            )
        })
        .flatten()
        .map(|c| MetricCi {
            epsilon: c.epsilon,
            k: c.k,
            gamma: c.gamma,
        });
    let holdout = holdout(&rows, request, report, options, &names);
    report
        .warnings
        .extend(flat(&pts, &fitted.law, fitted.sse, &names));
    report.warnings.extend(linear(&pts, &fitted.law));
    report
        .warnings
        .extend(holdout.as_ref().and_then(extrapolated));
    report.metric = Some(MetricReport {
        form: options.form,
        metrics: names,
        points: pts.len(),
        law: fitted.law,
        sse: fitted.sse,
        rmse: (fitted.sse / pts.len() as f64).sqrt(),
        confidence: options.confidence,
        bootstrap_resamples: options.bootstrap,
        ci,
        fitted: pts.iter().map(|p| [p.loss, p.error]).collect(),
        holdout,
    });
}

/// The loss law that predicts a held-out run's loss from (N, D): the over-training law's
/// hold-out fit (by least squares when it was estimated so), else the Chinchilla law's.
fn loss_law(report: &FitReport) -> Option<(String, ParamsConvention, super::chinchilla::Law)> {
    if let Some(o) = &report.overtrain {
        if let Some(h) = o.vpnls.as_ref().and_then(|v| v.holdout.as_ref()) {
            return Some(("overtrain (vpnls)".into(), o.params, h.law.chinchilla()));
        }
        if let Some(h) = &o.holdout {
            return Some(("overtrain".into(), o.params, h.law.chinchilla()));
        }
    }
    let c = report.chinchilla.as_ref()?;
    let h = report.holdout.as_ref()?;
    Some(("chinchilla".into(), c.params, h.law))
}

/// The law refitted without the runs it is asked for — its `predict` list, else the study's
/// hold-out — and its predictions of them.
fn holdout(
    rows: &[&Row],
    request: &Request,
    report: &mut FitReport,
    options: &MetricRequest,
    names: &[String],
) -> Option<MetricHoldout> {
    let (kind, train, test): (String, Vec<&Row>, Vec<&Row>) = if options.predict.is_empty() {
        let (kind, _, train, test) = split(rows, request.holdout?, ParamsConvention::Total);
        (kind.to_string(), train, test)
    } else {
        let unknown: Vec<&str> = options
            .predict
            .iter()
            .filter(|p| !rows.iter().any(|r| r.name == **p))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            report.warnings.push(Warning::problem(format!(
                "metric: `predict` names {}, which no run with the metrics has",
                unknown.join(", ")
            )));
        }
        let (test, train) = rows.iter().partition(|r| options.predict.contains(&r.name));
        ("predict".to_string(), train, test)
    };
    if test.is_empty() {
        return None;
    }
    let point = |r: &Row| ErrorPoint {
        loss: r.loss,
        error: error_of(r, names).unwrap_or(f64::NAN),
    };
    let train_pts: Vec<ErrorPoint> = train.iter().map(|r| point(r)).collect();
    let Some(fitted) = metric::fit(&train_pts) else {
        report.warnings.push(Warning::problem(
            "metric: the hold-out fit failed (too few runs are left to fit)",
        ));
        return None;
    };
    let losses: Vec<f64> = test.iter().map(|r| r.loss).collect();
    let ci = (options.bootstrap > 0)
        .then(|| {
            metric::intervals(
                &train_pts,
                &losses,
                options.bootstrap as usize,
                options.confidence,
                request.seed,
            )
        })
        .flatten();
    let chain = loss_law(report);
    let law = fitted.law;
    let points: Vec<MetricPoint> = test
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let measured = point(r).error;
            let predicted = law.error(r.loss);
            let predicted_loss = chain.as_ref().map(|(_, p, l)| l.loss(r.n(*p), r.tokens));
            let from_compute = predicted_loss.map(|l| law.error(l));
            MetricPoint {
                name: r.name.clone(),
                n: r.params_total,
                d: r.tokens,
                loss: r.loss,
                measured,
                predicted,
                predicted_ci: ci.as_ref().and_then(|c| c.at[i]),
                abs_error: (predicted - measured).abs(),
                rel_error: ((predicted - measured) / measured).abs(),
                predicted_loss,
                predicted_from_compute: from_compute,
                rel_error_from_compute: from_compute.map(|e| ((e - measured) / measured).abs()),
            }
        })
        .collect();
    let m = points.len() as f64;
    let from_compute: Vec<f64> = points
        .iter()
        .filter_map(|p| p.rel_error_from_compute)
        .collect();
    Some(MetricHoldout {
        kind,
        fitted_points: train.len(),
        law,
        sse: fitted.sse,
        lowest_fitted_loss: train_pts
            .iter()
            .map(|p| p.loss)
            .fold(f64::INFINITY, f64::min),
        mean_abs_error: points.iter().map(|p| p.abs_error).sum::<f64>() / m,
        rel_error_max: points.iter().map(|p| p.rel_error).fold(0.0, f64::max),
        rel_error_mean: points.iter().map(|p| p.rel_error).sum::<f64>() / m,
        loss_law: chain.map(|(name, _, _)| name),
        rel_error_from_compute_max: (!from_compute.is_empty())
            .then(|| from_compute.iter().copied().fold(0.0, f64::max)),
        points,
    })
}

/// `metric_flat` when the error does not move with the loss across the runs: the task set
/// sits at chance (or at its ceiling) over the grid — its spread is within 3 RMS residuals of
/// the law — or the fitted error does not fall as the loss falls (k·γ ≤ 0).
fn flat(pts: &[ErrorPoint], law: &ErrorLaw, sse: f64, names: &[String]) -> Option<Warning> {
    let (lo, hi) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.error), hi.max(p.error))
        });
    let rmse = (sse / pts.len() as f64).sqrt();
    let inverted = law.k * law.gamma <= 0.0;
    if hi - lo > 3.0 * rmse && !inverted {
        return None;
    }
    Some(
        Warning::new(
            "metric_flat",
            "metric",
            format!(
                "the mean error over {} does not move with the loss across the runs: it spans \
                 {:.4}–{:.4} (RMS residual {:.4}){} — the tasks sit at chance or at their \
                 ceiling at these scales, and the law's curve is not measured",
                names.join(", "),
                lo,
                hi,
                rmse,
                if inverted {
                    ", and the fitted error rises as the loss falls"
                } else {
                    ""
                }
            ),
            "train larger or longer runs (or pick tasks these scales can learn) until the error \
             falls with the loss",
        )
        .with("error_min", lo)
        .with("error_max", hi)
        .with("rmse", rmse),
    )
}

/// `metric_linear` when the law's exponential barely bends across the runs' losses
/// (γ·(L_max − L_min) < 0.1): the runs measure a straight line, its level and slope, so ε and
/// k are not told apart (only ε − k·e^(−γL) near the runs is) and the bend the law would
/// follow beyond them is not measured.
fn linear(pts: &[ErrorPoint], law: &ErrorLaw) -> Option<Warning> {
    let (lo, hi) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.loss), hi.max(p.loss))
        });
    let bend = law.gamma * (hi - lo);
    if bend.is_nan() || bend >= 0.1 || law.k * law.gamma <= 0.0 {
        return None;
    }
    Some(
        Warning::new(
            "metric_linear",
            "metric",
            format!(
                "over the runs' losses ({lo:.4}–{hi:.4}) the metric law is a straight line \
                 (γ·ΔL = {bend:.2e}): the runs fix its level and slope, not ε and k apart, nor \
                 how it bends beyond them"
            ),
            "read the law's predictions near the losses the runs reached, not its ε, k and γ; \
             runs over a wider range of loss measure the bend",
        )
        .with("bend", bend)
        .with("loss_min", lo)
        .with("loss_max", hi),
    )
}

/// `metric_extrapolated` when a run the law is asked for lies at a loss below the lowest loss
/// it was fitted on (measured, or predicted from compute): the exponential's bend there is
/// read past the runs.
fn extrapolated(h: &MetricHoldout) -> Option<Warning> {
    let lowest = h.lowest_fitted_loss;
    let below: Vec<String> = h
        .points
        .iter()
        .filter(|p| p.loss.min(p.predicted_loss.unwrap_or(f64::INFINITY)) < lowest)
        .map(|p| p.name.clone())
        .collect();
    if below.is_empty() {
        return None;
    }
    let n = below.len();
    Some(
        Warning::new(
            "metric_extrapolated",
            "metric",
            format!(
                "{n} run(s) the metric law is asked for lie below the lowest loss it was fitted \
                 on ({lowest:.4}): {}",
                below.join(", ")
            ),
            "read their predicted error as an extrapolation of the law's curve; runs that reach \
             those losses would measure it",
        )
        .with("runs", n as f64)
        .with("lowest_fitted_loss", lowest),
    )
}
