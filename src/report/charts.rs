//! The report's charts, one function per chart id (`CHART_IDS`), each turning the runs and
//! fits into [`Panel`]s. A chart that has nothing to show (no fit, no IsoFLOP sweep) says
//! why instead of failing the report.

use std::collections::BTreeMap;

use super::Input;
use super::context::RunRow;
use super::forecast;
use super::plot::{Mark, Panel, Series, colour};
use crate::fit::chinchilla::{Law, allocate};
use crate::study::ParamsConvention;

/// Captions for each chart id.
pub fn caption(id: &str) -> &'static str {
    match id {
        "loss_vs_params" => {
            "Final validation loss against parameters N, one colour per token budget D; dashed: the fitted law L(N, D)."
        }
        "loss_vs_tokens" => {
            "Final validation loss against training tokens D, one colour per model size; dashed: the fitted law."
        }
        "loss_vs_compute" => {
            "Loss against training compute C: every run, the lower envelope of the learning curves (frontier) and the fitted law's compute-optimal loss L(N_opt(C), D_opt(C))."
        }
        "isoflop" => {
            "IsoFLOP profiles: loss against N at fixed compute, with each profile's minimum marked."
        }
        "learning_curves" => "Validation loss during training, one line per run, coloured by size.",
        "extrapolation" => {
            "The law fitted without the held-out runs, extrapolated (with its bootstrap band) to them and to the final run, whose bar is the interval predicted for one run; with `law: overtrain`, that law fitted without them too (solid); with `law: data_constrained`, a panel of loss against epochs of the unique tokens, that law against the Chinchilla form."
        }
        "residuals" => {
            "Relative residual (measured / predicted − 1) of every run under the fitted law (and, with `law: overtrain` or `law: data_constrained`, under that law in a panel of its own)."
        }
        "allocation" => {
            "Compute-optimal N_opt(C) and D_opt(C) from the fitted law with bootstrap bands, against measured optima."
        }
        "cost" => {
            "Measured cost of every run against scale, with the cost-law forecast for the final run."
        }
        "frontier" => {
            "Learning curves over compute and their lower envelope (approach 1, Hoffmann et al. 2022 §3.1)."
        }
        "loss_vs_lr" => {
            "Left: final loss against the learning rate at every point, one colour per size, each point's best run ringed. Right: the refined optimum η* against N, one colour per D; dashed: the fitted η*(N, D)."
        }
        "batch_size" => {
            "Left: the refined best batch size B* (tokens per step) against D, one colour per size; dashed: the fitted B*(D). Right: the critical batch size against the loss level, one line per size (when the sweep allows reading it)."
        }
        "metric" => {
            "The mean error over the task set against the validation loss: the metric law fitted to every run (solid), fitted without the runs it is asked for (dashed), those runs as measured (rings) and as predicted from compute alone (crosses, at the loss the loss law predicts)."
        }
        "accuracy" => {
            "The task accuracy against training compute: the runs (dots), each accuracy law's prediction of them (crosses), its bootstrap interval for the held-out runs fitted without them (bars) and those runs as measured (rings), the final run predicted (cross with its interval) and measured (ring); with the two-step law, a second panel: the accuracy against the task loss with the fitted sigmoid."
        }
        "facts_recall" => {
            "Recall@1 of a fact's value after its key, by the fact's frequency decile (1: the most frequent tenth of the facts), one line per size at its longest run, the final run dashed; the line: the ceiling the value noise leaves, 1 − ε + ε/(V − 1)."
        }
        "curve" => {
            "Held-out validation curves (rings) against the curve law's predictions (dashed), one panel per size at its best learning rate: each run predicted by the law fitted without it."
        }
        _ => "",
    }
}

pub(super) const CURVE_POINTS: usize = 64;

pub(super) fn log_space(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let (a, b) = (lo.ln(), hi.ln());
    (0..n)
        .map(|i| (a + (b - a) * i as f64 / (n - 1) as f64).exp())
        .collect()
}

pub(super) fn law_of(input: &Input) -> Option<(Law, ParamsConvention)> {
    input.fits.chinchilla.as_ref().map(|c| (c.law(), c.params))
}

pub(super) fn params_of(input: &Input) -> ParamsConvention {
    law_of(input).map_or(ParamsConvention::Total, |(_, p)| p)
}

/// Finished runs the fits use (a sweep's best run per point).
pub(super) fn ok_runs(input: &Input) -> Vec<&RunRow> {
    input
        .runs
        .iter()
        .filter(|r| r.selected && r.ok_loss().is_some())
        .collect()
}

/// Sizes in order of parameters, each with its colour index.
pub(super) fn size_colours(input: &Input) -> BTreeMap<String, usize> {
    let mut sizes: Vec<(u64, &str)> = input
        .runs
        .iter()
        .map(|r| (r.params_total, r.size.as_str()))
        .collect();
    sizes.sort();
    sizes.dedup();
    let mut out = BTreeMap::new();
    for (_, name) in sizes {
        let next = out.len();
        out.entry(name.to_string()).or_insert(next);
    }
    out
}

/// Groups of runs sharing D (grids) or a budget (IsoFLOP sweeps), in increasing order.
pub(super) fn d_groups<'a>(runs: &[&'a RunRow]) -> Vec<(String, Option<f64>, Vec<&'a RunRow>)> {
    let mut groups: BTreeMap<(u64, u64), Vec<&RunRow>> = BTreeMap::new();
    for r in runs {
        let k = match r.budget {
            Some(b) => (1, b.to_bits()),
            None => (0, r.tokens),
        };
        groups.entry(k).or_default().push(r);
    }
    groups
        .into_iter()
        .map(|((kind, v), rows)| {
            if kind == 1 {
                let c = f64::from_bits(v);
                (format!("C = {}", super::format::sci(c)), Some(c), rows)
            } else {
                (
                    format!("D = {}", super::format::human(v as f64)),
                    None,
                    rows,
                )
            }
        })
        .collect()
}

pub(super) fn n_range(input: &Input, params: ParamsConvention) -> (f64, f64) {
    let ns: Vec<f64> = input.runs.iter().map(|r| r.n(params)).collect();
    let mut lo = ns.iter().copied().fold(f64::INFINITY, f64::min);
    let mut hi = ns.iter().copied().fold(0.0, f64::max);
    if let Some(f) = &input.final_run {
        lo = lo.min(f.run.params);
        hi = hi.max(f.run.params);
    }
    (lo / 1.25, hi * 1.25)
}

pub fn loss_vs_params(input: &Input) -> Result<Vec<Panel>, String> {
    let params = params_of(input);
    let runs = ok_runs(input);
    if runs.is_empty() {
        return Err("no finished runs".into());
    }
    let mut panel = Panel::new(
        "Loss vs parameters",
        "parameters N",
        "validation loss (nats/token)",
    );
    let (lo, hi) = n_range(input, params);
    for (i, (label, budget, rows)) in d_groups(&runs).into_iter().enumerate() {
        let c = colour(i);
        let pts = rows
            .iter()
            .filter_map(|r| Some((r.n(params), r.ok_loss()?)))
            .collect();
        panel
            .series
            .push(Series::new(Some(label), Mark::Dots, c, pts));
        if let Some((law, _)) = law_of(input) {
            let d = rows[0].tokens as f64;
            let curve = log_space(lo, hi, CURVE_POINTS)
                .into_iter()
                .map(|n| {
                    // IsoFLOP groups: D = C / 6N (Kaplan et al. 2020's C ≈ 6ND).
                    let d = budget.map_or(d, |c| c / (6.0 * n));
                    (n, law.loss(n, d))
                })
                .collect();
            panel.series.push(Series::new(None, Mark::Dashed, c, curve));
        }
    }
    entropy_line(input, &mut panel);
    Ok(vec![panel.auto_y()])
}

pub(super) fn entropy_line(input: &Input, panel: &mut Panel) {
    if let Some(h) = input.data.entropy {
        panel.h_line = Some((h, "entropy of the data".into()));
    }
}

pub fn loss_vs_tokens(input: &Input) -> Result<Vec<Panel>, String> {
    let params = params_of(input);
    let runs = ok_runs(input);
    if runs.is_empty() {
        return Err("no finished runs".into());
    }
    let colours = size_colours(input);
    let mut panel = Panel::new(
        "Loss vs tokens",
        "training tokens D",
        "validation loss (nats/token)",
    );
    let ds: Vec<f64> = runs.iter().map(|r| r.tokens as f64).collect();
    let lo = ds.iter().copied().fold(f64::INFINITY, f64::min) / 1.25;
    let hi = ds.iter().copied().fold(0.0, f64::max) * 1.25;
    let mut by_size: BTreeMap<usize, Vec<&RunRow>> = BTreeMap::new();
    for r in &runs {
        by_size.entry(colours[&r.size]).or_default().push(r);
    }
    for (ci, rows) in by_size {
        let c = colour(ci);
        let label = format!(
            "{} ({})",
            rows[0].size,
            super::format::human(rows[0].n(params))
        );
        let pts = rows
            .iter()
            .filter_map(|r| Some((r.tokens as f64, r.ok_loss()?)))
            .collect();
        panel
            .series
            .push(Series::new(Some(label), Mark::Dots, c, pts));
        if let Some((law, _)) = law_of(input) {
            let n = rows[0].n(params);
            let curve = log_space(lo, hi, CURVE_POINTS)
                .into_iter()
                .map(|d| (d, law.loss(n, d)))
                .collect();
            panel.series.push(Series::new(None, Mark::Dashed, c, curve));
        }
    }
    entropy_line(input, &mut panel);
    Ok(vec![panel.auto_y()])
}

pub fn loss_vs_compute(input: &Input) -> Result<Vec<Panel>, String> {
    let runs = ok_runs(input);
    if runs.is_empty() {
        return Err("no finished runs".into());
    }
    let colours = size_colours(input);
    let mut panel = Panel::new(
        "Loss vs compute",
        "training compute C (FLOPs)",
        "validation loss (nats/token)",
    );
    let mut by_size: BTreeMap<usize, Vec<&RunRow>> = BTreeMap::new();
    for r in &runs {
        by_size.entry(colours[&r.size]).or_default().push(r);
    }
    for (ci, rows) in by_size {
        let pts = rows
            .iter()
            .filter_map(|r| Some((r.flops, r.ok_loss()?)))
            .collect();
        panel.series.push(Series::new(
            Some(rows[0].size.clone()),
            Mark::Dots,
            colour(ci),
            pts,
        ));
    }
    if let Some(f) = &input.fits.frontier {
        let pts = f.points.iter().map(|p| (p.compute, p.loss)).collect();
        panel.series.push(
            Series::new(
                Some("frontier (approach 1)".into()),
                Mark::Line,
                colour(7),
                pts,
            )
            .bold(),
        );
    }
    let cs: Vec<f64> = runs.iter().map(|r| r.flops).collect();
    let lo = cs.iter().copied().fold(f64::INFINITY, f64::min) / 1.5;
    let mut hi = cs.iter().copied().fold(0.0, f64::max) * 1.5;
    if let Some(f) = &input.final_run {
        hi = hi.max(f.run.flops * 1.5);
        if let Some(m) = f.run.measured {
            panel.series.push(Series::new(
                Some(format!("final run {}", f.run.name)),
                Mark::Crosses,
                colour(3),
                vec![(f.run.flops, m)],
            ));
        }
    }
    if let Some((law, _)) = law_of(input) {
        // C ≈ 6ND (Kaplan et al. 2020) is the budget the allocation solves for.
        let curve = log_space(lo, hi, CURVE_POINTS)
            .into_iter()
            .map(|c| (c, allocate(&law, c).loss))
            .collect();
        panel.series.push(Series::new(
            Some("law at the optimum L(N_opt, D_opt)".into()),
            Mark::Dashed,
            colour(6),
            curve,
        ));
    }
    entropy_line(input, &mut panel);
    Ok(vec![panel.auto_y()])
}

pub fn isoflop(input: &Input) -> Result<Vec<Panel>, String> {
    let params = params_of(input);
    if let Some(iso) = &input.fits.isoflop {
        let mut panel = Panel::new(
            "IsoFLOP profiles (approach 2)",
            "parameters N",
            "validation loss (nats/token)",
        );
        let runs = ok_runs(input);
        for (i, b) in iso.budgets.iter().enumerate() {
            let c = colour(i);
            let pts = runs
                .iter()
                .filter(|r| r.budget == Some(b.budget))
                .filter_map(|r| Some((r.n(params), r.ok_loss()?)))
                .collect();
            panel.series.push(Series::new(
                Some(format!("C = {}", super::format::sci(b.budget))),
                Mark::Dots,
                c,
                pts,
            ));
            let [c0, c1, c2] = b.parabola;
            let curve = log_space(b.n_range[0], b.n_range[1], CURVE_POINTS)
                .into_iter()
                .map(|n| (n, c0 + c1 * n.ln() + c2 * n.ln() * n.ln()))
                .collect();
            panel.series.push(Series::new(None, Mark::Line, c, curve));
            panel.series.push(Series::new(
                None,
                Mark::Rings,
                c,
                vec![(b.n_opt, b.loss_opt)],
            ));
        }
        return Ok(vec![panel.auto_y()]);
    }
    // A grid sweep has no measured IsoFLOP profiles; show the fitted law's instead.
    let (law, _) = law_of(input).ok_or("needs an IsoFLOP sweep or a chinchilla fit")?;
    let mut budgets: Vec<f64> = input.fits.allocation.iter().map(|a| a.compute).collect();
    let mut flops: Vec<f64> = ok_runs(input).iter().map(|r| r.flops).collect();
    flops.sort_by(f64::total_cmp);
    if let (Some(lo), Some(hi)) = (flops.first(), flops.last()) {
        budgets.extend([*lo, (lo * hi).sqrt(), *hi]);
    }
    budgets.sort_by(f64::total_cmp);
    budgets.dedup();
    let mut panel = Panel::new(
        "IsoFLOP profiles of the fitted law",
        "parameters N",
        "predicted loss (nats/token)",
    );
    for (i, c) in budgets.iter().enumerate() {
        let opt = allocate(&law, *c);
        let curve = log_space(opt.n_opt / 8.0, opt.n_opt * 8.0, CURVE_POINTS)
            .into_iter()
            .map(|n| (n, law.loss(n, c / (6.0 * n))))
            .collect();
        panel.series.push(Series::new(
            Some(format!("C = {}", super::format::sci(*c))),
            Mark::Line,
            colour(i),
            curve,
        ));
        panel.series.push(Series::new(
            None,
            Mark::Rings,
            colour(i),
            vec![(opt.n_opt, opt.loss)],
        ));
    }
    Ok(vec![panel.auto_y()])
}

/// One line per learning curve, coloured by size (one legend entry per size), with x in
/// tokens or, when `over_compute`, in FLOPs spent so far.
fn curve_panel(input: &Input, mut panel: Panel, over_compute: bool) -> Result<Panel, String> {
    if input.curves.is_empty() {
        return Err("no learning curves (imported results have none)".into());
    }
    let colours = size_colours(input);
    let by_key: BTreeMap<&str, &RunRow> = input.runs.iter().map(|r| (r.key.as_str(), r)).collect();
    let mut labelled = std::collections::BTreeSet::new();
    for curve in &input.curves {
        let Some(run) = by_key.get(curve.key.as_str()) else {
            continue;
        };
        let per_token = if over_compute {
            run.flops / run.tokens.max(1) as f64
        } else {
            1.0
        };
        let ci = colours[&run.size];
        let label = labelled.insert(ci).then(|| run.size.clone());
        let pts = curve
            .points
            .iter()
            .map(|(t, l)| (t * per_token, *l))
            .collect();
        panel
            .series
            .push(Series::new(label, Mark::Line, colour(ci), pts));
    }
    Ok(panel)
}

pub fn learning_curves(input: &Input) -> Result<Vec<Panel>, String> {
    let panel = Panel::new(
        "Learning curves",
        "tokens trained",
        "validation loss (nats/token)",
    );
    let mut panel = curve_panel(input, panel, false)?;
    entropy_line(input, &mut panel);
    Ok(vec![panel.auto_y()])
}

pub fn frontier(input: &Input) -> Result<Vec<Panel>, String> {
    let panel = Panel::new(
        "Compute frontier",
        "compute so far (FLOPs)",
        "validation loss (nats/token)",
    );
    let mut panel = curve_panel(input, panel, true)?;
    if let Some(f) = &input.fits.frontier {
        let pts: Vec<(f64, f64)> = f.points.iter().map(|p| (p.compute, p.loss)).collect();
        panel.series.push(
            Series::new(
                Some(format!("envelope: N ∝ C^{:.3}, D ∝ C^{:.3}", f.a, f.b)),
                Mark::Line,
                colour(7),
                pts.clone(),
            )
            .bold(),
        );
        panel
            .series
            .push(Series::new(None, Mark::Dots, colour(7), pts));
    }
    Ok(vec![panel.auto_y()])
}

/// Panels for a chart id.
pub fn panels(id: &str, input: &Input) -> Result<Vec<Panel>, String> {
    match id {
        "loss_vs_params" => loss_vs_params(input),
        "loss_vs_tokens" => loss_vs_tokens(input),
        "loss_vs_compute" => loss_vs_compute(input),
        "isoflop" => isoflop(input),
        "learning_curves" => learning_curves(input),
        "extrapolation" => forecast::extrapolation(input),
        "residuals" => forecast::residuals(input),
        "allocation" => forecast::allocation(input),
        "cost" => forecast::cost(input),
        "frontier" => frontier(input),
        "loss_vs_lr" => super::sweep::chart(input),
        "batch_size" => super::batch::chart(input),
        "curve" => super::curves::chart(input),
        "metric" => super::metric::chart(input),
        "accuracy" => super::accuracy::chart(input),
        "facts_recall" => super::facts::chart(input),
        other => Err(format!("unknown chart `{other}`")),
    }
}
