//! `law: metric` with `form: two_step` or `form: direct` in `fits.json`
//! (`fits.metric_two_step`, `fits.metric_direct`): a task accuracy predicted from (N, D)
//! ([`super::accuracy`]), its bootstrap, and the runs it is asked for — the study's
//! hold-out (or the law's `predict` list) fitted without them.

use serde::{Deserialize, Serialize};

use super::accuracy::{self, AccuracyLaw, AccuracyPoint, Form};
use super::approach3::split;
use super::bootstrap::percentile_interval;
use super::diagnose::Warning;
use super::options::{MetricForm, MetricRequest, ParamsConvention};
use super::suite::{FitReport, Request, Row};
use crate::rng::{SplitMix64, hash2};

/// One run the law was fitted to or asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccuracyRun {
    pub name: String,
    pub n: f64,
    pub d: f64,
    pub flops: f64,
    pub measured: f64,
    pub predicted: f64,
    /// Two-step: the task loss it measured and the one the first step gives it.
    pub task_loss: Option<f64>,
    pub predicted_task_loss: Option<f64>,
    /// Asked-for runs: the bootstrap's interval of the prediction.
    pub predicted_ci: Option<[f64; 2]>,
}

/// The law fitted without the runs it is asked for, and its predictions of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccuracyHoldout {
    /// `predict` (the law's own list) or the study's hold-out (`largest`, `budgets`, …).
    pub kind: String,
    pub fitted_points: usize,
    pub law: AccuracyLaw,
    pub points: Vec<AccuracyRun>,
    /// |predicted − measured| in accuracy (absolute points, as the papers report it).
    pub mean_abs_error: f64,
    pub max_abs_error: f64,
}

/// `fits.metric_two_step` / `fits.metric_direct`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccuracyReport {
    pub form: MetricForm,
    /// The accuracy the law predicts.
    pub metric: String,
    /// Two-step: the task loss it goes through (`loss`: the validation loss).
    pub task_loss: Option<String>,
    /// N is counted in this convention (the Chinchilla law's).
    pub params: ParamsConvention,
    pub points: usize,
    pub law: AccuracyLaw,
    /// Σ(Âcc − Acc)² over the fitted runs and its root mean square.
    pub sse: f64,
    pub rmse: f64,
    pub confidence: f64,
    pub bootstrap_resamples: u64,
    /// The bootstrap's refitted laws (resamples that could not be fitted are dropped): the
    /// interval of a prediction anywhere — the final run's — is their percentile interval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resampled: Vec<AccuracyLaw>,
    pub fitted: Vec<AccuracyRun>,
    pub holdout: Option<AccuracyHoldout>,
}

impl AccuracyReport {
    /// The percentile interval of the predicted accuracy at (N, D) over the bootstrap's laws.
    pub fn interval(&self, n: f64, d: f64) -> Option<[f64; 2]> {
        interval(&self.resampled, n, d, self.confidence)
    }
}

fn interval(laws: &[AccuracyLaw], n: f64, d: f64, confidence: f64) -> Option<[f64; 2]> {
    let mut v: Vec<f64> = laws
        .iter()
        .map(|l| l.accuracy(n, d))
        .filter(|v| v.is_finite())
        .collect();
    percentile_interval(&mut v, confidence).map(|i| [i.lo, i.hi])
}

/// A row's accuracy and task loss, when it records both.
fn point(r: &Row, options: &MetricRequest, params: ParamsConvention) -> Option<AccuracyPoint> {
    let accuracy = *r.metrics.get(options.metrics.first()?)?;
    let task_loss = match options.task_loss.as_deref() {
        None => f64::NAN,
        Some("loss") => r.loss,
        Some(name) => *r.metrics.get(name)?,
    };
    Some(AccuracyPoint {
        n: r.n(params),
        d: r.tokens,
        accuracy,
        task_loss,
    })
}

fn form(options: &MetricRequest) -> Form {
    match options.form {
        MetricForm::Direct => Form::Direct,
        _ => Form::TwoStep,
    }
}

/// The bootstrap's refits of `pts`.
fn resample(pts: &[AccuracyPoint], f: Form, resamples: u64, seed: u64) -> Vec<AccuracyLaw> {
    (0..resamples)
        .filter_map(|r| {
            let mut rng = SplitMix64::new(hash2(seed, r));
            let sample: Vec<AccuracyPoint> = (0..pts.len())
                .map(|_| pts[rng.below(pts.len() as u64) as usize])
                .collect();
            accuracy::fit(f, &sample)
        })
        .collect()
}

fn run(r: &Row, p: &AccuracyPoint, law: &AccuracyLaw) -> AccuracyRun {
    AccuracyRun {
        name: r.name.clone(),
        n: p.n,
        d: p.d,
        flops: r.flops,
        measured: p.accuracy,
        predicted: law.accuracy(p.n, p.d),
        task_loss: p.task_loss.is_finite().then_some(p.task_loss),
        predicted_task_loss: law.task_loss(p.n, p.d),
        predicted_ci: None,
    }
}

/// Fit `law: metric` of form two-step or direct to `all` into `report`; a problem is a
/// warning.
pub(super) fn fit_accuracy(
    all: &[&Row],
    request: &Request,
    report: &mut FitReport,
    options: &MetricRequest,
) {
    let label = options.form.name();
    let params = report
        .chinchilla
        .as_ref()
        .map_or(ParamsConvention::Total, |c| c.params);
    let rows: Vec<(&Row, AccuracyPoint)> = all
        .iter()
        .filter_map(|r| point(r, options, params).map(|p| (*r, p)))
        .collect();
    let f = form(options);
    let pts: Vec<AccuracyPoint> = rows.iter().map(|(_, p)| *p).collect();
    let Some(law) = accuracy::fit(f, &pts) else {
        report.warnings.push(Warning::problem(format!(
            "metric ({label}): the law could not be fitted to {} of {} runs recording {}{} \
             (it needs {} or more, accuracies strictly between 0 and 1 for `direct`, and task \
             losses that vary)",
            rows.len(),
            all.len(),
            options.metrics.join(", "),
            options
                .task_loss
                .as_ref()
                .map(|t| format!(" and {t}"))
                .unwrap_or_default(),
            if f == Form::TwoStep { 5 } else { 4 },
        )));
        return;
    };
    let fitted: Vec<AccuracyRun> = rows.iter().map(|(r, p)| run(r, p, &law)).collect();
    let sse: f64 = fitted
        .iter()
        .map(|r| (r.predicted - r.measured).powi(2))
        .sum();
    let resampled = resample(&pts, f, options.bootstrap, request.seed);
    let holdout = holdout(&rows, request, report, options);
    report
        .warnings
        .extend(super::accuracy_warnings::all(label, &pts, &law, sse));
    let out = AccuracyReport {
        form: options.form,
        metric: options.metrics.first().cloned().unwrap_or_default(),
        task_loss: options.task_loss.clone(),
        params,
        points: pts.len(),
        law,
        sse,
        rmse: (sse / pts.len() as f64).sqrt(),
        confidence: options.confidence,
        bootstrap_resamples: options.bootstrap,
        resampled,
        fitted,
        holdout,
    };
    match options.form {
        MetricForm::Direct => report.metric_direct = Some(out),
        _ => report.metric_two_step = Some(out),
    }
}

/// The law refitted without the runs it is asked for and its predictions of them.
fn holdout(
    rows: &[(&Row, AccuracyPoint)],
    request: &Request,
    report: &mut FitReport,
    options: &MetricRequest,
) -> Option<AccuracyHoldout> {
    let names: Vec<&Row> = rows.iter().map(|(r, _)| *r).collect();
    let (kind, test): (String, Vec<&Row>) = if options.predict.is_empty() {
        let (kind, _, _, test) = split(&names, request.holdout?, ParamsConvention::Total);
        (kind.to_string(), test)
    } else {
        let test = names
            .iter()
            .copied()
            .filter(|r| options.predict.contains(&r.name))
            .collect();
        ("predict".to_string(), test)
    };
    let asked = |r: &Row| test.iter().any(|t| t.name == r.name);
    let (held, kept): (Vec<_>, Vec<_>) = rows.iter().partition(|(r, _)| asked(r));
    if held.is_empty() {
        return None;
    }
    let f = form(options);
    let train: Vec<AccuracyPoint> = kept.iter().map(|(_, p)| *p).collect();
    let Some(law) = accuracy::fit(f, &train) else {
        report.warnings.push(Warning::problem(format!(
            "metric ({}): the hold-out fit failed ({} runs are left to fit)",
            options.form.name(),
            train.len()
        )));
        return None;
    };
    let laws = resample(&train, f, options.bootstrap, request.seed);
    let points: Vec<AccuracyRun> = held
        .iter()
        .map(|(r, p)| AccuracyRun {
            predicted_ci: interval(&laws, p.n, p.d, options.confidence),
            ..run(r, p, &law)
        })
        .collect();
    let errors: Vec<f64> = points
        .iter()
        .map(|p| (p.predicted - p.measured).abs())
        .collect();
    Some(AccuracyHoldout {
        kind,
        fitted_points: train.len(),
        law,
        mean_abs_error: errors.iter().sum::<f64>() / errors.len() as f64,
        max_abs_error: errors.iter().copied().fold(0.0, f64::max),
        points,
    })
}
