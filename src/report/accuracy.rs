//! The two-step and direct accuracy laws in the chapter: their words in the laws section, the
//! `accuracy` chart (the accuracy against compute with each law's predictions; the two-step
//! law's sigmoid from task loss to accuracy), and their predictions for the final run.

use super::Input;
use super::charts::CURVE_POINTS;
use super::format::sig;
use super::plot::{Mark, Panel, Series, colour};
use crate::fit::accuracy::AccuracyLaw;
use crate::fit::accuracy_report::AccuracyReport;
use crate::fit::options::MetricForm;

/// The accuracy laws a study fitted, in a fixed order.
pub fn laws(input: &Input) -> Vec<&AccuracyReport> {
    [&input.fits.metric_two_step, &input.fits.metric_direct]
        .into_iter()
        .flatten()
        .collect()
}

fn interval_words(ci: Option<[f64; 2]>) -> String {
    ci.map(|[lo, hi]| format!(" [{}, {}]", sig(lo, 4), sig(hi, 4)))
        .unwrap_or_default()
}

/// The law in words: its form and numbers, and how it predicted the runs it was asked for.
pub fn words(r: &AccuracyReport) -> String {
    let mut out = match &r.law {
        AccuracyLaw::TwoStep(t) => format!(
            "\n**Accuracy in two steps** (Llama 3; Bhagia et al. 2024): `{}`'s task loss \
             `{}` as E + A/N^α + B/D^β (E = {}, A = {}, α = {}, B = {}, β = {}), then `{}` as \
             a sigmoid of it, b + a/(1 + e^(s·(ℓ − ℓ₀))) (a = {}, b = {}, s = {}, ℓ₀ = {}); \
             fitted by least squares on {} runs (RMS error {} in accuracy).",
            r.metric,
            r.task_loss.as_deref().unwrap_or("loss"),
            sig(t.task_loss.e, 4),
            sig(t.task_loss.a, 3),
            sig(t.task_loss.alpha, 3),
            sig(t.task_loss.b, 3),
            sig(t.task_loss.beta, 3),
            r.metric,
            sig(t.sigmoid.a, 4),
            sig(t.sigmoid.b, 4),
            sig(t.sigmoid.s, 4),
            sig(t.sigmoid.midpoint, 4),
            r.points,
            sig(r.rmse, 3),
        ),
        AccuracyLaw::Direct(d) => format!(
            "\n**Accuracy directly from compute** (Krajewski et al. 2025): −ln Acc of `{}` as \
             e^c·C^(−α)·(D/N)^δ, C = 6ND (c = {}, α = {}, δ = {}{}); fitted by least squares \
             in ln(−ln Acc) on {} runs (RMS error {} in accuracy).",
            r.metric,
            sig(d.c, 4),
            sig(d.alpha, 3),
            sig(d.delta, 3),
            if d.delta == 0.0 {
                ": one tokens-per-parameter ratio, the paper's form"
            } else {
                ": δ carries the grid's tokens-per-parameter ratios"
            },
            r.points,
            sig(r.rmse, 3),
        ),
    };
    if let Some(h) = &r.holdout {
        let inside = h
            .points
            .iter()
            .filter(|p| {
                p.predicted_ci
                    .is_some_and(|[lo, hi]| (lo..=hi).contains(&p.measured))
            })
            .count();
        out.push_str(&format!(
            " Fitted without {} ({} of them, on {} runs), it predicts their accuracy within {} \
             points on average ({} at worst); {} of {} measured inside the bootstrap's interval.",
            if h.kind == "predict" {
                "the runs `predict` names"
            } else {
                "the held-out runs"
            },
            h.points.len(),
            h.fitted_points,
            sig(100.0 * h.mean_abs_error, 2),
            sig(100.0 * h.max_abs_error, 2),
            inside,
            h.points.len(),
        ));
    }
    out.push('\n');
    out
}

/// Each accuracy law on the final run: the accuracy it predicts (with the bootstrap's
/// interval) beside what the run measured.
pub fn final_words(input: &Input) -> String {
    let Some(f) = &input.final_run else {
        return String::new();
    };
    let run = &f.run;
    let mut out = String::new();
    for r in laws(input) {
        let (n, d) = (run.params, run.tokens as f64);
        let predicted = r.law.accuracy(n, d);
        if !predicted.is_finite() {
            continue;
        }
        let ci = r.interval(n, d);
        out.push_str(&format!(
            "\n**The {} law on the final run.** It predicts `{}` = {}{}",
            r.form.name().replace('_', "-"),
            r.metric,
            sig(predicted, 4),
            interval_words(ci),
        ));
        match run.metrics.get(&r.metric) {
            Some(&m) if run.status == "ok" => out.push_str(&format!(
                "; the run measured {}{} ({} points {}).\n",
                sig(m, 4),
                match ci {
                    Some([lo, hi]) if (lo..=hi).contains(&m) => ", inside that interval",
                    Some(_) => ", outside that interval",
                    None => "",
                },
                sig(100.0 * (m - predicted).abs(), 2),
                if m >= predicted { "above" } else { "below" },
            )),
            _ => out.push_str(&format!(
                "; the run has not measured it ({}).\n",
                run.status
            )),
        }
    }
    out
}

/// The `accuracy` chart: the accuracy against compute (runs, each law's predictions, the
/// held-out runs, and the final run predicted with its interval and measured), and the
/// two-step law's sigmoid.
pub fn chart(input: &Input) -> Result<Vec<Panel>, String> {
    let all = laws(input);
    if all.is_empty() {
        return Err(
            "needs a two-step or direct metric law (`- { law: metric, form: two_step }`)".into(),
        );
    }
    let mut panel = Panel::new(
        "Accuracy against compute",
        "training compute C (FLOPs)",
        &format!("{} (accuracy)", all[0].metric),
    );
    panel.series.push(Series::new(
        Some("runs".into()),
        Mark::Dots,
        colour(0),
        all[0]
            .fitted
            .iter()
            .map(|p| (p.flops, p.measured))
            .collect(),
    ));
    for (i, r) in all.iter().enumerate() {
        let c = colour(i + 1);
        let mut pred: Vec<(f64, f64)> = r.fitted.iter().map(|p| (p.flops, p.predicted)).collect();
        pred.sort_by(|a, b| a.0.total_cmp(&b.0));
        panel.series.push(Series::new(
            Some(format!("{}, all runs", r.form.name())),
            Mark::Crosses,
            c,
            pred,
        ));
        if let Some(h) = &r.holdout {
            let bars: Vec<(f64, [f64; 2])> = h
                .points
                .iter()
                .filter_map(|p| Some((p.flops, p.predicted_ci?)))
                .collect();
            let mut s = Series::new(
                Some(format!(
                    "{}, fitted without the held-out runs",
                    r.form.name()
                )),
                Mark::ErrorBars,
                c,
                bars.iter().map(|(x, [lo, _])| (*x, *lo)).collect(),
            );
            s.upper = bars.iter().map(|(x, [_, hi])| (*x, *hi)).collect();
            panel.series.push(s);
        }
    }
    if let Some(f) = &input.final_run {
        for (i, r) in all.iter().enumerate() {
            let (n, d) = (f.run.params, f.run.tokens as f64);
            let predicted = r.law.accuracy(n, d);
            if !predicted.is_finite() {
                continue;
            }
            panel.series.push(Series::new(
                Some(format!("{}, final run predicted", r.form.name())),
                Mark::Crosses,
                colour(i + 1),
                vec![(f.run.flops, predicted)],
            ));
            if let Some([lo, hi]) = r.interval(n, d) {
                let mut s = Series::new(
                    None,
                    Mark::ErrorBars,
                    colour(i + 1),
                    vec![(f.run.flops, lo)],
                );
                s.upper = vec![(f.run.flops, hi)];
                panel.series.push(s);
            }
        }
    }
    if let Some(h) = all.iter().find_map(|r| r.holdout.as_ref()) {
        panel.series.push(Series::new(
            Some("held-out runs, measured".into()),
            Mark::Rings,
            colour(0),
            h.points.iter().map(|p| (p.flops, p.measured)).collect(),
        ));
    }
    if let Some(f) = &input.final_run
        && let Some(&m) = f.run.metrics.get(&all[0].metric)
    {
        panel.series.push(Series::new(
            Some("final run, measured".into()),
            Mark::Rings,
            colour(5),
            vec![(f.run.flops, m)],
        ));
    }
    let mut out = vec![panel];
    if let Some(r) = all.iter().find(|r| r.form == MetricForm::TwoStep) {
        out.push(sigmoid_panel(r));
    }
    Ok(out)
}

fn sigmoid_panel(r: &AccuracyReport) -> Panel {
    let mut panel = Panel::new(
        "Accuracy against task loss",
        &format!("task loss `{}`", r.task_loss.as_deref().unwrap_or("loss")),
        &format!("{} (accuracy)", r.metric),
    );
    panel.x_log = false;
    let pts: Vec<(f64, f64)> = r
        .fitted
        .iter()
        .filter_map(|p| Some((p.task_loss?, p.measured)))
        .collect();
    let (lo, hi) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.0), hi.max(p.0))
        });
    let pad = 0.1 * (hi - lo).max(1e-3);
    if let AccuracyLaw::TwoStep(t) = &r.law {
        let curve = (0..CURVE_POINTS)
            .map(|i| {
                let x = lo - pad + (hi - lo + 2.0 * pad) * i as f64 / (CURVE_POINTS - 1) as f64;
                (x, t.sigmoid.accuracy(x))
            })
            .collect();
        panel.series.push(Series::new(
            Some("sigmoid, all runs".into()),
            Mark::Line,
            colour(1),
            curve,
        ));
    }
    panel
        .series
        .push(Series::new(Some("runs".into()), Mark::Dots, colour(0), pts));
    if let Some(h) = &r.holdout {
        let held = h
            .points
            .iter()
            .filter_map(|p| Some((p.task_loss?, p.measured)))
            .collect();
        panel.series.push(Series::new(
            Some("held-out runs".into()),
            Mark::Rings,
            colour(0),
            held,
        ));
    }
    panel
}
