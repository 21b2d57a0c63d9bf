//! The data-constrained law's panels in the residual and extrapolation charts: every run's
//! residual under the law (with its unique tokens), and loss against epochs of the unique
//! tokens — the law fitted without the held-out runs (or on all of them) against the
//! Chinchilla form, which takes every repeated token for a fresh one.

use std::collections::BTreeMap;

use super::Input;
use super::charts::{CURVE_POINTS, log_space, ok_runs};
use super::context::RunRow;
use super::format::human;
use super::plot::{Mark, Panel, Series, colour};
use crate::fit::data_constrained::DataConstrainedLaw;

/// At most this many (N, U) groups get curves in the extrapolation panel: the ones with the
/// most runs (published sweeps hold dozens).
const GROUPS: usize = 6;

/// Epoch bands of the residual panel: fresh data, the paper's "almost as good as new" (up to
/// 4), "worth less" (up to 16), "worth little" (up to 100), and past that.
const BANDS: [(f64, &str); 5] = [
    (1.0, "≤ 1 epoch"),
    (4.0, "1–4 epochs"),
    (16.0, "4–16 epochs"),
    (100.0, "16–100 epochs"),
    (f64::INFINITY, "> 100 epochs"),
];

/// The residual panel: measured / predicted − 1 of every run under the law, one colour per
/// band of epochs (runs that do not know their unique tokens apart).
pub fn residual_panel(input: &Input) -> Option<Panel> {
    let dc = input.fits.data_constrained.as_ref()?;
    let runs = ok_runs(input);
    let mut bands: BTreeMap<usize, Vec<&RunRow>> = BTreeMap::new();
    for r in runs {
        let band = r.unique_tokens.filter(|u| *u > 0).map_or(BANDS.len(), |u| {
            let e = r.tokens as f64 / u as f64;
            BANDS
                .iter()
                .position(|(hi, _)| e <= *hi)
                .unwrap_or(BANDS.len() - 1)
        });
        bands.entry(band).or_default().push(r);
    }
    let mut panel = Panel::new(
        "Residuals, data-constrained law",
        "parameters N",
        "measured / predicted − 1 (%)",
    );
    for (band, rows) in &bands {
        let pts = rows
            .iter()
            .filter_map(|r| {
                let n = r.n(dc.params);
                let unique = r.unique_tokens.map(|u| u as f64);
                let pred = dc.law.loss(n, r.tokens as f64, unique);
                Some((n, (r.ok_loss()? / pred - 1.0) * 100.0))
            })
            .collect();
        let label = BANDS.get(*band).map_or("unique tokens unknown", |b| b.1);
        panel.series.push(Series::new(
            Some(label.to_string()),
            Mark::Dots,
            colour(*band),
            pts,
        ));
    }
    panel.h_line = Some((0.0, "zero".into()));
    Some(panel)
}

/// Loss against epochs D/U for the (N, U) groups with the most runs: the law (fitted without
/// the held-out runs when the study holds some out), the Chinchilla form of the same fit (D as
/// trained, repeats counted as fresh), and the measured runs — held-out ones as rings.
pub fn extrapolation_panel(input: &Input) -> Option<Panel> {
    let dc = input.fits.data_constrained.as_ref()?;
    let (law, held): (&DataConstrainedLaw, Vec<&str>) = match &dc.holdout {
        Some(h) => (&h.law, h.points.iter().map(|p| p.name.as_str()).collect()),
        None => (&dc.law, Vec::new()),
    };
    let mut groups: BTreeMap<(u64, u64), Vec<&RunRow>> = BTreeMap::new();
    for r in ok_runs(input) {
        if let Some(u) = r.unique_tokens.filter(|u| *u > 0) {
            groups
                .entry((r.n(dc.params) as u64, u))
                .or_default()
                .push(r);
        }
    }
    let mut groups: Vec<((u64, u64), Vec<&RunRow>)> = groups.into_iter().collect();
    // The most runs first; ties to the larger N, then the larger pool (a total order).
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(b.0.cmp(&a.0)));
    groups.truncate(GROUPS);
    if groups.is_empty() {
        return None;
    }
    let epochs = |r: &RunRow, u: u64| r.tokens as f64 / u as f64;
    let all: Vec<f64> = groups
        .iter()
        .flat_map(|((_, u), rows)| rows.iter().map(move |r| epochs(r, *u)))
        .collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min) / 1.5;
    let hi = all.iter().copied().fold(0.0, f64::max) * 1.5;
    let mut panel = Panel::new(
        if held.is_empty() {
            "Repeated data: the data-constrained law"
        } else {
            "Repeated data: the data-constrained law fitted without the held-out runs"
        },
        "epochs of the unique tokens (D / U)",
        "validation loss (nats/token)",
    );
    for (i, ((n, u), rows)) in groups.iter().enumerate() {
        let c = colour(i);
        let (n, uf) = (*n as f64, *u as f64);
        let es = log_space(lo.max(1e-3), hi, CURVE_POINTS);
        let curve = es
            .iter()
            .map(|&e| (e, law.loss(n, e * uf, Some(uf))))
            .collect();
        let label = format!("N = {}, U = {}", human(n), human(uf));
        panel
            .series
            .push(Series::new(Some(label), Mark::Line, c, curve));
        let fresh = es
            .iter()
            .map(|&e| (e, law.base().loss(n, e * uf)))
            .collect();
        panel.series.push(Series::new(None, Mark::Dashed, c, fresh));
        let (rings, dots): (Vec<&&RunRow>, Vec<&&RunRow>) =
            rows.iter().partition(|r| held.contains(&r.name.as_str()));
        for (mark, pts) in [(Mark::Dots, dots), (Mark::Rings, rings)] {
            let pts = pts
                .iter()
                .filter_map(|r| Some((epochs(r, *u), r.ok_loss()?)))
                .collect();
            panel.series.push(Series::new(None, mark, c, pts));
        }
    }
    panel.series.push(Series::new(
        Some("Chinchilla form, repeats as fresh (dashed)".into()),
        Mark::Dashed,
        colour(7),
        Vec::new(),
    ));
    if !held.is_empty() {
        panel.series.push(Series::new(
            Some("held out (rings)".into()),
            Mark::Rings,
            colour(7),
            Vec::new(),
        ));
    }
    Some(panel.auto_y())
}
