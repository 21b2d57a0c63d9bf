//! The batch-size sweep in the chapter: the `batch_size` chart (B* against D with the fitted
//! B*(D), and the critical batch size against the loss level per size) and the `batch_size`
//! table (the laws with their intervals, the best (lr, batch) at every point, and the
//! critical batch sizes).

use std::collections::BTreeMap;

use super::Input;
use super::format::{human, interval, sig};
use super::plot::{Mark, Panel, Series, colour};
use super::template::escape_markdown;
use crate::fit::batch::{BatchLaw, BatchReport};

fn batch_report(input: &Input) -> Option<&BatchReport> {
    input.fits.hyper.as_ref()?.batch.as_ref()
}

const NO_SWEEP: &str = "the study sweeps no batch size (give `train.batch` a list)";

pub fn chart(input: &Input) -> Result<Vec<Panel>, String> {
    let (Some(h), Some(b)) = (&input.fits.hyper, batch_report(input)) else {
        return Err(NO_SWEEP.into());
    };
    let mut left = Panel::new(
        "Best batch size",
        "training tokens D",
        "B* (tokens per step)",
    );
    left.x_log = true;
    left.y_log = true;
    let mut by_n: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
    for p in &h.points {
        if let Some(c) = &p.batch {
            by_n.entry(p.n.to_bits())
                .or_default()
                .push((p.d, c.opt_tokens));
        }
    }
    for (i, (n, pts)) in by_n.iter().enumerate() {
        left.series.push(Series::new(
            Some(format!("N = {}", human(f64::from_bits(*n)))),
            Mark::Dots,
            colour(i),
            pts.clone(),
        ));
    }
    if let Some(law) = &b.law_d {
        let ds = h.points.iter().map(|p| p.d);
        let lo = ds.clone().fold(f64::INFINITY, f64::min);
        let hi = ds.fold(0.0, f64::max);
        let line = super::charts::log_space(lo, hi, 16)
            .into_iter()
            .map(|d| (d, law.predict(d)))
            .collect();
        left.series.push(Series::new(
            Some("B*(D) fitted".into()),
            Mark::Dashed,
            colour(7),
            line,
        ));
    }
    let mut panels = vec![left];
    if !b.critical.is_empty() {
        let mut right = Panel::new(
            "Critical batch size",
            "loss level L (nats/token)",
            "B_crit (tokens per step)",
        );
        right.y_log = true;
        let mut by_size: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
        for c in &b.critical {
            by_size
                .entry(c.n.to_bits())
                .or_default()
                .push((c.loss, c.tokens));
        }
        for (i, (n, mut pts)) in by_size.into_iter().enumerate() {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            right.series.push(Series::new(
                Some(format!("N = {}", human(f64::from_bits(n)))),
                Mark::Line,
                colour(i),
                pts,
            ));
        }
        panels.push(right.auto_y());
    }
    Ok(panels)
}

fn law_words(name: &str, x: &str, law: Option<&BatchLaw>) -> String {
    match law {
        Some(l) => {
            let iv = |i: usize| l.ci.map(|c| c[i]);
            format!(
                "**{name} = c·{x}^b** over {} points: c = {}, b = {} {} (RMSE of ln B* {}; {} \
                 bootstrap resamples).\n\n",
                l.points,
                sig(l.c, 4),
                sig(l.b, 3),
                interval(iv(1), 3),
                sig(l.rmse_log, 3),
                l.resamples
            )
        }
        None => format!("*{name} could not be fitted to these points.*\n\n"),
    }
}

pub fn table(input: &Input) -> String {
    let (Some(h), Some(b)) = (&input.fits.hyper, batch_report(input)) else {
        return format!("*No batch-size sweep: {NO_SWEEP}.*\n");
    };
    // Tokens per sequence, from any point's best batch (tokens / sequences).
    let context = h
        .points
        .iter()
        .find_map(|p| p.batch.as_ref())
        .map(|c| c.tokens / c.batch as f64);
    let swept: Vec<String> = b.swept.iter().map(u64::to_string).collect();
    let mut out = format!(
        "Every point was trained at {} batch sizes ({} sequences{}){}; the fits use the \
         lowest loss per point. B* refines the best batch size to the vertex of the parabola \
         through the best loss at it and its neighbours in ln B, each at its own best learning \
         rate; batch sizes are in tokens per step (sequences × context), as Step Law (Li et al. \
         2025) and DeepSeek LLM (2024) count them.\n\n",
        b.swept.len(),
        swept.join(", "),
        context.map_or(String::new(), |c| format!(" of {c:.0} tokens")),
        if h.swept.len() > 1 {
            format!(", each with every one of {} learning rates", h.swept.len())
        } else {
            String::new()
        }
    );
    out.push_str(&law_words("B*(D)", "D", b.law_d.as_ref()));
    out.push_str(&law_words("B*(C)", "C", b.law_c.as_ref()));
    let rows = h
        .points
        .iter()
        .filter_map(|p| {
            let c = p.batch.as_ref()?;
            Some(vec![
                format!("`{}`", escape_markdown(&p.point)),
                human(p.n),
                human(p.d),
                format!("{:e}", p.lr),
                c.batch.to_string(),
                human(c.opt_tokens),
                sig(p.loss, 5),
                if c.at_edge {
                    "⚠ at the sweep's edge"
                } else {
                    ""
                }
                .to_string(),
            ])
        })
        .collect();
    out.push_str(&super::tables::table(
        &[
            "point",
            " N",
            " D",
            " best lr",
            " best batch",
            " B* (tokens)",
            " loss",
            "note",
        ],
        rows,
    ));
    out.push_str(&critical_md(b));
    out
}

fn critical_md(b: &BatchReport) -> String {
    let mut out = String::from(
        "\n**Critical batch size** (McCandlish et al. 2018): at each size, the tokens E each \
         batch size needs to reach a loss level (read from its best runs over the token \
         counts) fitted as E = E_min + S_min·B; B_crit = E_min / S_min, past which doubling \
         the batch buys back less than half the steps.\n\n",
    );
    if let Some(why) = &b.critical_missing {
        out.push_str(&format!("*Not read: {}.*\n", escape_markdown(why)));
        return out;
    }
    let rows = b
        .critical
        .iter()
        .map(|c| {
            vec![
                human(c.n),
                sig(c.loss, 4),
                human(c.tokens),
                human(c.e_min),
                human(c.s_min),
                c.batches
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                if c.beyond_sweep {
                    "⚠ past the largest batch swept: extrapolated"
                } else {
                    ""
                }
                .to_string(),
            ]
        })
        .collect();
    out.push_str(&super::tables::table(
        &[
            " N",
            " loss level",
            " B_crit (tokens)",
            " E_min (tokens)",
            " S_min (steps)",
            "batch sizes",
            "note",
        ],
        rows,
    ));
    out
}

/// The final run's batch size and its neighbour's, for the final table.
pub fn final_words(f: &super::context::FinalCtx) -> String {
    if !f.batch_from_law {
        return String::new();
    }
    let mut out = format!(
        "The final run trains at the batch size the fitted B*(D) gives its tokens: {} \
         sequences",
        f.run.batch
    );
    match &f.neighbour {
        Some(n) => {
            out.push_str(&format!(
                "; its neighbour `{}` trains the same model on the same tokens at the comparison \
                 batch size {} (lr {}, that batch size's own best)",
                escape_markdown(&n.name),
                n.batch,
                sig(n.lr, 3)
            ));
            match (f.batch_gain, n.measured) {
                (Some(g), Some(m)) => out.push_str(&format!(
                    ". The laws' batch size ends {} nats/token {} the neighbour's {} ({:+.2} %).\n\n",
                    sig(g.abs(), 3),
                    if g >= 0.0 { "below" } else { "above" },
                    sig(m, 5),
                    -100.0 * g / m
                )),
                _ => out.push_str(".\n\n"),
            }
        }
        None => out.push_str(".\n\n"),
    }
    out
}
