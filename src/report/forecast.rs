//! The charts that put the fitted law against what it predicts: the extrapolation to the
//! held-out and final runs with bootstrap bands, the residuals, the compute-optimal
//! allocation, and the cost laws' forecast. The shared helpers live in [`super::charts`].

use std::collections::BTreeMap;

use super::Input;
use super::charts::{CURVE_POINTS, d_groups, law_of, log_space, n_range, ok_runs, size_colours};
use super::context::{RunRow, band};
use super::plot::{Mark, Panel, Series, colour};
use crate::fit::chinchilla::{Law, allocate};
use crate::fit::options::ParamsConvention;

/// A law and its bootstrap refits.
#[derive(Clone, Copy)]
struct Fitted<'a> {
    law: &'a Law,
    laws: &'a [Law],
    confidence: f64,
}

/// One extrapolated curve: a law at fixed D over N, with its bootstrap band.
fn law_curve(
    panel: &mut Panel,
    Fitted {
        law,
        laws,
        confidence,
    }: Fitted,
    d: f64,
    (lo, hi): (f64, f64),
    c: plotters::style::RGBColor,
    label: String,
) {
    let ns = log_space(lo, hi, CURVE_POINTS);
    if !laws.is_empty() {
        let bands: Vec<(f64, [f64; 2])> = ns
            .iter()
            .filter_map(|&n| Some((n, band(laws, confidence, |l| l.loss(n, d))?)))
            .collect();
        panel.series.push(Series::band(
            c,
            bands.iter().map(|(n, b)| (*n, b[0])).collect(),
            bands.iter().map(|(n, b)| (*n, b[1])).collect(),
        ));
    }
    let curve = ns.into_iter().map(|n| (n, law.loss(n, d))).collect();
    panel
        .series
        .push(Series::new(Some(label), Mark::Dashed, c, curve));
}

pub fn extrapolation(input: &Input) -> Result<Vec<Panel>, String> {
    let (full, params) = law_of(input).ok_or("needs a chinchilla fit")?;
    let chin = input.fits.chinchilla.as_ref().expect("law_of checked it");
    let range = n_range(input, params);
    let mut panel = Panel::new(
        "Extrapolation",
        "parameters N",
        "validation loss (nats/token)",
    );
    let runs = ok_runs(input);
    let mut i = 0;
    if let Some(h) = &input.fits.holdout {
        let mut ds: Vec<u64> = h.points.iter().map(|p| p.d as u64).collect();
        ds.sort();
        ds.dedup();
        for d in ds {
            let c = colour(i);
            i += 1;
            law_curve(
                &mut panel,
                Fitted {
                    law: &h.law,
                    laws: &h.bootstrap_laws,
                    confidence: chin.confidence,
                },
                d as f64,
                range,
                c,
                format!(
                    "fit without hold-out, D = {}",
                    super::format::human(d as f64)
                ),
            );
            let fitted = runs
                .iter()
                .filter(|r| r.tokens == d && !h.points.iter().any(|p| p.name == r.name))
                .filter_map(|r| Some((r.n(params), r.ok_loss()?)))
                .collect();
            panel.series.push(Series::new(None, Mark::Dots, c, fitted));
            let held = h
                .points
                .iter()
                .filter(|p| p.d as u64 == d)
                .map(|p| (p.n, p.measured))
                .collect();
            panel.series.push(Series::new(None, Mark::Rings, c, held));
        }
        panel.series.push(Series::new(
            Some("held out (rings)".into()),
            Mark::Rings,
            colour(7),
            Vec::new(),
        ));
        // The over-training law fitted without the same runs, at their token counts.
        if let Some(oh) = input
            .fits
            .overtrain
            .as_ref()
            .and_then(|o| o.holdout.as_ref())
        {
            let law = oh.law.chinchilla();
            let mut ds: Vec<u64> = oh.points.iter().map(|p| p.d as u64).collect();
            ds.sort();
            ds.dedup();
            for (k, d) in ds.into_iter().enumerate() {
                let ns = log_space(range.0, range.1, CURVE_POINTS);
                let curve = ns.into_iter().map(|n| (n, law.loss(n, d as f64))).collect();
                let label = (k == 0).then(|| "over-training law without hold-out".to_string());
                panel
                    .series
                    .push(Series::new(label, Mark::Line, colour(6), curve));
            }
        }
    }
    if let Some(f) = &input.final_run {
        let c = colour(i);
        law_curve(
            &mut panel,
            Fitted {
                law: &full,
                laws: &chin.bootstrap_laws,
                confidence: chin.confidence,
            },
            f.run.tokens as f64,
            range,
            c,
            format!(
                "full fit, D = {} (final run)",
                super::format::human(f.run.tokens as f64)
            ),
        );
        if let Some([lo, hi]) = f.run.predicted_ci {
            panel.series.push(Series {
                upper: vec![(f.run.params, hi)],
                ..Series::new(None, Mark::ErrorBars, c, vec![(f.run.params, lo)])
            });
        }
        if let Some(m) = f.run.measured {
            panel.series.push(Series::new(
                Some(format!("final run {} (measured)", f.run.name)),
                Mark::Crosses,
                c,
                vec![(f.run.params, m)],
            ));
        }
    }
    if input.fits.holdout.is_none() && input.final_run.is_none() {
        for (j, (label, _, rows)) in d_groups(&runs).into_iter().enumerate() {
            let d = rows[0].tokens as f64;
            law_curve(
                &mut panel,
                Fitted {
                    law: &full,
                    laws: &chin.bootstrap_laws,
                    confidence: chin.confidence,
                },
                d,
                range,
                colour(j),
                label,
            );
            let pts = rows
                .iter()
                .filter_map(|r| Some((r.n(params), r.ok_loss()?)))
                .collect();
            panel
                .series
                .push(Series::new(None, Mark::Dots, colour(j), pts));
        }
    }
    let mut panels = vec![panel.auto_y()];
    panels.extend(super::repeated::extrapolation_panel(input));
    Ok(panels)
}

pub fn residuals(input: &Input) -> Result<Vec<Panel>, String> {
    let (law, params) = law_of(input).ok_or("needs a chinchilla fit")?;
    let mut panels = vec![residual_panel(input, "Residuals", &law, params)];
    if let Some(o) = &input.fits.overtrain {
        panels.push(residual_panel(
            input,
            "Residuals, over-training law",
            &o.chinchilla_form,
            o.params,
        ));
    }
    panels.extend(super::repeated::residual_panel(input));
    Ok(panels)
}

/// Every finished run's relative residual under `law`, one colour per token count.
fn residual_panel(input: &Input, title: &str, law: &Law, params: ParamsConvention) -> Panel {
    let runs = ok_runs(input);
    let mut panel = Panel::new(title, "parameters N", "measured / predicted − 1 (%)");
    for (i, (label, _, rows)) in d_groups(&runs).into_iter().enumerate() {
        let pts = rows
            .iter()
            .filter_map(|r| {
                let n = r.n(params);
                let pred = law.loss(n, r.tokens as f64);
                Some((n, (r.ok_loss()? / pred - 1.0) * 100.0))
            })
            .collect();
        panel
            .series
            .push(Series::new(Some(label), Mark::Dots, colour(i), pts));
    }
    panel.h_line = Some((0.0, "zero".into()));
    panel
}

pub fn allocation(input: &Input) -> Result<Vec<Panel>, String> {
    let (law, _) = law_of(input).ok_or("needs a chinchilla fit")?;
    let chin = input.fits.chinchilla.as_ref().expect("law_of checked it");
    let flops: Vec<f64> = input.runs.iter().map(|r| r.flops).collect();
    let mut lo = flops.iter().copied().fold(f64::INFINITY, f64::min);
    let mut hi = flops.iter().copied().fold(0.0, f64::max);
    for a in &input.fits.allocation {
        lo = lo.min(a.compute);
        hi = hi.max(a.compute);
    }
    let cs = log_space(lo / 2.0, hi * 4.0, CURVE_POINTS);
    let mut panel = Panel::new(
        "Compute-optimal allocation",
        "compute C (FLOPs)",
        "N_opt, D_opt",
    );
    panel.y_log = true;
    for (k, (name, pick)) in [
        (
            "N_opt(C)",
            (|a: &crate::fit::chinchilla::Allocation| a.n_opt) as fn(&_) -> f64,
        ),
        ("D_opt(C)", |a| a.d_opt),
    ]
    .into_iter()
    .enumerate()
    {
        let c = colour(k);
        if !chin.bootstrap_laws.is_empty() {
            let bands: Vec<(f64, [f64; 2])> = cs
                .iter()
                .filter_map(|&x| {
                    Some((
                        x,
                        band(&chin.bootstrap_laws, chin.confidence, |l| {
                            pick(&allocate(l, x))
                        })?,
                    ))
                })
                .collect();
            panel.series.push(Series::band(
                c,
                bands.iter().map(|(x, b)| (*x, b[0])).collect(),
                bands.iter().map(|(x, b)| (*x, b[1])).collect(),
            ));
        }
        let line = cs.iter().map(|&x| (x, pick(&allocate(&law, x)))).collect();
        panel
            .series
            .push(Series::new(Some(name.into()), Mark::Line, c, line));
    }
    if let Some(iso) = &input.fits.isoflop {
        panel.series.push(Series::new(
            Some("IsoFLOP optima N".into()),
            Mark::Rings,
            colour(0),
            iso.budgets.iter().map(|b| (b.budget, b.n_opt)).collect(),
        ));
        panel.series.push(Series::new(
            Some("IsoFLOP optima D".into()),
            Mark::Rings,
            colour(1),
            iso.budgets.iter().map(|b| (b.budget, b.d_opt)).collect(),
        ));
    }
    if let Some(f) = &input.fits.frontier {
        panel.series.push(Series::new(
            Some("frontier N".into()),
            Mark::Dots,
            colour(0),
            f.points.iter().map(|p| (p.compute, p.n)).collect(),
        ));
        panel.series.push(Series::new(
            Some("frontier D".into()),
            Mark::Dots,
            colour(1),
            f.points.iter().map(|p| (p.compute, p.d)).collect(),
        ));
    }
    if let Some(f) = &input.final_run {
        panel.series.push(Series::new(
            Some("final run (N, D)".into()),
            Mark::Crosses,
            colour(3),
            vec![(f.budget, f.run.params), (f.budget, f.run.tokens as f64)],
        ));
    }
    let mut panels = vec![panel];
    panels.extend(super::pareto::panel(input));
    panels.extend(super::pareto::wall_panel(input));
    Ok(panels)
}

pub fn cost(input: &Input) -> Result<Vec<Panel>, String> {
    let runs: Vec<&RunRow> = input
        .runs
        .iter()
        .filter(|r| r.status == "ok" && r.wall_seconds > 0.0)
        .collect();
    if runs.is_empty() {
        return Err("no measured wall times (imported results have none)".into());
    }
    let colours = size_colours(input);
    let mut time = Panel::new("Wall time", "training compute C (FLOPs)", "wall seconds");
    time.y_log = true;
    let mut memory = Panel::new("Peak memory", "parameters N (total)", "peak RSS (MiB)");
    let mut by_size: BTreeMap<usize, Vec<&RunRow>> = BTreeMap::new();
    for r in &runs {
        by_size.entry(colours[&r.size]).or_default().push(r);
    }
    for (ci, rows) in by_size {
        let c = colour(ci);
        time.series.push(Series::new(
            Some(rows[0].size.clone()),
            Mark::Dots,
            c,
            rows.iter()
                .map(|r| (r.flops, r.independent_wall_seconds))
                .collect(),
        ));
        memory.series.push(Series::new(
            None,
            Mark::Dots,
            c,
            rows.iter()
                .filter_map(|r| Some((r.params_total as f64, r.peak_rss_bytes? as f64 / 1048576.0)))
                .collect(),
        ));
    }
    if let Some(f) = &input.final_run {
        let (flops, params) = (f.run.flops, f.run.params_total as f64);
        // The final run's forecast (rings) and measurement (crosses) in both panels.
        for (panel, x, forecast, measured) in [
            (&mut time, flops, f.run.wall_forecast, f.run.wall_seconds),
            (
                &mut memory,
                params,
                f.run.rss_forecast.map(|m| m / 1048576.0),
                f.run.peak_rss_bytes.map(|m| m as f64 / 1048576.0),
            ),
        ] {
            for (label, mark, c, y) in [
                ("final: forecast", Mark::Rings, 7, forecast),
                ("final: measured", Mark::Crosses, 3, measured),
            ] {
                if let Some(y) = y {
                    let series = Series::new(Some(label.into()), mark, colour(c), vec![(x, y)]);
                    panel.series.push(series);
                }
            }
        }
    }
    let mut panels = vec![time];
    if memory.series.iter().any(|s| !s.points.is_empty()) {
        panels.push(memory.auto_y());
    }
    Ok(panels)
}
