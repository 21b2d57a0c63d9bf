//! The learning-rate sweep in the chapter: the `loss_vs_lr` chart (loss against lr per
//! point, each point's optimum marked, and η* against N with the fitted law) and the
//! `learning_rate` table (η*(N, D) with its intervals, and the choice at every point).

use std::collections::BTreeMap;

use super::Input;
use super::charts::size_colours;
use super::format::{human, interval, sig};
use super::plot::{Mark, Panel, Series, colour};
use super::template::escape_markdown;

pub fn chart(input: &Input) -> Result<Vec<Panel>, String> {
    let Some(h) = &input.fits.hyper else {
        return Err("the study sweeps no learning rate (give `train.lr` a list)".into());
    };
    let colours = size_colours(input);
    let mut left = Panel::new(
        "Loss vs learning rate",
        "peak learning rate",
        "validation loss (nats/token)",
    );
    let mut labelled = std::collections::BTreeSet::new();
    for p in &h.points {
        let runs: Vec<_> = input
            .runs
            .iter()
            .filter(|r| r.point == p.point)
            // A batch sweep: the point's runs at its best batch size.
            .filter(|r| p.batch.as_ref().is_none_or(|b| r.batch == b.batch))
            .filter_map(|r| Some((r.lr, r.ok_loss()?, &r.size)))
            .collect();
        let Some(&(_, _, size)) = runs.first() else {
            continue;
        };
        let ci = colours.get(size).copied().unwrap_or(0);
        let label = labelled.insert(ci).then(|| size.clone());
        let mut pts: Vec<(f64, f64)> = runs.iter().map(|(lr, l, _)| (*lr, *l)).collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        left.series
            .push(Series::new(label, Mark::Line, colour(ci), pts));
        left.series.push(Series::new(
            None,
            Mark::Rings,
            colour(ci),
            vec![(p.lr, p.loss)],
        ));
    }
    let mut right = Panel::new("Best learning rate", "parameters N", "η* (refined optimum)");
    right.y_log = true;
    let mut by_d: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
    for p in &h.points {
        by_d.entry(p.d.to_bits()).or_default().push((p.n, p.lr_opt));
    }
    for (i, (d, pts)) in by_d.iter().enumerate() {
        let d = f64::from_bits(*d);
        right.series.push(Series::new(
            Some(format!("D = {}", human(d))),
            Mark::Dots,
            colour(i),
            pts.clone(),
        ));
        if let Some(eta) = &h.eta {
            let lo = pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
            let hi = pts.iter().map(|p| p.0).fold(0.0, f64::max);
            let line = (0..=16)
                .map(|k| {
                    let n = lo * (hi / lo).powf(k as f64 / 16.0);
                    (n, eta.predict(n, d))
                })
                .collect();
            right
                .series
                .push(Series::new(None, Mark::Dashed, colour(i), line));
        }
    }
    Ok(vec![left.auto_y(), right])
}

pub fn table(input: &Input) -> String {
    let Some(h) = &input.fits.hyper else {
        return "*No learning-rate sweep: give `train.lr` a list to tune it per point.*\n".into();
    };
    let swept: Vec<String> = h.swept.iter().map(|v| format!("{v:e}")).collect();
    let mut out = format!(
        "Every point was trained at {} learning rates ({}); the fits use the lowest loss per \
         point (ties to the lower rate; diverged and failed runs excluded). η* refines the best \
         rate to the vertex of the parabola through it and its neighbours in ln η.\n\n",
        h.swept.len(),
        swept.join(", ")
    );
    match &h.eta {
        Some(e) => {
            let iv = |i: usize| e.ci.map(|c| c[i]);
            out.push_str(&format!(
                "**η\\*(N, D) = c·N^a·D^b** (DeepSeek LLM 2024; Li et al. 2025) over {} points: \
                 c = {}, a = {} {}, b = {} {} (RMSE of ln η* {}; {} bootstrap resamples).\n\n",
                e.points,
                sig(e.c, 4),
                sig(e.a, 3),
                interval(iv(1), 3),
                sig(e.b, 3),
                interval(iv(2), 3),
                sig(e.rmse_log, 3),
                e.resamples
            ));
        }
        None => out.push_str("*η\\*(N, D) could not be fitted to these points.*\n\n"),
    }
    let rows = h
        .points
        .iter()
        .map(|p| {
            vec![
                format!("`{}`", escape_markdown(&p.point)),
                human(p.n),
                human(p.d),
                format!("{:e}", p.lr),
                format!("{:.2e}", p.lr_opt),
                sig(p.loss, 5),
                if p.at_edge {
                    "⚠ at the sweep's edge"
                } else {
                    ""
                }
                .to_string(),
                if p.failed.is_empty() {
                    String::new()
                } else {
                    escape_markdown(&p.failed.join(", "))
                },
            ]
        })
        .collect();
    out.push_str(&super::tables::table(
        &[
            "point",
            " N",
            " D",
            " best lr",
            " η*",
            " loss",
            "note",
            "excluded (diverged or failed)",
        ],
        rows,
    ));
    out
}

/// `lr_transfer`: the sizes swept, the rule, and the learning rate every other size took,
/// with the check of a size that was both transferred and swept.
pub fn transfer_table(input: &Input) -> String {
    let Some(t) = input.fits.hyper.as_ref().and_then(|h| h.transfer.as_ref()) else {
        return "*No learning-rate transfer: `train.lr_transfer` sweeps some sizes and gives \
                the others the learning rate the sweep finds (or the sweep has not finished).*\n"
            .into();
    };
    let rule = match t.rule.as_str() {
        "mup" => {
            "under µP the optimum carries across widths: each token count's transferred \
                  learning rate is the geometric mean of the swept sizes' optima there"
        }
        _ => {
            "η*(N, D) = c·N^a·D^b fitted to the swept sizes' optima, at each size and token \
              count"
        }
    };
    let mut out = format!(
        "The learning rate was swept ({:e}–{:e}) at {} only; every other size trained once per \
         token count at the rate the sweep gives it — {rule} — rounded to two significant \
         figures. A *check* size was swept as well: its transferred run is compared with the \
         best of its own sweep, and more than {:.0} % above it is flagged.\n\n",
        t.swept_range[0],
        t.swept_range[1],
        t.swept_sizes
            .iter()
            .map(|s| format!("`{}`", escape_markdown(s)))
            .collect::<Vec<_>>()
            .join(", "),
        100.0 * t.margin
    );
    let rows = t
        .points
        .iter()
        .map(|p| {
            let (best, excess) = match &p.check {
                Some(c) => (
                    format!("{:e} ({})", c.best_lr, sig(c.best_loss, 5)),
                    format!(
                        "{:+.2} %{}",
                        100.0 * c.excess,
                        if c.excess > t.margin { " ⚠" } else { "" }
                    ),
                ),
                None => (String::new(), String::new()),
            };
            vec![
                format!("`{}`", escape_markdown(&p.point)),
                human(p.n),
                human(p.d),
                format!(
                    "{:e}{}",
                    p.lr,
                    if p.outside_sweep {
                        " ⚠ outside the sweep"
                    } else {
                        ""
                    }
                ),
                p.loss.map_or("—".into(), |l| sig(l, 5)),
                best,
                excess,
            ]
        })
        .collect();
    out.push_str(&super::tables::table(
        &[
            "point",
            " N",
            " D",
            " lr trained",
            " loss",
            " own sweep's best (check)",
            " transferred vs best",
        ],
        rows,
    ));
    out
}
