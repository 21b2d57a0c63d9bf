//! The warnings of the two-step and direct accuracy laws ([`super::accuracy_report`]):
//!
//! - `metric_flat`: the accuracy does not move across the runs — its spread is within 3 RMS
//!   residuals of the law, or the law has it fall as compute grows (two-step: rise with the
//!   task loss): the task sits at chance or at its ceiling at these scales (shared with the
//!   error-from-loss law).
//! - `metric_midpoint_outside` (two-step): the sigmoid's midpoint lies outside the task losses
//!   the runs reached, so only one tail of the sigmoid is measured: its height, floor and
//!   midpoint are not told apart, and where the accuracy turns is an extrapolation.
//! - `metric_sigmoid_step` (two-step): the midpoint lies inside, but fewer than 3 runs lie on
//!   the sigmoid's turn (where it rises from 10 % to 90 % of its height): the least-squares
//!   sigmoid is a step through the runs' scatter, not a measured curve.

use super::accuracy::{AccuracyLaw, AccuracyPoint};
use super::diagnose::Warning;

/// Every warning of a fitted law (`label`: its form's name).
pub(super) fn all(label: &str, pts: &[AccuracyPoint], law: &AccuracyLaw, sse: f64) -> Vec<Warning> {
    [
        flat(label, pts, law, sse),
        midpoint(pts, law),
        step(pts, law),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

fn flat(label: &str, pts: &[AccuracyPoint], law: &AccuracyLaw, sse: f64) -> Option<Warning> {
    let (lo, hi) = range(pts.iter().map(|p| p.accuracy));
    let rmse = (sse / pts.len() as f64).sqrt();
    let inverted = match law {
        // Accuracy falls as the task loss grows: a > 0 with s > 0.
        AccuracyLaw::TwoStep(t) => t.sigmoid.a <= 0.0,
        // −ln Acc shrinks as compute grows: α > 0.
        AccuracyLaw::Direct(d) => d.alpha <= 0.0,
    };
    if hi - lo > 3.0 * rmse && !inverted {
        return None;
    }
    Some(
        Warning::new(
            "metric_flat",
            "metric",
            format!(
                "the accuracy the {label} law models does not move with scale across the runs: \
                 it spans {lo:.4}–{hi:.4} (RMS residual {rmse:.4}){} — the task sits at chance \
                 or at its ceiling at these scales, and the law's curve is not measured",
                if inverted {
                    ", and the fitted accuracy falls as the models grow"
                } else {
                    ""
                }
            ),
            "train larger or longer runs (or pick a task these scales can learn) until the \
             accuracy rises with scale",
        )
        .with("accuracy_min", lo)
        .with("accuracy_max", hi)
        .with("rmse", rmse),
    )
}

fn midpoint(pts: &[AccuracyPoint], law: &AccuracyLaw) -> Option<Warning> {
    let AccuracyLaw::TwoStep(t) = law else {
        return None;
    };
    let (lo, hi) = range(pts.iter().map(|p| p.task_loss));
    let m = t.sigmoid.midpoint;
    if (lo..=hi).contains(&m) || !m.is_finite() {
        return None;
    }
    Some(
        Warning::new(
            "metric_midpoint_outside",
            "metric",
            format!(
                "the sigmoid from task loss to accuracy turns at a task loss of {m:.4}, {} the \
                 {lo:.4}–{hi:.4} the runs reached: they measure one tail of it, so its height, \
                 floor and midpoint are not told apart and the turn is an extrapolation",
                if m < lo { "below" } else { "above" }
            ),
            "read the two-step law's predictions near the runs' task losses; runs whose task \
             loss crosses the midpoint measure the turn",
        )
        .with("midpoint", m)
        .with("task_loss_min", lo)
        .with("task_loss_max", hi),
    )
}

/// Runs on the turn: task losses within ln 9 / s of the midpoint (10 % to 90 % of the height).
const ON_THE_TURN: usize = 3;

fn step(pts: &[AccuracyPoint], law: &AccuracyLaw) -> Option<Warning> {
    let AccuracyLaw::TwoStep(t) = law else {
        return None;
    };
    let (lo, hi) = range(pts.iter().map(|p| p.task_loss));
    let (m, s) = (t.sigmoid.midpoint, t.sigmoid.s);
    let half = 9f64.ln() / s;
    let on = pts
        .iter()
        .filter(|p| (p.task_loss - m).abs() <= half)
        .count();
    if !(lo..=hi).contains(&m) || on >= ON_THE_TURN || !half.is_finite() {
        return None;
    }
    Some(
        Warning::new(
            "metric_sigmoid_step",
            "metric",
            format!(
                "the sigmoid from task loss to accuracy turns within {:.4} of its midpoint \
                 {m:.4} (10 % to 90 % of its height), and only {on} run(s) lie there: it is a \
                 step through the runs' scatter, not a curve they measure",
                half
            ),
            "read the two-step law's predictions near the runs' task losses; more runs \
             between the smallest and largest task loss measure the turn",
        )
        .with("midpoint", m)
        .with("turn_half_width", half)
        .with("runs_on_turn", on as f64),
    )
}
