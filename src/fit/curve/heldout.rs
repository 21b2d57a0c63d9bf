//! The curve law checked on points no fitted run contains: each run predicted by the law
//! fitted without it (for a branch, only its steps after the last step a fitted run of its
//! trunk shares with it: a branch replays its trunk bit for bit), every independent run a
//! branch study compares with predicted by the law of its branches, and — where a group has a
//! single run — the second half of that run predicted from its first half. Errors are on
//! validation points, relative to the run's final validation loss.

use serde::{Deserialize, Serialize};

use super::solve::{self, Prepared};
use super::{CurveGroup, CurveOptions, CurveParams, CurveRun, prepare};

/// One run's held-out check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    pub run: String,
    pub group: String,
    /// What the predicting law was fitted on.
    pub fitted_on: String,
    /// Mean and worst |predicted − measured| / final loss over the held-out points.
    pub mean: f64,
    pub worst: f64,
    /// The held-out validation points: tokens, measured and predicted loss.
    pub tokens: Vec<f64>,
    pub measured: Vec<f64>,
    pub predicted: Vec<f64>,
}

/// The held-out checks of one group whose law (on its non-probe runs) is `law`.
pub fn check(
    group: &CurveGroup,
    runs: &[&CurveRun],
    options: &CurveOptions,
    law: &CurveParams,
) -> Vec<HeldOut> {
    let fitted: Vec<&CurveRun> = runs.iter().copied().filter(|r| !r.probe).collect();
    let mut out = Vec::new();
    for probe in runs.iter().filter(|r| r.probe) {
        let on = format!("{} fitted run(s) of {}", fitted.len(), group.name);
        out.extend(judge(group, probe, 0, law, options, on));
    }
    if fitted.len() == 1 {
        // One run: its second half predicted from its first.
        let run = fitted[0];
        let half = run.steps() / 2;
        let mut first = run.clone();
        first.val.retain(|p| p.0 <= half);
        first.train.retain(|p| p.0 <= half);
        if let Ok(p) = prepare(&first, options)
            && let Some(l) = refit(options, &[&p], law)
        {
            out.extend(judge(
                group,
                run,
                half,
                &l,
                options,
                "its first half".into(),
            ));
        }
        return out;
    }
    for (j, run) in fitted.iter().enumerate() {
        let others: Vec<&CurveRun> = fitted
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != j)
            .map(|(_, r)| *r)
            .collect();
        // The last step of `run` that a fitted run of its trunk contains.
        let seen = others
            .iter()
            .filter(|r| r.unit == run.unit)
            .map(|r| r.shared.min(run.shared))
            .max()
            .unwrap_or(0);
        let prepared: Vec<Prepared> = others
            .iter()
            .filter_map(|r| prepare(r, options).ok())
            .collect();
        let refs: Vec<&Prepared> = prepared.iter().collect();
        let Some(l) = refit(options, &refs, law) else {
            continue;
        };
        let on = match others.as_slice() {
            [one] => one.name.clone(),
            many => format!("the other {} runs of {}", many.len(), group.name),
        };
        out.extend(judge(group, run, seen, &l, options, on));
    }
    out
}

/// A law refitted on `runs`, starting from `law`'s exponents.
fn refit(options: &CurveOptions, runs: &[&Prepared], law: &CurveParams) -> Option<CurveParams> {
    if runs.is_empty() {
        return None;
    }
    solve::fit(options.request.form, runs, &[law.exponents()], 150)
}

/// `run`'s validation points after step `after` (and the burn-in) against `law`.
fn judge(
    group: &CurveGroup,
    run: &CurveRun,
    after: u64,
    law: &CurveParams,
    options: &CurveOptions,
    fitted_on: String,
) -> Option<HeldOut> {
    let cut = ((options.request.burn_in * run.steps() as f64).floor() as u64).max(after);
    let points: Vec<(u64, f64)> = run
        .val
        .iter()
        .copied()
        .filter(|(s, l)| *s > cut && l.is_finite())
        .collect();
    let final_loss = run.val.last()?.1;
    if points.is_empty() || final_loss.is_nan() || final_loss <= 0.0 {
        return None;
    }
    let steps: Vec<u64> = points.iter().map(|p| p.0).collect();
    let predicted = law.predict(options.request.form, &run.lrs, run.warmup, &steps)?;
    let errors: Vec<f64> = points
        .iter()
        .zip(&predicted)
        .map(|(p, q)| (q - p.1).abs() / final_loss)
        .collect();
    Some(HeldOut {
        run: run.name.clone(),
        group: group.name.clone(),
        fitted_on,
        mean: errors.iter().sum::<f64>() / errors.len() as f64,
        worst: errors.iter().copied().fold(0.0, f64::max),
        tokens: steps.iter().map(|&s| s as f64 * run.step_tokens).collect(),
        measured: points.iter().map(|p| p.1).collect(),
        predicted,
    })
}

/// Mean of the runs' mean errors, and the worst point of any run.
pub fn summary(checks: &[HeldOut]) -> (Option<f64>, Option<f64>) {
    if checks.is_empty() {
        return (None, None);
    }
    let mean = checks.iter().map(|h| h.mean).sum::<f64>() / checks.len() as f64;
    let worst = checks.iter().map(|h| h.worst).fold(0.0, f64::max);
    (Some(mean), Some(worst))
}

/// The curve law's warnings: a held-out error beyond [`super::HELDOUT_TARGET`]
/// (`curve_heldout_error`), runs it could not use (`curve_runs_unusable`), and no held-out
/// check at all (`fit_problem`).
pub fn warnings(report: &super::CurveReport) -> Vec<crate::fit::diagnose::Warning> {
    use crate::fit::diagnose::Warning;
    let mut out = Vec::new();
    let [mean_target, worst_target] = super::HELDOUT_TARGET;
    match (report.heldout_mean, report.heldout_worst) {
        (Some(mean), Some(worst)) if mean > mean_target || worst > worst_target => {
            let mut runs: Vec<&HeldOut> = report.heldout.iter().collect();
            runs.sort_by(|a, b| b.worst.total_cmp(&a.worst));
            let named: Vec<String> = runs
                .iter()
                .take(3)
                .map(|h| format!("{} ({:.2} %)", h.run, h.worst * 100.0))
                .collect();
            out.push(
                Warning::new(
                    "curve_heldout_error",
                    "curve",
                    format!(
                        "the {} curve law predicts held-out curves with mean error {:.2} % and \
                         worst {:.2} % of the final loss, beyond the {:.1} % / {:.1} % it is \
                         trusted within; worst: {}",
                        report.form,
                        mean * 100.0,
                        worst * 100.0,
                        mean_target * 100.0,
                        worst_target * 100.0,
                        named.join(", ")
                    ),
                    "read the curve law's predictions (and the curve-informed law) as rough; \
                     longer runs or more schedules per size help it most",
                )
                .with("mean", mean)
                .with("worst", worst),
            );
        }
        (None, _) if !report.groups.is_empty() => out.push(Warning::problem(
            "curve: no run's curve could be predicted from the others, so the curve law is unchecked",
        )),
        _ => {}
    }
    if !report.unusable.is_empty() {
        let named: Vec<String> = report
            .unusable
            .iter()
            .map(|u| format!("{}: {}", u.run, u.reason))
            .collect();
        out.push(
            Warning::new(
                "curve_runs_unusable",
                "curve",
                format!(
                    "the curve law could not use {} run(s): {}",
                    named.len(),
                    named.join("; ")
                ),
                "see each run's reason; the endpoint laws still use these runs",
            )
            .with("runs", named.len() as f64),
        );
    }
    out
}
