//! The metric law in the chapter: its words in the laws section and the `metric` chart —
//! the mean error over the task set against the loss, with the fitted law, the runs it was
//! fitted to, and the runs it was asked for, predicted from their loss and from compute.

use super::Input;
use super::charts::CURVE_POINTS;
use super::format::{after, pct, sig};
use super::plot::{Mark, Panel, Series, colour};
use crate::fit::metric_report::MetricReport;

/// The law in words, with its intervals and how it predicted the runs it was asked for.
pub fn words(m: &MetricReport) -> String {
    let iv = |v: Option<[f64; 2]>| after(v, 3);
    let mut out = format!(
        "\n**Downstream error from loss** (Gadre et al. 2024): the mean error over {} metric(s) \
         ({}) against the validation loss, Err(L) = ε − k·exp(−γ·L), fitted by least squares \
         on {} runs: ε = {}{}, k = {}{}, γ = {}{} (RMS error {}).",
        m.metrics.len(),
        m.metrics.join(", "),
        m.points,
        sig(m.law.epsilon, 4),
        iv(m.ci.map(|c| c.epsilon)),
        sig(m.law.k, 4),
        iv(m.ci.map(|c| c.k)),
        sig(m.law.gamma, 4),
        iv(m.ci.map(|c| c.gamma)),
        sig(m.rmse, 3),
    );
    let (lo, hi) = m
        .fitted
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p[0]), hi.max(p[0]))
        });
    if m.law.gamma * (hi - lo) < 0.1 {
        out.push_str(&format!(
            " Over the runs' losses ({}–{}) the law is a straight line (`metric_linear`): its \
             level and slope are measured, ε and k apart are not — read its predictions near \
             those losses, not its parameters.",
            sig(lo, 4),
            sig(hi, 4)
        ));
    }
    if let Some(h) = &m.holdout {
        let asked = if h.kind == "predict" {
            "the runs `predict` names".to_string()
        } else {
            "the held-out runs".to_string()
        };
        out.push_str(&format!(
            " Fitted without {asked} ({} of them, on {} runs), it predicts their error from \
             their measured loss within {} on average (mean absolute error {}, {} at worst).",
            h.points.len(),
            h.fitted_points,
            pct(h.rel_error_mean),
            sig(h.mean_abs_error, 3),
            pct(h.rel_error_max),
        ));
        if let (Some(law), Some(worst)) = (&h.loss_law, h.rel_error_from_compute_max) {
            out.push_str(&format!(
                " From compute alone — the loss the `{law}` law, fitted without the study's \
                 hold-out, predicts for each — within {} at worst.",
                pct(worst)
            ));
        }
    }
    out.push('\n');
    out
}

/// The `metric` chart.
pub fn chart(input: &Input) -> Result<Vec<Panel>, String> {
    let m = input
        .fits
        .metric
        .as_ref()
        .ok_or("needs a metric law (`- { law: metric }` with `results.metrics`)")?;
    let mut losses: Vec<f64> = m.fitted.iter().map(|p| p[0]).collect();
    if let Some(h) = &m.holdout {
        losses.extend(h.points.iter().map(|p| p.loss));
        losses.extend(h.points.iter().filter_map(|p| p.predicted_loss));
    }
    let lo = losses.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = losses.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let pad = 0.05 * (hi - lo).max(1e-3);
    let xs: Vec<f64> = (0..CURVE_POINTS)
        .map(|i| lo - pad + (hi - lo + 2.0 * pad) * i as f64 / (CURVE_POINTS - 1) as f64)
        .collect();
    let mut panel = Panel::new(
        "Downstream error against loss",
        "validation loss (nats/token)",
        "mean error over the task set",
    );
    panel.x_log = false;
    let curve =
        |law: &crate::fit::metric::ErrorLaw| xs.iter().map(|&x| (x, law.error(x))).collect();
    panel.series.push(Series::new(
        Some("Err(L), all runs".into()),
        Mark::Line,
        colour(0),
        curve(&m.law),
    ));
    let fitted = m.fitted.iter().map(|p| (p[0], p[1])).collect();
    panel.series.push(Series::new(
        Some("runs".into()),
        Mark::Dots,
        colour(0),
        fitted,
    ));
    if let Some(h) = &m.holdout {
        panel.series.push(Series::new(
            Some("fitted without the predicted runs".into()),
            Mark::Dashed,
            colour(1),
            curve(&h.law),
        ));
        panel.series.push(Series::new(
            Some("predicted runs, measured".into()),
            Mark::Rings,
            colour(1),
            h.points.iter().map(|p| (p.loss, p.measured)).collect(),
        ));
        let from_compute: Vec<(f64, f64)> = h
            .points
            .iter()
            .filter_map(|p| Some((p.predicted_loss?, p.predicted_from_compute?)))
            .collect();
        if !from_compute.is_empty() {
            panel.series.push(Series::new(
                Some("predicted from compute".into()),
                Mark::Crosses,
                colour(3),
                from_compute,
            ));
        }
    }
    Ok(vec![panel.auto_y()])
}

/// The metric law on the final run: the error it predicts at the run's predicted loss (the
/// run's loss interval carried through the law, which rises with the loss) and at its measured
/// loss, beside the error the run measured. Empty without a metric law or a final run.
pub fn final_words(input: &Input) -> String {
    let (Some(m), Some(f)) = (&input.fits.metric, &input.final_run) else {
        return String::new();
    };
    let run = &f.run;
    if !run.predicted.is_finite() {
        return String::new();
    }
    let law = &m.law;
    // The interval predicted for the run's loss (one run's, not the loss law's expectation)
    // through the law (which rises with the loss), widened by twice the law's scatter about
    // its runs (about 95 % of a normal scatter): where a measurement of the run may fall.
    let z = 2.0;
    let band = run.predicted_ci.map(|[lo, hi]| {
        let (a, b) = (law.error(lo), law.error(hi));
        [a.min(b) - z * m.rmse, a.max(b) + z * m.rmse]
    });
    let ci = band
        .map(|[lo, hi]| format!(" [{}, {}]", sig(lo, 4), sig(hi, 4)))
        .unwrap_or_default();
    let mut out = format!(
        "\n**The metric law on the final run.** At its predicted loss, {}, the law gives a mean \
         error over {} of {}{ci} (the run's loss interval carried through the law, widened by \
         twice the law's RMS residual, {})",
        sig(run.predicted, 5),
        m.metrics.join(", "),
        sig(law.error(run.predicted), 4),
        sig(m.rmse, 3),
    );
    let values: Option<Vec<f64>> = m
        .metrics
        .iter()
        .map(|n| run.metrics.get(n).copied())
        .collect();
    match (run.measured, values) {
        (Some(loss), Some(values)) if run.status == "ok" && !values.is_empty() => {
            let measured = 1.0 - values.iter().sum::<f64>() / values.len() as f64;
            let inside = band.map(|[lo, hi]| (lo..=hi).contains(&measured));
            out.push_str(&format!(
                "; it measured {}{} — at its measured loss, {}, the law gives {}.\n",
                sig(measured, 4),
                match inside {
                    Some(true) => ", inside that interval",
                    Some(false) => ", outside that interval",
                    None => "",
                },
                sig(loss, 5),
                sig(law.error(loss), 4),
            ));
        }
        _ => out.push_str(&format!(
            "; the run has not measured it ({}).\n",
            run.status
        )),
    }
    out
}
